-- +goose Up
-- reserve_code, confirm_reservation and rollback_redemption are a
-- reservation, its confirmation and a redemption's rollback in one round
-- trip each, as redeem_code (00012, 00013) is a redemption: the store calls
-- each in autocommit (one statement, its own transaction at READ COMMITTED)
-- instead of BEGIN, four to nine statements and COMMIT, each a network round
-- trip while row locks are held. Each runs the store's statement-by-statement
-- steps in the same lock order (idempotency key, code row, allowance row,
-- reservation row; a rollback: its redemption row, the code row, the
-- allowance row), so no transaction that takes these locks can deadlock with
-- them.
--
-- Why they cannot over-redeem or over-reserve at READ COMMITTED:
--   * every change to a code's count goes through one conditional UPDATE of
--     the code row (reserve: used = used, on every condition of a use, to
--     lock it; confirm: used + 1 while used < max). An UPDATE that finds the
--     row locked waits, then re-evaluates its WHERE against the row as the
--     lock's holder committed it (EvalPlanQual), so two transactions never
--     both move a count from max-1 to max;
--   * live reservations are counted AFTER the code row's lock is held, by a
--     new statement: a VOLATILE plpgsql function takes a new snapshot for each
--     statement under READ COMMITTED, so the count sees every reservation and
--     use committed by the lock's earlier holders, and no one adds either to
--     this code before this transaction ends (every reserver, redeemer and
--     confirmer locks the code row first). A reservation that does not fit
--     (uses + holds + 1 > max) is refused; a confirmation whose use does not
--     fit (uses + other holds > max: its own hold is not counted) gives the use
--     back in the same transaction and is refused;
--   * the user's allowance is the same pattern on the (promotion, user) row: a
--     conditional upsert (used < limit) takes its lock, then the user's live
--     holds are counted under it;
--   * a confirmation settles its reservation with a conditional UPDATE
--     (status = 'held'): of two racing confirmations (or a confirm and a
--     release) one matches, the other waits for its lock, re-checks, matches
--     nothing, gives back the use it took and is answered from what the first
--     did (outcome 'settled');
--   * a rollback marks its redemption with a conditional UPDATE
--     (rolled_back_at IS NULL): one rollback gives the use back, a second one
--     waits, matches nothing and is answered with the redemption as it is
--     ('replayed'). The use goes back to the code row of the redemption's own
--     promotion, never below 0.
-- Nothing reads a count and decides in the client.
--
-- Refusals keep their exact reasons: when the code's conditional UPDATE
-- matched no row the reason is read from the code's and the promotion's state
-- in the order the store checks them (deletion requested, revoked, bound to
-- another user, deactivated, not started, expired, else exhausted), as
-- redeem_code does. A reservation of a promotion with eligibility rules aborts
-- the statement (SQLSTATE PC001, nothing written) and the store reserves on its
-- statement path, which checks the rules under the code row's lock; so does a
-- request with shopper fields, from the start. A confirmation checks the rules
-- again as they are now, so it too aborts with PC001 on a promotion with
-- rules, or when its reservation kept what it said about the shopper (the
-- statement path checks them against that, and its audit row keeps it); a
-- confirmation that carries shopper fields of its own never takes it.
--
-- The events: a confirmation's payload is the store's encoding of the
-- redemption with the promotion id, the reservation's code and user, the
-- uses left and the code's uses filled in here (the caller passes the parts
-- around them); a rollback's payload is assembled here from the audit row, in
-- the encoding the store's own rollback writes (encoding/json: field order,
-- omitted empty fields, HTML-safe string escapes, RFC 3339 times, amounts as
-- decimal strings, metadata compacted).

