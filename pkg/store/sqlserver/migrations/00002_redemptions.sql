-- +goose Up
-- Redemption: the promotion's switch, per-user allowances, the
-- audit trail, idempotency records and the event outbox. See
-- ../../postgres/migrations/00002_redemptions.sql for the why of each table.
-- Every statement ends with ";" at the end of a line: goose splits on that.

ALTER TABLE promotions ADD active bit NOT NULL CONSTRAINT promotions_active_df DEFAULT 1;

CREATE TABLE user_uses (
    promotion_id bigint        NOT NULL,
    user_id      nvarchar(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    used         int           NOT NULL CONSTRAINT user_uses_used_df DEFAULT 0,
    CONSTRAINT user_uses_pk PRIMARY KEY (promotion_id, user_id),
    CONSTRAINT user_uses_used_nonneg CHECK (used >= 0)
);

CREATE TABLE redemptions (
    id              varchar(36)   COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT redemptions_pk PRIMARY KEY,
    promotion_id    bigint        NOT NULL,
    code            varchar(128)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    user_id         nvarchar(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    order_id        nvarchar(200) NULL,
    metadata        nvarchar(max) NULL,
    redeemed_at     datetime2(6)  NOT NULL,
    uses_left       int           NOT NULL,
    rolled_back_at  datetime2(6)  NULL,
    rollback_reason nvarchar(500) NULL,
    idempotency_key nvarchar(256) NULL
);
CREATE INDEX redemptions_by_promotion ON redemptions (promotion_id, id);
CREATE INDEX redemptions_by_user ON redemptions (promotion_id, user_id, id);

CREATE TABLE idempotency_keys (
    idem_key      nvarchar(256) COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT idempotency_keys_pk PRIMARY KEY,
    request_hash  varchar(128)  NOT NULL,
    refused       varchar(64)   NULL,
    redemption_id varchar(36)   NULL,
    created_at    datetime2(6)  NOT NULL
);

CREATE TABLE events (
    seq          bigint IDENTITY(1,1) NOT NULL CONSTRAINT events_pk PRIMARY KEY,
    stream       varchar(64)   NOT NULL,
    event_key    nvarchar(256) NOT NULL,
    payload      nvarchar(max) NOT NULL,
    created_at   datetime2(6)  NOT NULL,
    lease_until  datetime2(6)  NULL,
    published_at datetime2(6)  NULL
);
CREATE INDEX events_unpublished ON events (seq) WHERE published_at IS NULL;

-- +goose Down
DROP TABLE events;
DROP TABLE idempotency_keys;
DROP TABLE redemptions;
DROP TABLE user_uses;
ALTER TABLE promotions DROP CONSTRAINT promotions_active_df;
ALTER TABLE promotions DROP COLUMN active;
