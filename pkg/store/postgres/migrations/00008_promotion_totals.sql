-- +goose Up
-- Redemption totals per promotion for the list and status: an
-- exact, asynchronous rollup of the event outbox (redemption/rollup.go),
-- so that neither the list counts the redemptions table per row nor the
-- redemption transaction updates a per-promotion counter row that every
-- redemption of a flash sale would queue on (docs/redemption.md, "Totals").

-- The backfill below and the marking of every existing event counted must
-- see the same redemptions: these SHARE locks, taken first (the order a
-- rollback takes them: audit row, then event), wait for running redemptions
-- and rollbacks and hold new ones back until this transaction commits, so
-- that no redemption is both in the backfill and in an uncounted event, or
-- in neither.
LOCK TABLE redemptions, events IN SHARE MODE;

-- counted_at: the rollup counted this event into promotion_totals (in the
-- same transaction). The partial index holds only the uncounted few.
ALTER TABLE events ADD COLUMN counted_at timestamptz NULL;
CREATE INDEX events_uncounted ON events (seq) WHERE counted_at IS NULL;

-- promotion_totals: one row per promotion with redemptions; written only by
-- the rollup (a promotion without a row has none).
CREATE TABLE promotion_totals (
    promotion_id   bigint      PRIMARY KEY,
    redemptions    bigint      NOT NULL DEFAULT 0, -- live (not rolled back)
    codes_redeemed bigint      NOT NULL DEFAULT 0, -- distinct codes with a live redemption
    rolled_back    bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL
);

UPDATE events SET counted_at = now();
INSERT INTO promotion_totals (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
SELECT promotion_id,
    count(*) FILTER (WHERE rolled_back_at IS NULL),
    count(DISTINCT code) FILTER (WHERE rolled_back_at IS NULL),
    count(rolled_back_at),
    now()
FROM redemptions GROUP BY promotion_id;

-- +goose Down
DROP TABLE promotion_totals;
DROP INDEX events_uncounted;
ALTER TABLE events DROP COLUMN counted_at;
