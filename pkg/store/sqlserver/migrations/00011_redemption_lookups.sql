-- +goose Up
-- The audit trail read by code and by user. See
-- ../../postgres/migrations/00010_redemption_lookups.sql.
-- Every statement ends with ";" at the end of a line: goose splits on that.

CREATE INDEX redemptions_by_code ON redemptions (code, id);

CREATE INDEX redemptions_by_user_id ON redemptions (user_id, id);

-- +goose Down
DROP INDEX redemptions_by_user_id ON redemptions;

DROP INDEX redemptions_by_code ON redemptions;
