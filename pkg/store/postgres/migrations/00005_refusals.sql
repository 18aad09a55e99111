-- +goose Up
-- refusals counts refused redemptions per promotion, reason and hour, for
-- the campaign analytics. The API adds its counts in the background every
-- few seconds (never in the redemption's transaction: a flash sale's
-- thousands of refusals would queue on one counter row).
CREATE TABLE refusals (
    promotion_id bigint      NOT NULL,
    reason       text        NOT NULL,
    hour         timestamptz NOT NULL,
    n            bigint      NOT NULL,
    PRIMARY KEY (promotion_id, reason, hour)
);

-- +goose Down
DROP TABLE refusals;
