-- +goose Up
-- Personal codes. See ../../postgres/migrations/00013_personal_codes.sql.
ALTER TABLE codes ADD COLUMN user_id TEXT;
ALTER TABLE codes ADD COLUMN issuance_id TEXT;
ALTER TABLE codes ADD COLUMN issued_at TEXT;
CREATE INDEX codes_by_user ON codes (user_id, issued_at) WHERE user_id IS NOT NULL;

ALTER TABLE promotions ADD COLUMN eligibility TEXT;

ALTER TABLE idempotency_keys ADD COLUMN issuance_id TEXT;
ALTER TABLE reservations ADD COLUMN shopper TEXT;

ALTER TABLE redemptions ADD COLUMN client_addr TEXT;
ALTER TABLE redemptions ADD COLUMN user_agent TEXT;
ALTER TABLE redemptions ADD COLUMN order_amount INTEGER;
ALTER TABLE redemptions ADD COLUMN order_currency TEXT;
ALTER TABLE redemptions ADD COLUMN discount INTEGER;
ALTER TABLE redemptions ADD COLUMN first_order INTEGER;
ALTER TABLE redemptions ADD COLUMN segments TEXT;
ALTER TABLE redemptions ADD COLUMN country TEXT;

CREATE TABLE redemption_segments (
    redemption_id TEXT    NOT NULL,
    promotion_id  INTEGER NOT NULL,
    segment       TEXT    NOT NULL,
    PRIMARY KEY (redemption_id, segment)
);
CREATE INDEX redemption_segments_by_promotion ON redemption_segments (promotion_id, segment);

-- +goose Down
DROP TABLE redemption_segments;
ALTER TABLE redemptions DROP COLUMN country;
ALTER TABLE redemptions DROP COLUMN segments;
ALTER TABLE redemptions DROP COLUMN first_order;
ALTER TABLE redemptions DROP COLUMN discount;
ALTER TABLE redemptions DROP COLUMN order_currency;
ALTER TABLE redemptions DROP COLUMN order_amount;
ALTER TABLE redemptions DROP COLUMN user_agent;
ALTER TABLE redemptions DROP COLUMN client_addr;
ALTER TABLE reservations DROP COLUMN shopper;
ALTER TABLE idempotency_keys DROP COLUMN issuance_id;
ALTER TABLE promotions DROP COLUMN eligibility;
DROP INDEX codes_by_user;
ALTER TABLE codes DROP COLUMN issued_at;
ALTER TABLE codes DROP COLUMN issuance_id;
ALTER TABLE codes DROP COLUMN user_id;