-- +goose StatementBegin
-- promo_json_string is t as a JSON string, escaped as Go's encoding/json
-- escapes it: to_json's escapes plus <, >, & and U+2028/U+2029 (which
-- to_json leaves as they are and never produces itself).
CREATE FUNCTION promo_json_string(t text) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
SELECT replace(replace(replace(replace(replace(to_json(t)::text,
    '<', '\u003c'), '>', '\u003e'), '&', '\u0026'), U&'\2028', '\u2028'), U&'\2029', '\u2029')
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- promo_json_time is t as Go's time.Time encodes in UTC: RFC 3339 with the
-- fraction's trailing zeros (and a bare dot) cut.
CREATE FUNCTION promo_json_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
SELECT '"' || rtrim(rtrim(to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '0'), '.') || 'Z"'
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- promo_json_amount is an amount in 1/10,000 of a unit as promo.Amount
-- encodes it: a decimal string with two to four fraction digits.
CREATE FUNCTION promo_json_amount(a bigint) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
SELECT '"' || CASE WHEN a < 0 THEN '-' ELSE '' END || (abs(a) / 10000)::text || '.'
    || regexp_replace(lpad((abs(a) % 10000)::text, 4, '0'), '0{1,2}$', '') || '"'
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- promo_json_raw is stored JSON text as Go writes a json.RawMessage:
-- whitespace outside strings removed, then the HTML-safe escapes (inside
-- strings: valid JSON has these characters nowhere else).
CREATE FUNCTION promo_json_raw(j text) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
SELECT replace(replace(replace(replace(replace(
    regexp_replace(j, '("(?:[^"\\]|\\.)*")|[ \t\n\r]+', '\1', 'g'),
    '<', '\u003c'), '>', '\u003e'), '&', '\u0026'), U&'\2028', '\u2028'), U&'\2029', '\u2029')
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- reserve_code: the store's Reserve. Arguments: reservation id, code
-- (canonical), user, now, expires at, idempotency key ('' for none), request
-- hash. Answers the outcome ('reserved', 'replay' for a key already recorded
-- (the store reads the record), or the refusal reason) and the code's
-- promotion (NULL: no such code).
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

    -- The code row's lock, on every condition of a use (used = used).
    UPDATE codes c SET used = c.used
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
        IF v_load + 1 > v_max THEN
            o_outcome := 'code_exhausted';
        ELSIF v_rules THEN
            RAISE EXCEPTION 'promotion % has eligibility rules', o_promotion_id USING ERRCODE = 'PC001';
        ELSIF v_limit <> 0 THEN
            INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES (o_promotion_id, p_user, 0)
            ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used WHERE u.used < v_limit
            RETURNING u.used INTO v_load;
            IF NOT FOUND THEN
                o_outcome := 'user_limit_reached';
            ELSE
                SELECT v_load + count(*) INTO v_load FROM reservations r
                WHERE r.promotion_id = o_promotion_id AND r.user_id = p_user
                  AND r.status = 'held' AND r.expires_at > p_now;
                IF v_load + 1 > v_limit THEN
                    o_outcome := 'user_limit_reached';
                END IF;
            END IF;
        END IF;
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
-- confirm_reservation: the store's Confirm. Arguments: reservation id,
-- redemption id, order id ('' for none), metadata (NULL: none), now, outbox
-- stream, the event's payload parts (head || promotion id || p_mid || code ||
-- ',"userId":' || user || p_body || uses left || '},"codeUses":' || code uses
-- || '}'), the confirming client's address and user agent ('' for none: the
-- audit row's). Answers the outcome ('confirmed'; 'settled' when the reservation
-- is no longer held, or a racing settlement won: the store answers from the
-- rows; 'not_found'; or the refusal reason), and on 'confirmed' the
-- redemption's promotion, code, user and uses left.
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
    v_user integer;
    v_rules boolean;
    v_ok boolean := true;
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

    -- The use, taken as a redemption's (the reservation's own hold is not
    -- counted below).
    UPDATE codes c SET used = c.used + 1
    FROM promotions p
    WHERE c.code = r.code AND p.id = c.promotion_id
      AND c.used < p.max_usage_per_code
      AND c.revoked_at IS NULL
      AND (c.user_id IS NULL OR c.user_id = r.user_id)
      AND p.active
      AND (p.starts_at IS NULL OR p.starts_at <= p_now)
      AND (p.expires_at IS NULL OR p.expires_at > p_now)
    RETURNING c.promotion_id, c.used, p.max_usage_per_code, p.per_user_limit, p.eligibility IS NOT NULL
    INTO v_pid, v_used, v_max, v_limit, v_rules;

    IF FOUND AND v_rules THEN
        -- Nothing of this statement stays: the store confirms on its
        -- statement path, which checks the rules in force.
        RAISE EXCEPTION 'promotion % has eligibility rules', v_pid USING ERRCODE = 'PC001';
    END IF;
    IF NOT FOUND THEN
        SELECT CASE
                WHEN p.delete_requested_at IS NOT NULL THEN 'promotion_deleted'
                WHEN c.revoked_at IS NOT NULL THEN 'revoked'
                WHEN c.user_id IS NOT NULL AND c.user_id <> r.user_id THEN 'not_your_code'
                WHEN NOT p.active THEN 'deactivated'
                WHEN p.starts_at IS NOT NULL AND p_now < p.starts_at THEN 'not_started'
                WHEN p.expires_at IS NOT NULL AND p_now >= p.expires_at THEN 'expired'
                ELSE 'code_exhausted' END
        INTO o_outcome
        FROM codes c JOIN promotions p ON p.id = c.promotion_id
        WHERE c.code = r.code;
        IF NOT FOUND THEN
            o_outcome := 'code_not_found';
        END IF;
    ELSE
        SELECT v_used + count(*) INTO v_load FROM reservations x
        WHERE x.code = r.code AND x.promotion_id = v_pid
          AND x.status = 'held' AND x.expires_at > p_now AND x.id <> p_id;
        IF v_load > v_max THEN
            o_outcome := 'code_exhausted';
        ELSIF v_limit <> 0 THEN
            INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES (v_pid, r.user_id, 1)
            ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used + 1 WHERE u.used < v_limit
            RETURNING u.used INTO v_user;
            v_ok := FOUND;
            IF v_ok THEN
                SELECT v_user + count(*) INTO v_user FROM reservations x
                WHERE x.promotion_id = v_pid AND x.user_id = r.user_id
                  AND x.status = 'held' AND x.expires_at > p_now AND x.id <> p_id;
                IF v_user > v_limit THEN
                    UPDATE user_uses u SET used = u.used - 1
                    WHERE u.promotion_id = v_pid AND u.user_id = r.user_id AND u.used > 0;
                    v_ok := false;
                END IF;
            END IF;
            IF NOT v_ok THEN
                o_outcome := 'user_limit_reached';
            END IF;
        END IF;
        IF o_outcome IS NOT NULL THEN
            UPDATE codes SET used = used - 1 WHERE code = r.code AND used > 0;
        END IF;
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

