-- +goose Up
-- Guarantees through the lifecycle: the cancel flag that chunks read before
-- they commit, what a rollback gave back to its code, and idempotent top-ups.

-- cancelled_at: POST /v1/promotions/{id}/cancel sets it with one statement on
-- the promotion row, which no worker locks, so a frozen worker holding a
-- batch row cannot make the cancel wait; every chunk reads it (and
-- delete_requested_at) as the last statement of its transaction. Promotions
-- cancelled before it existed get the time their batches were cancelled.
ALTER TABLE promotions ADD COLUMN cancelled_at timestamptz NULL;
UPDATE promotions p SET cancelled_at = b.at
FROM (SELECT promotion_id, max(updated_at) AS at FROM batches
      WHERE state = 'cancelled' AND done < code_count GROUP BY promotion_id) b
WHERE b.promotion_id = p.id;

-- rollback_code_release: 'released' (the use went back to the code row the
-- redemption took) or 'code_gone' (that row no longer exists); NULL until
-- rolled back, and for rollbacks made before this column.
ALTER TABLE redemptions ADD COLUMN rollback_code_release text NULL;

-- A top-up's Idempotency-Key, unique per promotion, and its request's hash.
ALTER TABLE topups ADD COLUMN idempotency_key text COLLATE "C" NULL, ADD COLUMN request_hash text NULL;
CREATE UNIQUE INDEX topups_idempotency ON topups (promotion_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP INDEX topups_idempotency;
ALTER TABLE topups DROP COLUMN idempotency_key, DROP COLUMN request_hash;
ALTER TABLE redemptions DROP COLUMN rollback_code_release;
ALTER TABLE promotions DROP COLUMN cancelled_at;
