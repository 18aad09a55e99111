-- +goose Up
-- Personal codes: a generated code may be issued to (bound to) one user, and a
-- promotion may carry eligibility rules; the audit trail keeps what a
-- redemption said about its order and shopper, and where it came from.
--
-- codes: the three columns are NULL on every code until it is issued (no
-- rewrite of existing rows: ADD COLUMN without a default is catalog-only).
-- The partial index holds issued codes only, so the bulk load of a promotion
-- writes no entry into it; issuance finds unassigned codes through the
-- promotion's BRIN range (docs/store.md, "Personal codes").
ALTER TABLE codes ADD COLUMN user_id text, ADD COLUMN issuance_id text, ADD COLUMN issued_at timestamptz;
CREATE INDEX codes_by_user ON codes (user_id, issued_at) WHERE user_id IS NOT NULL;

-- Where each promotion's last issuance began taking codes (a heap page): the
-- next one reads from there instead of past every code issued before it. A
-- hint only (docs/store.md, "Personal codes"): it is written after the
-- issuance commits, skipping a row another issuance is writing, and an
-- issuance that finds too few codes from it looks through the whole
-- promotion. A purge leaves it (ids are never reused; it is one small row).
CREATE TABLE issue_cursors (
    promotion_id bigint PRIMARY KEY,
    next_page    bigint NOT NULL
);

ALTER TABLE promotions ADD COLUMN eligibility text;

ALTER TABLE idempotency_keys ADD COLUMN issuance_id text;

-- What a reservation said about the shopper and the order (the normalised
-- JSON of promo.Shopper, NULL: nothing): its confirmation checks the
-- eligibility rules against it again and writes it into the audit row.
ALTER TABLE reservations ADD COLUMN shopper text;

ALTER TABLE redemptions ADD COLUMN client_addr text, ADD COLUMN user_agent text,
    ADD COLUMN order_amount bigint, ADD COLUMN order_currency text, ADD COLUMN discount bigint,
    ADD COLUMN first_order boolean, ADD COLUMN segments text, ADD COLUMN country text;

-- One row per (redemption, segment) it carried: the stats by segment.
CREATE TABLE redemption_segments (
    redemption_id text   NOT NULL,
    promotion_id  bigint NOT NULL,
    segment       text   NOT NULL,
    PRIMARY KEY (redemption_id, segment)
);
CREATE INDEX redemption_segments_by_promotion ON redemption_segments (promotion_id, segment);

