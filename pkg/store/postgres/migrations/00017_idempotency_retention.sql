-- +goose Up
-- Idempotency-Key records are kept for redeem.idempotencyRetention (a week by
-- default) and then deleted by each API replica's sweeper, oldest first, a
-- bounded batch per statement: this index finds them without reading the
-- table. See docs/redemption.md, "Idempotency".
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- +goose Down
DROP INDEX idempotency_keys_by_age;
