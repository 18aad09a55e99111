-- +goose Up
-- Personal codes. See ../../postgres/migrations/00013_personal_codes.sql.
-- Every statement ends with ";" at the end of a line: goose splits on that.
-- The filtered index holds issued codes only (the bulk load writes no entry).

ALTER TABLE codes ADD user_id nvarchar(200) COLLATE Latin1_General_100_BIN2 NULL,
    issuance_id varchar(36) NULL, issued_at datetime2(6) NULL;

CREATE INDEX codes_by_user ON codes (user_id, issued_at) WHERE user_id IS NOT NULL;

ALTER TABLE promotions ADD eligibility nvarchar(max) NULL;

ALTER TABLE idempotency_keys ADD issuance_id varchar(36) NULL;

ALTER TABLE reservations ADD shopper nvarchar(max) NULL;

ALTER TABLE redemptions ADD client_addr nvarchar(64) NULL, user_agent nvarchar(512) NULL,
    order_amount bigint NULL, order_currency varchar(3) NULL, discount bigint NULL, first_order bit NULL,
    segments nvarchar(max) NULL, country varchar(2) NULL;

CREATE TABLE redemption_segments (
    redemption_id varchar(36) NOT NULL,
    promotion_id  bigint NOT NULL,
    segment       nvarchar(64) COLLATE Latin1_General_100_BIN2 NOT NULL,
    CONSTRAINT redemption_segments_pk PRIMARY KEY (redemption_id, segment)
);

CREATE INDEX redemption_segments_by_promotion ON redemption_segments (promotion_id, segment);

-- +goose Down
DROP TABLE redemption_segments;

ALTER TABLE redemptions DROP COLUMN client_addr, user_agent, order_amount, order_currency, discount, first_order,
    segments, country;

ALTER TABLE reservations DROP COLUMN shopper;
ALTER TABLE idempotency_keys DROP COLUMN issuance_id;

ALTER TABLE promotions DROP COLUMN eligibility;

DROP INDEX codes_by_user ON codes;

ALTER TABLE codes DROP COLUMN user_id, issuance_id, issued_at;