-- redeem_code (00012) learns the personal codes: a code bound to another user
-- is neither used nor counted (not_your_code, named after revoked as the
-- statement path does), the client's address and agent go into the audit row,
-- and a promotion with eligibility rules aborts the statement (SQLSTATE PC001,
-- nothing written) so that the store runs its statement-by-statement path,
-- which checks the rules with the code row's lock held. A request that
-- carries shopper fields takes that path from the start.
-- The user's live holds are counted by the statement that writes the audit
-- row and its event (a new statement after the allowance row's lock, as the
-- separate count was): two statements fewer per redemption.
DROP FUNCTION redeem_code(text, text, text, text, text, timestamptz, text, text, text, text, text);
-- +goose StatementBegin
CREATE FUNCTION redeem_code(p_id text, p_code text, p_user text, p_order text, p_metadata text,
    p_now timestamptz, p_key text, p_hash text, p_stream text, p_head text, p_body text,
    p_client_addr text, p_user_agent text,
    OUT o_outcome text, OUT o_promotion_id bigint, OUT o_uses_left integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_used integer;
    v_max integer;
    v_limit integer;
    v_load integer;
    v_user integer;
    v_rules boolean;
BEGIN
    IF p_key <> '' THEN
        -- The success's record is written now (the redemption's id is known);
        -- a refusal overwrites it below, in this same transaction.
        INSERT INTO idempotency_keys (idem_key, request_hash, redemption_id, created_at)
        VALUES (p_key, p_hash, p_id, p_now)
        ON CONFLICT (idem_key) DO NOTHING;
        IF NOT FOUND THEN
            o_outcome := 'replay';
            RETURN;
        END IF;
    END IF;

    UPDATE codes c SET used = c.used + 1
    FROM promotions p
    WHERE c.code = p_code AND p.id = c.promotion_id
      AND c.used < p.max_usage_per_code
      AND c.revoked_at IS NULL
      AND (c.user_id IS NULL OR c.user_id = p_user)
      AND p.active
      AND (p.starts_at IS NULL OR p.starts_at <= p_now)
      AND (p.expires_at IS NULL OR p.expires_at > p_now)
    RETURNING c.promotion_id, c.used, p.max_usage_per_code, p.per_user_limit, p.eligibility IS NOT NULL
    INTO o_promotion_id, v_used, v_max, v_limit, v_rules;

    IF NOT FOUND THEN
        SELECT c.promotion_id, CASE
                WHEN p.delete_requested_at IS NOT NULL THEN 'promotion_deleted'
                WHEN c.revoked_at IS NOT NULL THEN 'revoked'
                WHEN c.user_id IS NOT NULL AND c.user_id <> p_user THEN 'not_your_code'
                WHEN NOT p.active THEN 'deactivated'
                WHEN p.starts_at IS NOT NULL AND p_now < p.starts_at THEN 'not_started'
                WHEN p.expires_at IS NOT NULL AND p_now >= p.expires_at THEN 'expired'
                ELSE 'code_exhausted' END
        INTO o_promotion_id, o_outcome
        FROM codes c JOIN promotions p ON p.id = c.promotion_id
        WHERE c.code = p_code;
        IF NOT FOUND THEN
            o_outcome := 'code_not_found';
        END IF;
    ELSE
        -- Under the code row's lock, a new snapshot: uses plus live holds.
        SELECT v_used + count(*) INTO v_load FROM reservations r
        WHERE r.code = p_code AND r.promotion_id = o_promotion_id
          AND r.status = 'held' AND r.expires_at > p_now;
        IF v_load > v_max THEN
            o_outcome := 'code_exhausted';
        ELSIF v_rules THEN
            -- The promotion has eligibility rules: the store checks them on its
            -- statement-by-statement path. Abort this whole statement (the
            -- claim and the use with it) so that the store runs that path.
            RAISE EXCEPTION 'promotion % has eligibility rules', o_promotion_id USING ERRCODE = 'PC001';
        ELSIF v_limit <> 0 THEN
            INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES (o_promotion_id, p_user, 1)
            ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used + 1 WHERE u.used < v_limit
            RETURNING u.used INTO v_user;
            IF NOT FOUND THEN
                o_outcome := 'user_limit_reached';
            END IF;
        END IF;
        IF o_outcome IS NOT NULL THEN
            UPDATE codes SET used = used - 1 WHERE code = p_code AND used > 0;
        END IF;
    END IF;

    IF o_outcome IS NOT NULL THEN
        IF p_key <> '' THEN
            UPDATE idempotency_keys SET refused = o_outcome, redemption_id = NULL WHERE idem_key = p_key;
        END IF;
        RETURN;
    END IF;

    o_uses_left := greatest(0, v_max - v_load);
    -- The audit row and its event in one statement. With a per-user limit,
    -- only while the user's uses plus live holds fit: counted by this new
    -- statement, after the allowance row's lock was taken above (a new
    -- snapshot that sees every hold committed by the lock's earlier holders;
    -- no one adds one for this user until this transaction ends).
    WITH red AS (
        INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at, uses_left,
            idempotency_key, client_addr, user_agent)
        SELECT p_id, o_promotion_id, p_code, p_user, p_order, p_metadata, p_now, o_uses_left, NULLIF(p_key, ''),
            NULLIF(p_client_addr, ''), NULLIF(p_user_agent, '')
        WHERE v_limit = 0 OR v_user + (SELECT count(*) FROM reservations r
            WHERE r.promotion_id = o_promotion_id AND r.user_id = p_user
              AND r.status = 'held' AND r.expires_at > p_now) <= v_limit
        RETURNING promotion_id)
    INSERT INTO events (stream, event_key, payload, created_at)
    SELECT p_stream, o_promotion_id::text,
        p_head || o_promotion_id || p_body || o_uses_left || '},"codeUses":' || v_used || '}', p_now
    FROM red;
    IF FOUND THEN
        o_outcome := 'redeemed';
        RETURN;
    END IF;
    -- The user's holds take the last of the allowance: both uses back.
    UPDATE user_uses u SET used = u.used - 1
    WHERE u.promotion_id = o_promotion_id AND u.user_id = p_user AND u.used > 0;
    UPDATE codes SET used = used - 1 WHERE code = p_code AND used > 0;
    o_outcome := 'user_limit_reached';
    o_uses_left := NULL;
    IF p_key <> '' THEN
        UPDATE idempotency_keys SET refused = o_outcome, redemption_id = NULL WHERE idem_key = p_key;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION redeem_code(text, text, text, text, text, timestamptz, text, text, text, text, text, text, text);
