-- +goose Up
-- Idempotency-Key records' age, for the sweeper. See
-- ../../postgres/migrations/00017_idempotency_retention.sql.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- +goose Down
DROP INDEX idempotency_keys_by_age;
