-- +goose Up
-- Every statement ends with ";" at the end of a line: goose splits on that.
--
-- Text that is matched exactly (codes, counter names, idempotency keys) uses
-- the binary collation Latin1_General_100_BIN2, the analogue of PostgreSQL's
-- COLLATE "C": byte order, case-sensitive, and a cheaper unique index. The
-- database default collation is usually case-insensitive
-- (SQL_Latin1_General_CP1_CI_AS), which would make "abc" and "ABC" one code
-- or one idempotency key. Times are datetime2(6): microseconds, UTC, as the
-- other stores.

-- counters hands out sequence ranges, one row per canonical code space.
-- nvarchar(450) is the widest key a clustered primary key takes (900 bytes).
CREATE TABLE counters (
    name   nvarchar(450) COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT counters_pk PRIMARY KEY,
    [next] bigint NOT NULL CONSTRAINT counters_next_df DEFAULT 0
);

-- IDENTITY values are never reused, not even after a rollback (events on
-- Kafka carry the ids).
CREATE TABLE promotions (
    id                 bigint IDENTITY(1,1) NOT NULL CONSTRAINT promotions_pk PRIMARY KEY,
    name               nvarchar(max) NOT NULL,
    kind               varchar(16)   NOT NULL,
    code_count         bigint        NOT NULL,
    format             nvarchar(max) NULL,     -- JSON of promo.Format (generated only)
    vanity_code        varchar(128) COLLATE Latin1_General_100_BIN2 NULL, -- vanity only
    max_usage_per_code int           NOT NULL,
    per_user_limit     int           NOT NULL,
    starts_at          datetime2(6)  NULL,
    expires_at         datetime2(6)  NULL,
    counter_name       nvarchar(450) COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT promotions_counter_name_df DEFAULT N'',
    seq_start          bigint        NOT NULL CONSTRAINT promotions_seq_start_df DEFAULT 0,
    idempotency_key    nvarchar(256) COLLATE Latin1_General_100_BIN2 NULL,
    request_hash       nvarchar(256) NOT NULL CONSTRAINT promotions_request_hash_df DEFAULT N'',
    created_at         datetime2(6)  NOT NULL CONSTRAINT promotions_created_at_df DEFAULT SYSUTCDATETIME()
);

-- UNIQUE NULL as PostgreSQL has it: many NULLs, each key once. A unique
-- constraint would allow a single NULL, hence the filtered unique index.
CREATE UNIQUE INDEX promotions_idempotency_key ON promotions (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- batches is both the progress record (done only grows, together with the
-- codes it stands for) and the outbox (published = 0 until the batch event is
-- on Kafka).
CREATE TABLE batches (
    promotion_id bigint         NOT NULL CONSTRAINT batches_promotion_fk REFERENCES promotions (id),
    batch_no     int            NOT NULL,
    seq_start    bigint         NOT NULL,
    code_count   bigint         NOT NULL,
    done         bigint         NOT NULL CONSTRAINT batches_done_df DEFAULT 0,
    state        varchar(16)    NOT NULL CONSTRAINT batches_state_df DEFAULT 'pending',
    published    bit            NOT NULL CONSTRAINT batches_published_df DEFAULT 0,
    last_error   nvarchar(2048) NOT NULL CONSTRAINT batches_last_error_df DEFAULT N'',
    updated_at   datetime2(6)   NOT NULL CONSTRAINT batches_updated_at_df DEFAULT SYSUTCDATETIME(),
    CONSTRAINT batches_pk PRIMARY KEY (promotion_id, batch_no),
    CONSTRAINT batches_done_range CHECK (done >= 0 AND done <= code_count)
);

-- The outbox scan reads only unpublished rows, oldest first.
CREATE INDEX batches_unpublished ON batches (promotion_id, batch_no) WHERE published = 0;

-- codes is the hot table: narrow rows, no foreign key (it would cost a lookup
-- per bulk-copied row), clustered on the code (one b-tree holds the row, as
-- SQLite's WITHOUT ROWID). Canonical codes are printable ASCII of at most 127
-- bytes (32 prefix + 62 body + 1 check + 32 suffix), hence varchar(128): half
-- the bytes of nvarchar, and the binary collation compares bytes.
CREATE TABLE codes (
    code         varchar(128) COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT codes_pk PRIMARY KEY CLUSTERED,
    promotion_id bigint NOT NULL,
    used         int    NOT NULL CONSTRAINT codes_used_df DEFAULT 0
);

-- For exports; it carries the clustered key (code), so it covers them.
CREATE INDEX codes_promotion_id ON codes (promotion_id);

-- A chunk commit takes one key lock per row in each index (2 × 10,000 by
-- default). Past 5,000 SQL Server would try to escalate to a table lock and,
-- whenever no other transaction holds one, lock every worker, redemption and
-- export out of the table until the chunk commits. Row locks only.
ALTER TABLE codes SET (LOCK_ESCALATION = DISABLE);

-- +goose Down
DROP TABLE codes;
DROP TABLE batches;
DROP TABLE promotions;
DROP TABLE counters;
