-- +goose Up
-- One refusal decision for the one-statement functions. redeem_code (00013),
-- redeem_code_batch (00014), reserve_code and confirm_reservation (00015)
-- each carried their own copy of a code's conditional use and of the CASE
-- that names a refusal; they are redefined here on three shared functions:
--   * promo_refusal(code row, promotion row, user, now): why a use is
--     refused, in the order promo.CodeState.Status checks (deletion
--     requested, revoked, bound to another user, deactivated, not started,
--     expired, used up), NULL when it is allowed. It is both the WHERE of the
--     conditional use and, when that matched no row, the reason; so a new
--     reason (a new column of codes or promotions and a WHEN here) is one
--     CREATE OR REPLACE of this function: its arguments are whole rows, and
--     every function below follows. It is one SQL expression, inlined by the
--     planner into the statements that call it (no call per row; a cached
--     plan is invalidated when it is replaced);
--   * promo_use_code: the code's conditional UPDATE (a use, or the lock alone
--     for a reservation and a batch), the refusal's reason when it matched no
--     row, and the code's uses plus live holds counted under its lock;
--   * promo_use_allowance: the user's conditional upsert, then the user's
--     live holds counted under that row's lock (redeem_code keeps its own,
--     folded into the statement that writes the audit row: two statements
--     fewer on the hot path).
--
-- Why nothing can over-redeem or over-reserve is unchanged (the headers of
-- 00012, 00013, 00014 and 00015 say it at length): every use or hold of a
-- code goes through the conditional UPDATE of its row; under READ COMMITTED
-- an UPDATE that finds the row locked waits, then re-evaluates its WHERE
-- (promo_refusal(...) IS NULL, which includes used < max) against the row as
-- the lock's holder committed it; the holds are counted after the lock is
-- taken, by a new statement of a VOLATILE function (a new snapshot that sees
-- every earlier holder's commit); the allowance row likewise. The reason of a
-- refusal is read after the failed UPDATE, for naming it only, as the
-- store's statement path does. Lock order, statements and outcomes are
-- those of the definitions replaced; one path is shorter: a batch on a bound
-- code that an earlier reason refuses (revoked, deleted) answers that reason
-- itself instead of aborting for redeem_code to answer it request by request.
--
-- The replaced definitions stay, renamed v18_*, unused, so that Down
-- restores them exactly.
ALTER FUNCTION redeem_code(text, text, text, text, text, timestamptz, text, text, text, text, text, text, text)
    RENAME TO v18_redeem_code;
ALTER FUNCTION redeem_code_batch(text, timestamptz, text[], text[], text[], text[], timestamptz[], text[], text[],
    text, text[], text[], text[], text[]) RENAME TO v18_redeem_code_batch;
ALTER FUNCTION reserve_code(text, text, text, timestamptz, timestamptz, text, text) RENAME TO v18_reserve_code;
ALTER FUNCTION confirm_reservation(text, text, text, text, timestamptz, text, text, text, text, text, text)
    RENAME TO v18_confirm_reservation;

-- +goose StatementBegin
-- A NULL p_user (a batch's lock) is no code's owner: a bound code is refused.
CREATE FUNCTION promo_refusal(c codes, p promotions, p_user text, p_now timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN p.delete_requested_at IS NOT NULL THEN 'promotion_deleted'
    WHEN c.revoked_at IS NOT NULL THEN 'revoked'
    WHEN c.user_id IS NOT NULL AND c.user_id IS DISTINCT FROM p_user THEN 'not_your_code'
    WHEN NOT p.active THEN 'deactivated'
    WHEN p_now < p.starts_at THEN 'not_started'
    WHEN p_now >= p.expires_at THEN 'expired'
    WHEN c.used >= p.max_usage_per_code THEN 'code_exhausted'
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- promo_use_code adds p_add uses (1: a use; 0: the row's lock alone) to
-- p_code for p_user at p_now. Answers o_refused NULL and the code's
-- promotion, uses after the UPDATE, maximum, per-user limit, whether the
-- promotion has eligibility rules, and o_load: the uses plus the live holds
-- but p_except's (a confirmed reservation's own). o_refused names a refusal:
-- promo_refusal's when the UPDATE matched no row (code_exhausted when the
-- state allows a use again: a concurrent change), code_not_found for no such
-- code, or code_exhausted when the holds leave no room for one more use
-- (load + 1 - p_add > max), the added use then taken back.
CREATE FUNCTION promo_use_code(p_code text, p_user text, p_now timestamptz, p_add integer, p_except text,
    OUT o_refused text, OUT o_promotion_id bigint, OUT o_used integer, OUT o_max integer, OUT o_limit integer,
    OUT o_rules boolean, OUT o_load integer)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    UPDATE codes c SET used = c.used + p_add
    FROM promotions p
    WHERE c.code = p_code AND p.id = c.promotion_id AND promo_refusal(c, p, p_user, p_now) IS NULL
    RETURNING c.promotion_id, c.used, p.max_usage_per_code, p.per_user_limit, p.eligibility IS NOT NULL
    INTO o_promotion_id, o_used, o_max, o_limit, o_rules;
    IF NOT FOUND THEN
        SELECT c.promotion_id, coalesce(promo_refusal(c, p, p_user, p_now), 'code_exhausted')
        INTO o_promotion_id, o_refused
        FROM codes c JOIN promotions p ON p.id = c.promotion_id
        WHERE c.code = p_code;
        o_refused := coalesce(o_refused, 'code_not_found');
        RETURN;
    END IF;
    -- Under the code row's lock, a new snapshot: uses plus live holds.
    SELECT o_used + count(*) INTO o_load FROM reservations r
    WHERE r.code = p_code AND r.promotion_id = o_promotion_id
      AND r.status = 'held' AND r.expires_at > p_now AND r.id IS DISTINCT FROM p_except;
    IF o_load + 1 - p_add > o_max THEN
        o_refused := 'code_exhausted';
        IF p_add > 0 THEN
            UPDATE codes SET used = used - p_add WHERE code = p_code AND used > 0;
        END IF;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- promo_use_allowance adds p_add uses (1: a use; 0: the row's lock alone) to
-- p_user's allowance in promotion p_pid, whose limit is p_limit; true when
-- the uses plus the user's live holds but p_except's, counted under the
-- row's lock, leave room for the use; false, having added nothing, when not.
CREATE FUNCTION promo_use_allowance(p_pid bigint, p_user text, p_limit integer, p_now timestamptz, p_add integer,
    p_except text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_load integer;
BEGIN
    INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES (p_pid, p_user, p_add)
    ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used + p_add WHERE u.used < p_limit
    RETURNING u.used INTO v_load;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    SELECT v_load + count(*) INTO v_load FROM reservations r
    WHERE r.promotion_id = p_pid AND r.user_id = p_user
      AND r.status = 'held' AND r.expires_at > p_now AND r.id IS DISTINCT FROM p_except;
    IF v_load + 1 - p_add <= p_limit THEN
        RETURN true;
    END IF;
    IF p_add > 0 THEN
        UPDATE user_uses u SET used = u.used - p_add
        WHERE u.promotion_id = p_pid AND u.user_id = p_user AND u.used > 0;
    END IF;
    RETURN false;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- redeem_code: as 00013 (arguments, answers, the eligibility rules' PC001).
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

    SELECT * INTO o_outcome, o_promotion_id, v_used, v_max, v_limit, v_rules, v_load
    FROM promo_use_code(p_code, p_user, p_now, 1, NULL);
    IF o_outcome IS NULL AND v_rules THEN
        -- The store checks the rules on its statement-by-statement path.
        RAISE EXCEPTION 'promotion % has eligibility rules', o_promotion_id USING ERRCODE = 'PC001';
    ELSIF o_outcome IS NULL AND v_limit <> 0 THEN
        INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES (o_promotion_id, p_user, 1)
        ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used + 1 WHERE u.used < v_limit
        RETURNING u.used INTO v_user;
        IF NOT FOUND THEN
            o_outcome := 'user_limit_reached';
            UPDATE codes SET used = used - 1 WHERE code = p_code AND used > 0;
        END IF;
    END IF;

    IF o_outcome IS NULL THEN
        o_uses_left := greatest(0, v_max - v_load);
        -- The audit row and its event in one statement. With a per-user
        -- limit, only while the user's uses plus live holds fit: counted by
        -- this new statement, after the allowance row's lock was taken above.
        WITH red AS (
            INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at, uses_left,
                idempotency_key, client_addr, user_agent)
            SELECT p_id, o_promotion_id, p_code, p_user, p_order, p_metadata, p_now, o_uses_left,
                NULLIF(p_key, ''), NULLIF(p_client_addr, ''), NULLIF(p_user_agent, '')
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
    END IF;
    IF p_key <> '' THEN
        UPDATE idempotency_keys SET refused = o_outcome, redemption_id = NULL WHERE idem_key = p_key;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- redeem_code_batch: as 00014. The code row is locked with promo_use_code (no
-- user: a bound code is refused not_your_code there, and aborts the
-- statement with PC001 here, as before).
CREATE FUNCTION redeem_code_batch(p_code text, p_now timestamptz, p_ids text[], p_users text[], p_orders text[],
    p_metadata text[], p_redeemed_at timestamptz[], p_keys text[], p_hashes text[], p_stream text, p_heads text[],
    p_bodies text[], p_addrs text[], p_agents text[])
RETURNS TABLE (o_idx integer, o_outcome text, o_promotion_id bigint, o_uses_left integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n integer := cardinality(p_ids);
    outcomes text[] := array_fill(NULL::text, ARRAY[n]);
    lefts integer[] := array_fill(NULL::integer, ARRAY[n]);
    v_pid bigint;
    v_used integer;
    v_max integer;
    v_limit integer;
    v_load integer;
    v_reason text;
    v_rules boolean;
    v_granted integer := 0;
    k integer := 0;
    i integer;
BEGIN
    FOR i IN SELECT t.ord FROM unnest(p_keys) WITH ORDINALITY AS t(key, ord) WHERE t.key <> '' ORDER BY t.key, t.ord LOOP
        INSERT INTO idempotency_keys (idem_key, request_hash, redemption_id, created_at)
        VALUES (p_keys[i], p_hashes[i], p_ids[i], p_redeemed_at[i])
        ON CONFLICT (idem_key) DO NOTHING;
        IF NOT FOUND THEN
            outcomes[i] := 'replay';
        END IF;
    END LOOP;

    IF EXISTS (SELECT 1 FROM unnest(outcomes) AS o WHERE o IS NULL) THEN
        SELECT * INTO v_reason, v_pid, v_used, v_max, v_limit, v_rules, v_load
        FROM promo_use_code(p_code, NULL, p_now, 0, NULL);
        IF v_rules THEN
            RAISE EXCEPTION 'promotion % has eligibility rules', v_pid USING ERRCODE = 'PC001';
        ELSIF v_reason = 'not_your_code' THEN
            RAISE EXCEPTION 'code % is bound to a user', p_code USING ERRCODE = 'PC001';
        ELSIF v_reason IS NOT NULL THEN
            FOR i IN 1..n LOOP
                IF outcomes[i] IS NULL THEN
                    outcomes[i] := v_reason;
                END IF;
            END LOOP;
        ELSE
            FOR i IN SELECT t.ord FROM unnest(p_users) WITH ORDINALITY AS t(u, ord) ORDER BY t.u, t.ord LOOP
                CONTINUE WHEN outcomes[i] IS NOT NULL;
                IF v_load + v_granted >= v_max THEN
                    outcomes[i] := 'code_exhausted';
                ELSIF v_limit <> 0 AND NOT promo_use_allowance(v_pid, p_users[i], v_limit, p_now, 1, NULL) THEN
                    outcomes[i] := 'user_limit_reached';
                ELSE
                    outcomes[i] := 'redeemed';
                    v_granted := v_granted + 1;
                END IF;
            END LOOP;
            IF v_granted > 0 THEN
                UPDATE codes c SET used = c.used + v_granted
                FROM promotions p
                WHERE c.code = p_code AND p.id = c.promotion_id AND c.used + v_granted <= p.max_usage_per_code;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'redeem_code_batch: the uses of % changed under its lock', p_code;
                END IF;
            END IF;
            FOR i IN 1..n LOOP
                CONTINUE WHEN outcomes[i] IS DISTINCT FROM 'redeemed';
                k := k + 1;
                lefts[i] := greatest(0, v_max - v_load - k);
                INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at, uses_left,
                    idempotency_key, client_addr, user_agent)
                VALUES (p_ids[i], v_pid, p_code, p_users[i], p_orders[i], p_metadata[i], p_redeemed_at[i], lefts[i],
                    NULLIF(p_keys[i], ''), NULLIF(p_addrs[i], ''), NULLIF(p_agents[i], ''));
                INSERT INTO events (stream, event_key, payload, created_at)
                VALUES (p_stream, v_pid::text,
                    p_heads[i] || v_pid || p_bodies[i] || lefts[i] || '},"codeUses":' || (v_used + k) || '}',
                    p_redeemed_at[i]);
            END LOOP;
        END IF;
        UPDATE idempotency_keys SET refused = t.o, redemption_id = NULL
        FROM unnest(p_keys, outcomes) AS t(key, o)
        WHERE idem_key = t.key AND t.key <> '' AND t.o NOT IN ('redeemed', 'replay');
    END IF;

    RETURN QUERY SELECT t.ord::integer, t.o, CASE WHEN t.o = 'replay' THEN NULL ELSE v_pid END, lefts[t.ord]
        FROM unnest(outcomes) WITH ORDINALITY AS t(o, ord);
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- reserve_code: as 00015.
CREATE FUNCTION reserve_code(p_id text, p_code text, p_user text, p_now timestamptz, p_expires timestamptz,
    p_key text, p_hash text, OUT o_outcome text, OUT o_promotion_id bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_used integer;
    v_max integer;
    v_limit integer;
    v_rules boolean;
    v_load integer;
BEGIN
    IF p_key <> '' THEN
        INSERT INTO idempotency_keys (idem_key, request_hash, reservation_id, created_at)
        VALUES (p_key, p_hash, p_id, p_now)
        ON CONFLICT (idem_key) DO NOTHING;
        IF NOT FOUND THEN
            o_outcome := 'replay';
            RETURN;
        END IF;
    END IF;

    SELECT * INTO o_outcome, o_promotion_id, v_used, v_max, v_limit, v_rules, v_load
    FROM promo_use_code(p_code, p_user, p_now, 0, NULL);
    IF o_outcome IS NULL AND v_rules THEN
        RAISE EXCEPTION 'promotion % has eligibility rules', o_promotion_id USING ERRCODE = 'PC001';
    ELSIF o_outcome IS NULL AND v_limit <> 0 AND NOT promo_use_allowance(o_promotion_id, p_user, v_limit, p_now, 0, NULL) THEN
        o_outcome := 'user_limit_reached';
    END IF;

    IF o_outcome IS NOT NULL THEN
        IF p_key <> '' THEN
            UPDATE idempotency_keys SET refused = o_outcome, reservation_id = NULL WHERE idem_key = p_key;
        END IF;
        RETURN;
    END IF;

    INSERT INTO reservations (id, promotion_id, code, user_id, status, created_at, expires_at)
    VALUES (p_id, o_promotion_id, p_code, p_user, 'held', p_now, p_expires);
    o_outcome := 'reserved';
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- confirm_reservation: as 00015. The use is taken as a redemption's, its
-- reservation's own hold not counted.
CREATE FUNCTION confirm_reservation(p_id text, p_redemption text, p_order text, p_metadata text,
    p_now timestamptz, p_stream text, p_head text, p_mid text, p_body text, p_client_addr text, p_user_agent text,
    OUT o_outcome text, OUT o_promotion_id bigint, OUT o_code text, OUT o_user text, OUT o_uses_left integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r reservations%ROWTYPE;
    v_pid bigint;
    v_used integer;
    v_max integer;
    v_limit integer;
    v_load integer;
    v_rules boolean;
    v_ok boolean;
BEGIN
    SELECT * INTO r FROM reservations WHERE id = p_id;
    IF NOT FOUND THEN
        o_outcome := 'not_found';
        RETURN;
    END IF;
    IF r.status <> 'held' THEN
        o_outcome := 'settled';
        RETURN;
    END IF;
    IF r.shopper IS NOT NULL THEN
        RAISE EXCEPTION 'reservation % kept its shopper', p_id USING ERRCODE = 'PC001';
    END IF;

    SELECT * INTO o_outcome, v_pid, v_used, v_max, v_limit, v_rules, v_load
    FROM promo_use_code(r.code, r.user_id, p_now, 1, p_id);
    IF v_rules THEN
        -- Nothing of this statement stays: the store confirms on its
        -- statement path, which checks the rules in force.
        RAISE EXCEPTION 'promotion % has eligibility rules', v_pid USING ERRCODE = 'PC001';
    ELSIF o_outcome IS NULL AND v_limit <> 0 AND NOT promo_use_allowance(v_pid, r.user_id, v_limit, p_now, 1, p_id) THEN
        o_outcome := 'user_limit_reached';
        UPDATE codes SET used = used - 1 WHERE code = r.code AND used > 0;
    END IF;

    IF o_outcome IS NOT NULL THEN
        -- A racing confirmation of this reservation may have taken the use
        -- while this one waited for a lock: answer from what it did.
        IF EXISTS (SELECT 1 FROM reservations x WHERE x.id = p_id AND x.status <> 'held') THEN
            o_outcome := 'settled';
        ELSIF r.expires_at <= p_now AND o_outcome IN ('code_exhausted', 'user_limit_reached') THEN
            o_outcome := 'reservation_expired';
        END IF;
        RETURN;
    END IF;

    IF v_pid = r.promotion_id THEN
        UPDATE reservations SET status = 'confirmed', settled_at = p_now, redemption_id = p_redemption,
            order_id = NULLIF(p_order, '')
        WHERE id = p_id AND status = 'held';
        v_ok := FOUND;
        -- Not matched: a racing confirmation or release settled it while this
        -- one waited for its lock; answered from what that one did.
        o_outcome := CASE WHEN v_ok THEN 'confirmed' ELSE 'settled' END;
    ELSE
        -- The same string now names another promotion's code row (the
        -- reservation's own row is gone): it held nothing of that one.
        v_ok := false;
        o_outcome := 'promotion_deleted';
    END IF;
    IF NOT v_ok THEN
        IF v_limit <> 0 THEN
            UPDATE user_uses u SET used = u.used - 1
            WHERE u.promotion_id = v_pid AND u.user_id = r.user_id AND u.used > 0;
        END IF;
        UPDATE codes SET used = used - 1 WHERE code = r.code AND used > 0;
        RETURN;
    END IF;

    o_promotion_id := v_pid;
    o_code := r.code;
    o_user := r.user_id;
    o_uses_left := greatest(0, v_max - v_load);
    INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at, uses_left,
        client_addr, user_agent)
    VALUES (p_redemption, v_pid, r.code, r.user_id, NULLIF(p_order, ''), p_metadata, p_now, o_uses_left,
        NULLIF(p_client_addr, ''), NULLIF(p_user_agent, ''));
    INSERT INTO events (stream, event_key, payload, created_at)
    VALUES (p_stream, v_pid::text, p_head || v_pid || p_mid || promo_json_string(r.code) || ',"userId":'
        || promo_json_string(r.user_id) || p_body || o_uses_left || '},"codeUses":' || v_used || '}', p_now);
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION confirm_reservation(text, text, text, text, timestamptz, text, text, text, text, text, text);
DROP FUNCTION reserve_code(text, text, text, timestamptz, timestamptz, text, text);
DROP FUNCTION redeem_code_batch(text, timestamptz, text[], text[], text[], text[], timestamptz[], text[], text[], text,
    text[], text[], text[], text[]);
DROP FUNCTION redeem_code(text, text, text, text, text, timestamptz, text, text, text, text, text, text, text);
DROP FUNCTION promo_use_allowance(bigint, text, integer, timestamptz, integer, text);
DROP FUNCTION promo_use_code(text, text, timestamptz, integer, text);
DROP FUNCTION promo_refusal(codes, promotions, text, timestamptz);
ALTER FUNCTION v18_redeem_code(text, text, text, text, text, timestamptz, text, text, text, text, text, text, text)
    RENAME TO redeem_code;
ALTER FUNCTION v18_redeem_code_batch(text, timestamptz, text[], text[], text[], text[], timestamptz[], text[], text[],
    text, text[], text[], text[], text[]) RENAME TO redeem_code_batch;
ALTER FUNCTION v18_reserve_code(text, text, text, timestamptz, timestamptz, text, text) RENAME TO reserve_code;
ALTER FUNCTION v18_confirm_reservation(text, text, text, text, timestamptz, text, text, text, text, text, text)
    RENAME TO confirm_reservation;