-- +goose StatementBegin
-- rollback_redemption: the store's Rollback. Arguments: redemption id, now,
-- reason ('' for none), outbox stream, the event's head (up to the promotion
-- id's digits) and its rollback fields ('"rolledBackAt":...' and, with a
-- reason, ',"rollbackReason":...'), the event row's time. Answers the outcome
-- ('rolled_back'; 'replayed': it was rolled back before, nothing released;
-- 'not_found') and the redemption row as it is after the call (on
-- 'not_found' only its id is set).
CREATE FUNCTION rollback_redemption(p_id text, p_now timestamptz, p_reason text, p_stream text, p_head text,
    p_rolled text, p_created timestamptz, OUT o_outcome text, OUT o_r redemptions)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_used integer;
    v_found boolean;
    v_segments text;
BEGIN
    UPDATE redemptions SET rolled_back_at = p_now, rollback_reason = NULLIF(p_reason, '')
    WHERE id = p_id AND rolled_back_at IS NULL
    RETURNING * INTO o_r;
    IF NOT FOUND THEN
        SELECT * INTO o_r FROM redemptions WHERE id = p_id;
        IF FOUND THEN
            o_outcome := 'replayed';
        ELSE
            o_outcome := 'not_found';
            o_r.id := p_id;
            o_r.promotion_id := 0;
            o_r.code := '';
            o_r.user_id := '';
            o_r.redeemed_at := p_now;
            o_r.uses_left := 0;
        END IF;
        RETURN;
    END IF;

    -- The use goes back to the code row of the redemption's own promotion.
    UPDATE codes SET used = used - 1
    WHERE code = o_r.code AND promotion_id = o_r.promotion_id AND used > 0
    RETURNING used INTO v_used;
    v_found := FOUND;
    o_r.rollback_code_release := CASE WHEN v_found THEN 'released' ELSE 'code_gone' END;
    UPDATE redemptions SET rollback_code_release = o_r.rollback_code_release WHERE id = p_id;
    UPDATE user_uses SET used = used - 1
    WHERE promotion_id = o_r.promotion_id AND user_id = o_r.user_id AND used > 0;

    IF COALESCE(o_r.segments, '') <> '' THEN
        SELECT ',"segments":[' || string_agg(promo_json_string(s), ',' ORDER BY n) || ']' INTO v_segments
        FROM unnest(string_to_array(o_r.segments, E'\n')) WITH ORDINALITY AS t(s, n);
    END IF;
    o_outcome := 'rolled_back';
    INSERT INTO events (stream, event_key, payload, created_at)
    VALUES (p_stream, o_r.promotion_id::text, p_head || o_r.promotion_id
        || '","redemption":{"id":' || promo_json_string(o_r.id)
        || ',"code":' || promo_json_string(o_r.code)
        || ',"userId":' || promo_json_string(o_r.user_id)
        || CASE WHEN COALESCE(o_r.order_id, '') <> '' THEN ',"orderId":' || promo_json_string(o_r.order_id) ELSE '' END
        || CASE WHEN COALESCE(o_r.metadata, '') <> '' THEN ',"metadata":' || promo_json_raw(o_r.metadata) ELSE '' END
        || ',"redeemedAt":' || promo_json_time(o_r.redeemed_at)
        || ',"usesLeft":' || o_r.uses_left
        || ',' || p_rolled
        || ',"codeRelease":"' || o_r.rollback_code_release || '"'
        || CASE WHEN COALESCE(o_r.order_currency, '') <> '' THEN ',"order":{"amount":'
                || promo_json_amount(COALESCE(o_r.order_amount, 0)) || ',"currency":' || promo_json_string(o_r.order_currency)
                || COALESCE(',"discount":' || promo_json_amount(o_r.discount), '') || '}'
            ELSE '' END
        || COALESCE(v_segments, '')
        || CASE WHEN COALESCE(o_r.country, '') <> '' THEN ',"country":' || promo_json_string(o_r.country) ELSE '' END
        || CASE WHEN o_r.first_order IS NULL THEN '' WHEN o_r.first_order THEN ',"firstOrder":true'
            ELSE ',"firstOrder":false' END
        || '}' || CASE WHEN v_found THEN ',"codeUses":' || v_used ELSE '' END || '}',
        p_created);
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION rollback_redemption(text, timestamptz, text, text, text, text, timestamptz);
DROP FUNCTION confirm_reservation(text, text, text, text, timestamptz, text, text, text, text, text, text);
DROP FUNCTION reserve_code(text, text, text, timestamptz, timestamptz, text, text);
DROP FUNCTION promo_json_raw(text);
DROP FUNCTION promo_json_amount(bigint);
DROP FUNCTION promo_json_time(timestamptz);
DROP FUNCTION promo_json_string(text);
