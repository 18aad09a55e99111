-- +goose Up
-- Code lifecycle: reservations with a TTL, revoked codes. See
-- ../../postgres/migrations/00007_lifecycle.sql for the why of each part.
-- Every statement ends with ";" at the end of a line: goose splits on that.

ALTER TABLE codes ADD revoked_at datetime2(6) NULL, revoke_reason nvarchar(500) NULL;

ALTER TABLE idempotency_keys ADD reservation_id varchar(36) NULL;

ALTER TABLE promotions ADD delete_requested_at datetime2(6) NULL, deleted_at datetime2(6) NULL;

CREATE TABLE reservations (
    id            varchar(36)   COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT reservations_pk PRIMARY KEY,
    promotion_id  bigint        NOT NULL,
    code          varchar(128)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    user_id       nvarchar(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    status        varchar(16)   NOT NULL CONSTRAINT reservations_status CHECK (status IN ('held', 'confirmed', 'released')),
    created_at    datetime2(6)  NOT NULL,
    expires_at    datetime2(6)  NOT NULL,
    settled_at    datetime2(6)  NULL,
    redemption_id varchar(36)   NULL,
    order_id      nvarchar(200) NULL
);
CREATE INDEX reservations_held_by_code ON reservations (code, expires_at) WHERE status = 'held';
CREATE INDEX reservations_held_by_user ON reservations (promotion_id, user_id, expires_at) WHERE status = 'held';
CREATE INDEX reservations_by_expiry ON reservations (expires_at);

CREATE TABLE audit_log (
    id           varchar(36)   COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT audit_log_pk PRIMARY KEY,
    at           datetime2(6)  NOT NULL,
    actor        nvarchar(200) NOT NULL,
    action       varchar(64)   NOT NULL,
    promotion_id bigint        NOT NULL,
    code         varchar(128)  COLLATE Latin1_General_100_BIN2 NULL,
    detail       nvarchar(max) NULL
);
CREATE INDEX audit_log_by_promotion ON audit_log (promotion_id, id);

CREATE TABLE topups (
    promotion_id   bigint       NOT NULL,
    topup_no       int          NOT NULL,
    code_count     bigint       NOT NULL,
    seq_start      bigint       NOT NULL,
    first_batch_no int          NOT NULL,
    batch_count    int          NOT NULL,
    created_at     datetime2(6) NOT NULL,
    CONSTRAINT topups_pk PRIMARY KEY (promotion_id, topup_no)
);

-- +goose Down
DROP TABLE topups;
DROP TABLE audit_log;
DROP TABLE reservations;
ALTER TABLE promotions DROP COLUMN delete_requested_at, deleted_at;
ALTER TABLE idempotency_keys DROP COLUMN reservation_id;
ALTER TABLE codes DROP COLUMN revoked_at, revoke_reason;
