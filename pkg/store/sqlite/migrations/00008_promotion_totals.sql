-- +goose Up
-- Redemption totals per promotion, rolled up from the event outbox. See
-- ../../postgres/migrations/00008_promotion_totals.sql for the why. The
-- migration's write transaction holds SQLite's one write lock: the backfill
-- and the marking of existing events see the same redemptions.
ALTER TABLE events ADD COLUMN counted_at TEXT NULL;
CREATE INDEX events_uncounted ON events (seq) WHERE counted_at IS NULL;

CREATE TABLE promotion_totals (
    promotion_id   INTEGER PRIMARY KEY,
    redemptions    INTEGER NOT NULL DEFAULT 0,
    codes_redeemed INTEGER NOT NULL DEFAULT 0,
    rolled_back    INTEGER NOT NULL DEFAULT 0,
    updated_at     TEXT    NOT NULL
);

UPDATE events SET counted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
INSERT INTO promotion_totals (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
SELECT promotion_id,
    count(*) - count(rolled_back_at),
    count(DISTINCT CASE WHEN rolled_back_at IS NULL THEN code END),
    count(rolled_back_at),
    strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM redemptions GROUP BY promotion_id;

-- +goose Down
DROP TABLE promotion_totals;
DROP INDEX events_uncounted;
ALTER TABLE events DROP COLUMN counted_at;
