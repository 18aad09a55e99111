-- +goose Up
-- Outbox claims across API replicas: a publisher leases the rows it is about
-- to publish (UPDLOCK, READPAST skip rows another publisher is claiming), so
-- two replicas do not publish the same batch events.
ALTER TABLE batches ADD publish_lease_until datetime2(6) NULL;

-- A keyed hash of codes.secret (never the key): generators refuse the batches
-- of a promotion created under another key. '' for promotions created before
-- this migration (not checked).
ALTER TABLE promotions ADD key_fingerprint varchar(64) NOT NULL CONSTRAINT promotions_key_fingerprint_df DEFAULT '';

-- Creating a promotion of 100,000,000 codes writes 2,000 batch rows in one
-- statement, and the outbox claims up to 500: past 5,000 locks SQL Server
-- would escalate to a table lock and hold every generator's progress update
-- until the create commits. Row locks only, as on codes.
ALTER TABLE batches SET (LOCK_ESCALATION = DISABLE);

-- +goose Down
ALTER TABLE batches SET (LOCK_ESCALATION = TABLE);
ALTER TABLE promotions DROP CONSTRAINT promotions_key_fingerprint_df;
ALTER TABLE promotions DROP COLUMN key_fingerprint;
ALTER TABLE batches DROP COLUMN publish_lease_until;
