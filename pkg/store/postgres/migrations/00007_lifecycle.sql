-- +goose Up
-- Code lifecycle: reservations with a TTL, revoked codes, the audit
-- log of admin changes.

-- A revoked code answers "revoked"; the column is NULL for every other code
-- (adding a nullable column without a default rewrites nothing).
ALTER TABLE codes ADD COLUMN revoked_at timestamptz NULL, ADD COLUMN revoke_reason text NULL;

-- The idempotency record of a reservation names it here (redemption_id
-- stays for redemptions).
ALTER TABLE idempotency_keys ADD COLUMN reservation_id text NULL;

-- DELETE /v1/promotions/{id}: requested (the API's background purger then
-- deletes the codes in bounded statements) and finished.
ALTER TABLE promotions ADD COLUMN delete_requested_at timestamptz NULL, ADD COLUMN deleted_at timestamptz NULL;

-- reservations: one row per use held for a user. A row holds a use while
-- status = 'held' AND expires_at > now: expiry needs no job, the limits
-- count only live rows. The sweeper deletes rows long past expires_at.
CREATE TABLE reservations (
    id            text        COLLATE "C" PRIMARY KEY,
    promotion_id  bigint      NOT NULL,
    code          text        COLLATE "C" NOT NULL,
    user_id       text        COLLATE "C" NOT NULL,
    status        text        NOT NULL CHECK (status IN ('held', 'confirmed', 'released')),
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    settled_at    timestamptz NULL,
    redemption_id text        NULL,
    order_id      text        NULL
);
-- The two counts of live holds that every redemption and reservation makes.
CREATE INDEX reservations_held_by_code ON reservations (code, expires_at) WHERE status = 'held';
CREATE INDEX reservations_held_by_user ON reservations (promotion_id, user_id, expires_at) WHERE status = 'held';
-- The sweeper's scan.
CREATE INDEX reservations_by_expiry ON reservations (expires_at);

-- audit_log: every admin change (who, when, what), written in the change's
-- own transaction with its event. ids are UUIDv7 (time-ordered pages).
CREATE TABLE audit_log (
    id           text        COLLATE "C" PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor        text        NOT NULL,
    action       text        NOT NULL,
    promotion_id bigint      NOT NULL,
    code         text        NULL,
    detail       text        NULL
);
CREATE INDEX audit_log_by_promotion ON audit_log (promotion_id, id);

-- topups: codes added to a generated promotion after its creation, each
-- with its own reserved range and batch rows (batch_no continues).
CREATE TABLE topups (
    promotion_id   bigint      NOT NULL,
    topup_no       integer     NOT NULL,
    code_count     bigint      NOT NULL,
    seq_start      bigint      NOT NULL,
    first_batch_no integer     NOT NULL,
    batch_count    integer     NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (promotion_id, topup_no)
);

-- +goose Down
DROP TABLE topups;
DROP TABLE audit_log;
DROP TABLE reservations;
ALTER TABLE promotions DROP COLUMN delete_requested_at, DROP COLUMN deleted_at;
ALTER TABLE idempotency_keys DROP COLUMN reservation_id;
ALTER TABLE codes DROP COLUMN revoked_at, DROP COLUMN revoke_reason;
