-- +goose Up
-- Times are ISO 8601 UTC text ("2006-01-02T15:04:05.000000Z"), which sorts
-- chronologically. Columns are declared TEXT, not DATETIME, so that the driver
-- does not try to convert them.

-- counters hands out sequence ranges, one row per canonical code space.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    next INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- AUTOINCREMENT: a promotion id is never reused, even after a rollback of the
-- newest row, because events on Kafka carry it.
CREATE TABLE promotions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    code_count         INTEGER NOT NULL,
    format             TEXT    NULL,     -- JSON of promo.Format (generated only)
    vanity_code        TEXT    NULL,     -- vanity only
    max_usage_per_code INTEGER NOT NULL,
    per_user_limit     INTEGER NOT NULL,
    starts_at          TEXT    NULL,
    expires_at         TEXT    NULL,
    counter_name       TEXT    NOT NULL DEFAULT '',
    seq_start          INTEGER NOT NULL DEFAULT 0,
    idempotency_key    TEXT    NULL UNIQUE,
    request_hash       TEXT    NOT NULL DEFAULT '',
    created_at         TEXT    NOT NULL
);

-- batches is both the progress record (done only grows, together with the
-- codes it stands for) and the outbox (published = 0 until the batch event is
-- on Kafka).
CREATE TABLE batches (
    promotion_id INTEGER NOT NULL,
    batch_no     INTEGER NOT NULL,
    seq_start    INTEGER NOT NULL,
    code_count   INTEGER NOT NULL,
    done         INTEGER NOT NULL DEFAULT 0,
    state        TEXT    NOT NULL DEFAULT 'pending',
    published    INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    updated_at   TEXT    NOT NULL,
    PRIMARY KEY (promotion_id, batch_no),
    CHECK (done >= 0 AND done <= code_count)
) WITHOUT ROWID;

-- The outbox scan reads only unpublished rows, oldest first. The query must
-- say "published = 0" literally for SQLite to use this partial index.
CREATE INDEX batches_unpublished ON batches (promotion_id, batch_no) WHERE published = 0;

-- codes is the hot table: WITHOUT ROWID makes the primary key b-tree the table
-- itself (one b-tree to maintain per insert, not two).
CREATE TABLE codes (
    code         TEXT    NOT NULL PRIMARY KEY,
    promotion_id INTEGER NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX codes_promotion_id ON codes (promotion_id);

-- +goose Down
DROP TABLE codes;
DROP TABLE batches;
DROP TABLE promotions;
DROP TABLE counters;
