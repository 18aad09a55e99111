-- +goose Up
-- refusals counts refused redemptions per promotion, reason and hour (see
-- ../../postgres/migrations/00005_refusals.sql).
CREATE TABLE refusals (
    promotion_id INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    hour         TEXT    NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (promotion_id, reason, hour)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE refusals;
