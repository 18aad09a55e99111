-- +goose Up
-- Redemption totals per promotion, rolled up from the event outbox. See
-- ../../postgres/migrations/00008_promotion_totals.sql for the why.
-- Every statement ends with ";" at the end of a line: goose splits on that,
-- so the new column is known to the statements after its ALTER.
--
-- The backfill and the marking below must see the same redemptions: shared
-- table locks held to the end of the migration's transaction, taken first
-- and redemptions first (the order a redemption takes them: audit row, then
-- event), keep redemptions and rollbacks out until it commits.
SELECT TOP (1) 1 FROM redemptions WITH (TABLOCK, HOLDLOCK);
SELECT TOP (1) 1 FROM events WITH (TABLOCK, HOLDLOCK);

ALTER TABLE events ADD counted_at datetime2(6) NULL;

CREATE INDEX events_uncounted ON events (seq) WHERE counted_at IS NULL;

CREATE TABLE promotion_totals (
    promotion_id   bigint       NOT NULL CONSTRAINT promotion_totals_pk PRIMARY KEY,
    redemptions    bigint       NOT NULL CONSTRAINT promotion_totals_redemptions_df DEFAULT 0,
    codes_redeemed bigint       NOT NULL CONSTRAINT promotion_totals_codes_df DEFAULT 0,
    rolled_back    bigint       NOT NULL CONSTRAINT promotion_totals_rolled_back_df DEFAULT 0,
    updated_at     datetime2(6) NOT NULL
);

UPDATE events SET counted_at = SYSUTCDATETIME();

INSERT INTO promotion_totals (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
SELECT promotion_id,
    COUNT_BIG(*) - COUNT_BIG(rolled_back_at),
    COUNT_BIG(DISTINCT CASE WHEN rolled_back_at IS NULL THEN code END),
    COUNT_BIG(rolled_back_at),
    SYSUTCDATETIME()
FROM redemptions GROUP BY promotion_id;

-- +goose Down
DROP TABLE promotion_totals;

DROP INDEX events_uncounted ON events;

ALTER TABLE events DROP COLUMN counted_at;
