-- +goose Up
-- refusals counts refused redemptions per promotion, reason and hour (see
-- ../../postgres/migrations/00005_refusals.sql).
CREATE TABLE refusals (
    promotion_id bigint       NOT NULL,
    reason       varchar(64)  NOT NULL,
    hour         datetime2(0) NOT NULL,
    n            bigint       NOT NULL,
    CONSTRAINT refusals_pk PRIMARY KEY (promotion_id, reason, hour)
);

-- +goose Down
DROP TABLE refusals;
