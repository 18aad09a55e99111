-- +goose Up
-- Outbox claims: a publisher leases the rows it is about to publish (ISO 8601
-- UTC text, as every time here), so two publishers on one database file do
-- not publish the same batch events.
ALTER TABLE batches ADD COLUMN publish_lease_until TEXT NULL;

-- A keyed hash of codes.secret (never the key): generators refuse the batches
-- of a promotion created under another key. '' for promotions created before
-- this migration (not checked).
ALTER TABLE promotions ADD COLUMN key_fingerprint TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE promotions DROP COLUMN key_fingerprint;
ALTER TABLE batches DROP COLUMN publish_lease_until;
