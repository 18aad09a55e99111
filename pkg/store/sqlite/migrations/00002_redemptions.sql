-- +goose Up
-- Redemption: the promotion's switch, per-user allowances, the
-- audit trail, idempotency records and the event outbox. See
-- ../../postgres/migrations/00002_redemptions.sql for the why of each table.

ALTER TABLE promotions ADD COLUMN active INTEGER NOT NULL DEFAULT 1;

CREATE TABLE user_uses (
    promotion_id INTEGER NOT NULL,
    user_id      TEXT    NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (promotion_id, user_id),
    CHECK (used >= 0)
) WITHOUT ROWID;

CREATE TABLE redemptions (
    id              TEXT    NOT NULL PRIMARY KEY,
    promotion_id    INTEGER NOT NULL,
    code            TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    order_id        TEXT    NULL,
    metadata        TEXT    NULL,
    redeemed_at     TEXT    NOT NULL,
    uses_left       INTEGER NOT NULL,
    rolled_back_at  TEXT    NULL,
    rollback_reason TEXT    NULL,
    idempotency_key TEXT    NULL
) WITHOUT ROWID;
CREATE INDEX redemptions_by_promotion ON redemptions (promotion_id, id);
CREATE INDEX redemptions_by_user ON redemptions (promotion_id, user_id, id);

CREATE TABLE idempotency_keys (
    idem_key      TEXT NOT NULL PRIMARY KEY,
    request_hash  TEXT NOT NULL,
    refused       TEXT NULL,
    redemption_id TEXT NULL,
    created_at    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    stream       TEXT NOT NULL,
    event_key    TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    lease_until  TEXT NULL,
    published_at TEXT NULL
);
CREATE INDEX events_unpublished ON events (seq) WHERE published_at IS NULL;

-- +goose Down
DROP TABLE events;
DROP TABLE idempotency_keys;
DROP TABLE redemptions;
DROP TABLE user_uses;
ALTER TABLE promotions DROP COLUMN active;