-- +goose StatementBegin
CREATE FUNCTION redeem_code(p_id text, p_code text, p_user text, p_order text, p_metadata text,
    p_now timestamptz, p_key text, p_hash text, p_stream text, p_head text, p_body text,
    OUT o_outcome text, OUT o_promotion_id bigint, OUT o_uses_left integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_used integer;
    v_max integer;
    v_limit integer;
    v_load integer;
    v_user integer;
    v_ok boolean := true;
BEGIN
    IF p_key <> '' THEN
        -- The success's record is written now (the redemption's id is known);
        -- a refusal overwrites it below, in this same transaction.
        INSERT INTO idempotency_keys (idem_key, request_hash, redemption_id, created_at)
        VALUES (p_key, p_hash, p_id, p_now)
        ON CONFLICT (idem_key) DO NOTHING;
        IF NOT FOUND THEN
            o_outcome := 'replay';
            RETURN;
        END IF;
    END IF;

    UPDATE codes c SET used = c.used + 1
    FROM promotions p
    WHERE c.code = p_code AND p.id = c.promotion_id
      AND c.used < p.max_usage_per_code
      AND c.revoked_at IS NULL
      AND p.active
      AND (p.starts_at IS NULL OR p.starts_at <= p_now)
      AND (p.expires_at IS NULL OR p.expires_at > p_now)
    RETURNING c.promotion_id, c.used, p.max_usage_per_code, p.per_user_limit
    INTO o_promotion_id, v_used, v_max, v_limit;

    IF NOT FOUND THEN
        SELECT c.promotion_id, CASE
                WHEN p.delete_requested_at IS NOT NULL THEN 'promotion_deleted'
                WHEN c.revoked_at IS NOT NULL THEN 'revoked'
                WHEN NOT p.active THEN 'deactivated'
                WHEN p.starts_at IS NOT NULL AND p_now < p.starts_at THEN 'not_started'
                WHEN p.expires_at IS NOT NULL AND p_now >= p.expires_at THEN 'expired'
                ELSE 'code_exhausted' END
        INTO o_promotion_id, o_outcome
        FROM codes c JOIN promotions p ON p.id = c.promotion_id
        WHERE c.code = p_code;
        IF NOT FOUND THEN
            o_outcome := 'code_not_found';
        END IF;
    ELSE
        -- Under the code row's lock, a new snapshot: uses plus live holds.
        SELECT v_used + count(*) INTO v_load FROM reservations r
        WHERE r.code = p_code AND r.promotion_id = o_promotion_id
          AND r.status = 'held' AND r.expires_at > p_now;
        IF v_load > v_max THEN
            o_outcome := 'code_exhausted';
        ELSIF v_limit <> 0 THEN
            INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES (o_promotion_id, p_user, 1)
            ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used + 1 WHERE u.used < v_limit
            RETURNING u.used INTO v_user;
            v_ok := FOUND;
            IF v_ok THEN
                SELECT v_user + count(*) INTO v_user FROM reservations r
                WHERE r.promotion_id = o_promotion_id AND r.user_id = p_user
                  AND r.status = 'held' AND r.expires_at > p_now;
                IF v_user > v_limit THEN
                    UPDATE user_uses u SET used = u.used - 1
                    WHERE u.promotion_id = o_promotion_id AND u.user_id = p_user AND u.used > 0;
                    v_ok := false;
                END IF;
            END IF;
            IF NOT v_ok THEN
                o_outcome := 'user_limit_reached';
            END IF;
        END IF;
        IF o_outcome IS NOT NULL THEN
            UPDATE codes SET used = used - 1 WHERE code = p_code AND used > 0;
        END IF;
    END IF;

    IF o_outcome IS NOT NULL THEN
        IF p_key <> '' THEN
            UPDATE idempotency_keys SET refused = o_outcome, redemption_id = NULL WHERE idem_key = p_key;
        END IF;
        RETURN;
    END IF;

    o_outcome := 'redeemed';
    o_uses_left := greatest(0, v_max - v_load);
    INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at, uses_left,
        idempotency_key)
    VALUES (p_id, o_promotion_id, p_code, p_user, p_order, p_metadata, p_now, o_uses_left, NULLIF(p_key, ''));
    INSERT INTO events (stream, event_key, payload, created_at)
    VALUES (p_stream, o_promotion_id::text,
        p_head || o_promotion_id || p_body || o_uses_left || '},"codeUses":' || v_used || '}', p_now);
END
$$;
-- +goose StatementEnd
DROP TABLE redemption_segments;
ALTER TABLE redemptions DROP COLUMN client_addr, DROP COLUMN user_agent, DROP COLUMN order_amount,
    DROP COLUMN order_currency, DROP COLUMN discount, DROP COLUMN first_order, DROP COLUMN segments, DROP COLUMN country;
ALTER TABLE reservations DROP COLUMN shopper;
ALTER TABLE idempotency_keys DROP COLUMN issuance_id;
ALTER TABLE promotions DROP COLUMN eligibility;
DROP TABLE issue_cursors;
DROP INDEX codes_by_user;
ALTER TABLE codes DROP COLUMN user_id, DROP COLUMN issuance_id, DROP COLUMN issued_at;
