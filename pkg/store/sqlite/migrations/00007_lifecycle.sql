-- +goose Up
-- Code lifecycle: reservations with a TTL, revoked codes. See
-- ../../postgres/migrations/00007_lifecycle.sql for the why of each part.

ALTER TABLE codes ADD COLUMN revoked_at TEXT NULL;
ALTER TABLE codes ADD COLUMN revoke_reason TEXT NULL;

ALTER TABLE idempotency_keys ADD COLUMN reservation_id TEXT NULL;

ALTER TABLE promotions ADD COLUMN delete_requested_at TEXT NULL;
ALTER TABLE promotions ADD COLUMN deleted_at TEXT NULL;

CREATE TABLE reservations (
    id            TEXT    NOT NULL PRIMARY KEY,
    promotion_id  INTEGER NOT NULL,
    code          TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('held', 'confirmed', 'released')),
    created_at    TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL,
    settled_at    TEXT    NULL,
    redemption_id TEXT    NULL,
    order_id      TEXT    NULL
) WITHOUT ROWID;
CREATE INDEX reservations_held_by_code ON reservations (code, expires_at) WHERE status = 'held';
CREATE INDEX reservations_held_by_user ON reservations (promotion_id, user_id, expires_at) WHERE status = 'held';
CREATE INDEX reservations_by_expiry ON reservations (expires_at);

CREATE TABLE audit_log (
    id           TEXT    NOT NULL PRIMARY KEY,
    at           TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    promotion_id INTEGER NOT NULL,
    code         TEXT    NULL,
    detail       TEXT    NULL
) WITHOUT ROWID;
CREATE INDEX audit_log_by_promotion ON audit_log (promotion_id, id);

CREATE TABLE topups (
    promotion_id   INTEGER NOT NULL,
    topup_no       INTEGER NOT NULL,
    code_count     INTEGER NOT NULL,
    seq_start      INTEGER NOT NULL,
    first_batch_no INTEGER NOT NULL,
    batch_count    INTEGER NOT NULL,
    created_at     TEXT    NOT NULL,
    PRIMARY KEY (promotion_id, topup_no)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE topups;
DROP TABLE audit_log;
DROP TABLE reservations;
ALTER TABLE promotions DROP COLUMN deleted_at;
ALTER TABLE promotions DROP COLUMN delete_requested_at;
ALTER TABLE idempotency_keys DROP COLUMN reservation_id;
ALTER TABLE codes DROP COLUMN revoke_reason;
ALTER TABLE codes DROP COLUMN revoked_at;
