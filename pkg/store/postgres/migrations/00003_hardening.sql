-- +goose Up
-- Outbox claims across API replicas: a publisher leases the rows it is about
-- to publish (FOR UPDATE SKIP LOCKED picks rows nobody else is claiming), so
-- two replicas do not publish the same batch events.
ALTER TABLE batches ADD COLUMN publish_lease_until timestamptz NULL;

-- A keyed hash of codes.secret (never the key): generators refuse the batches
-- of a promotion created under another key. '' for promotions created before
-- this migration (not checked).
ALTER TABLE promotions ADD COLUMN key_fingerprint text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE promotions DROP COLUMN key_fingerprint;
ALTER TABLE batches DROP COLUMN publish_lease_until;
