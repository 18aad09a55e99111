-- +goose Up
-- The audit trail read by code and by user (the console's code and user
-- pages, GET /v1/users/{userId}/redemptions): without these, a code's
-- redemptions were a scan of its promotion's whole trail and a user's across
-- promotions a scan of the table. ids are UUIDv7, so each index returns its
-- rows newest first and a time range is an id range.
CREATE INDEX redemptions_by_code ON redemptions (code, id);
CREATE INDEX redemptions_by_user_id ON redemptions (user_id, id);

-- +goose Down
DROP INDEX redemptions_by_user_id;
DROP INDEX redemptions_by_code;
