-- +goose Up
-- Redemption: the promotion's switch, per-user allowances, the
-- audit trail, idempotency records and the event outbox.

-- active: admins switch a promotion off (and on); a deactivated promotion's
-- codes answer "deactivated". A constant default: no table rewrite.
ALTER TABLE promotions ADD COLUMN active boolean NOT NULL DEFAULT true;

-- user_uses is the per-user allowance of a promotion: one row per (promotion,
-- user) that redeemed, used only grows by a conditional upsert and shrinks by
-- a rollback. Promotions without a per-user limit never touch it.
CREATE TABLE user_uses (
    promotion_id bigint  NOT NULL,
    user_id      text    COLLATE "C" NOT NULL,
    used         integer NOT NULL DEFAULT 0,
    PRIMARY KEY (promotion_id, user_id),
    CHECK (used >= 0)
);

-- redemptions is the audit trail: one row per use, never deleted by a
-- rollback (rolled_back_at marks it). ids are UUIDv7: time-ordered, so
-- "newest first" paging is an index scan on (promotion_id, id).
CREATE TABLE redemptions (
    id              text        COLLATE "C" PRIMARY KEY,
    promotion_id    bigint      NOT NULL,
    code            text        COLLATE "C" NOT NULL,
    user_id         text        COLLATE "C" NOT NULL,
    order_id        text        NULL,
    metadata        text        NULL,
    redeemed_at     timestamptz NOT NULL,
    uses_left       integer     NOT NULL,
    rolled_back_at  timestamptz NULL,
    rollback_reason text        NULL,
    idempotency_key text        NULL
);
CREATE INDEX redemptions_by_promotion ON redemptions (promotion_id, id);
CREATE INDEX redemptions_by_user ON redemptions (promotion_id, user_id, id);

-- idempotency_keys remembers what a redemption with an Idempotency-Key
-- answered: a redemption or a refusal reason. Written in the redemption's own
-- transaction.
CREATE TABLE idempotency_keys (
    idem_key      text        COLLATE "C" PRIMARY KEY,
    request_hash  text        NOT NULL,
    refused       text        NULL,
    redemption_id text        NULL,
    created_at    timestamptz NOT NULL
);

-- events is the outbox of the redemptions topic: a row is written in the
-- transaction of the change it reports and published (at least once) by the
-- event publisher. lease_until lets several API replicas share the work:
-- a claimed row is skipped by the others until the lease runs out.
CREATE TABLE events (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream       text        NOT NULL,
    event_key    text        NOT NULL,
    payload      text        NOT NULL,
    created_at   timestamptz NOT NULL,
    lease_until  timestamptz NULL,
    published_at timestamptz NULL
);
CREATE INDEX events_unpublished ON events (seq) WHERE published_at IS NULL;

-- +goose Down
DROP TABLE events;
DROP TABLE idempotency_keys;
DROP TABLE redemptions;
DROP TABLE user_uses;
ALTER TABLE promotions DROP COLUMN active;
