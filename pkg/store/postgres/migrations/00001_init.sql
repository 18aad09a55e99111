-- +goose Up
-- counters hands out sequence ranges, one row per canonical code space.
CREATE TABLE counters (
    name text PRIMARY KEY,
    next bigint NOT NULL DEFAULT 0
);

CREATE TABLE promotions (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text        NOT NULL,
    kind               text        NOT NULL,
    code_count         bigint      NOT NULL,
    format             text        NULL,     -- JSON of promo.Format (generated only)
    vanity_code        text        NULL,     -- vanity only
    max_usage_per_code integer     NOT NULL,
    per_user_limit     integer     NOT NULL,
    starts_at          timestamptz NULL,
    expires_at         timestamptz NULL,
    counter_name       text        NOT NULL DEFAULT '',
    seq_start          bigint      NOT NULL DEFAULT 0,
    idempotency_key    text        NULL UNIQUE,
    request_hash       text        NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- batches is both the progress record (done only grows, together with the
-- codes it stands for) and the outbox (published = false until the batch event
-- is on Kafka).
CREATE TABLE batches (
    promotion_id bigint      NOT NULL REFERENCES promotions (id),
    batch_no     integer     NOT NULL,
    seq_start    bigint      NOT NULL,
    code_count   bigint      NOT NULL,
    done         bigint      NOT NULL DEFAULT 0,
    state        text        NOT NULL DEFAULT 'pending',
    published    boolean     NOT NULL DEFAULT false,
    last_error   text        NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (promotion_id, batch_no),
    CHECK (done >= 0 AND done <= code_count)
);

-- The outbox scan reads only unpublished rows, oldest first.
CREATE INDEX batches_unpublished ON batches (promotion_id, batch_no) WHERE NOT published;

-- codes is the hot table: narrow rows, no foreign key (it would cost a lookup
-- per COPYed row). COLLATE "C" makes the unique index compare bytes, not
-- locale rules: much faster, and codes are ASCII anyway.
CREATE TABLE codes (
    code         text COLLATE "C" PRIMARY KEY,
    promotion_id bigint  NOT NULL,
    used         integer NOT NULL DEFAULT 0
);

CREATE INDEX codes_promotion_id ON codes (promotion_id);

-- +goose Down
DROP TABLE codes;
DROP TABLE batches;
DROP TABLE promotions;
DROP TABLE counters;
