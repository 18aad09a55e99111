-- +goose Up
-- The audit trail read by code and by user. See
-- ../../postgres/migrations/00010_redemption_lookups.sql.
CREATE INDEX redemptions_by_code ON redemptions (code, id);
CREATE INDEX redemptions_by_user_id ON redemptions (user_id, id);

-- +goose Down
DROP INDEX redemptions_by_user_id;
DROP INDEX redemptions_by_code;
