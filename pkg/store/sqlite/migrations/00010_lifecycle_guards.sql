-- +goose Up
-- Guarantees through the lifecycle. See
-- ../../postgres/migrations/00010_lifecycle_guards.sql for the why of each part.

ALTER TABLE promotions ADD COLUMN cancelled_at TEXT NULL;
UPDATE promotions SET cancelled_at = (
    SELECT max(updated_at) FROM batches
    WHERE batches.promotion_id = promotions.id AND state = 'cancelled' AND done < code_count)
WHERE EXISTS (SELECT 1 FROM batches
    WHERE batches.promotion_id = promotions.id AND state = 'cancelled' AND done < code_count);

ALTER TABLE redemptions ADD COLUMN rollback_code_release TEXT NULL;

ALTER TABLE topups ADD COLUMN idempotency_key TEXT NULL;
ALTER TABLE topups ADD COLUMN request_hash TEXT NULL;
CREATE UNIQUE INDEX topups_idempotency ON topups (promotion_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP INDEX topups_idempotency;
ALTER TABLE topups DROP COLUMN request_hash;
ALTER TABLE topups DROP COLUMN idempotency_key;
ALTER TABLE redemptions DROP COLUMN rollback_code_release;
ALTER TABLE promotions DROP COLUMN cancelled_at;
