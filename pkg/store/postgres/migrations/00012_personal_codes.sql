-- +goose Up
-- Personal codes: a generated code may be issued to (bound to) one user, and a
-- promotion may carry eligibility rules; the audit trail keeps what a
-- redemption said about its order and shopper, and where it came from.
--
-- codes: the three columns are NULL on every code until it is issued (no
-- rewrite of existing rows: ADD COLUMN without a default is catalog-only).
-- The partial index holds issued codes only, so the bulk load of a promotion
-- writes no entry into it; issuance finds unassigned codes through the
-- promotion's BRIN range (docs/store.md, "Personal codes").
ALTER TABLE codes ADD COLUMN user_id text, ADD COLUMN issuance_id text, ADD COLUMN issued_at timestamptz;
CREATE INDEX codes_by_user ON codes (user_id, issued_at) WHERE user_id IS NOT NULL;

ALTER TABLE promotions ADD COLUMN eligibility text;

ALTER TABLE idempotency_keys ADD COLUMN issuance_id text;

ALTER TABLE redemptions ADD COLUMN client_addr text, ADD COLUMN user_agent text,
    ADD COLUMN order_amount bigint, ADD COLUMN order_currency text, ADD COLUMN discount bigint,
    ADD COLUMN first_order boolean, ADD COLUMN segments text, ADD COLUMN country text;

-- One row per (redemption, segment) it carried: the stats by segment.
CREATE TABLE redemption_segments (
    redemption_id text   NOT NULL,
    promotion_id  bigint NOT NULL,
    segment       text   NOT NULL,
    PRIMARY KEY (redemption_id, segment)
);
CREATE INDEX redemption_segments_by_promotion ON redemption_segments (promotion_id, segment);

-- +goose Down
DROP TABLE redemption_segments;
ALTER TABLE redemptions DROP COLUMN client_addr, DROP COLUMN user_agent, DROP COLUMN order_amount,
    DROP COLUMN order_currency, DROP COLUMN discount, DROP COLUMN first_order, DROP COLUMN segments, DROP COLUMN country;
ALTER TABLE idempotency_keys DROP COLUMN issuance_id;
ALTER TABLE promotions DROP COLUMN eligibility;
DROP INDEX codes_by_user;
ALTER TABLE codes DROP COLUMN user_id, DROP COLUMN issuance_id, DROP COLUMN issued_at;
