-- +goose Up
-- Guarantees through the lifecycle. See
-- ../../postgres/migrations/00010_lifecycle_guards.sql for the why of each part.
-- Every statement ends with ";" at the end of a line: goose splits on that.

ALTER TABLE promotions ADD cancelled_at datetime2(6) NULL;

UPDATE p SET p.cancelled_at = b.at
FROM promotions AS p JOIN (SELECT promotion_id, MAX(updated_at) AS at FROM batches
    WHERE state = 'cancelled' AND done < code_count GROUP BY promotion_id) AS b ON b.promotion_id = p.id;

ALTER TABLE redemptions ADD rollback_code_release varchar(16) NULL;

ALTER TABLE topups ADD idempotency_key nvarchar(256) COLLATE Latin1_General_100_BIN2 NULL, request_hash varchar(64) NULL;

CREATE UNIQUE INDEX topups_idempotency ON topups (promotion_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP INDEX topups_idempotency ON topups;
ALTER TABLE topups DROP COLUMN idempotency_key, request_hash;
ALTER TABLE redemptions DROP COLUMN rollback_code_release;
ALTER TABLE promotions DROP COLUMN cancelled_at;
