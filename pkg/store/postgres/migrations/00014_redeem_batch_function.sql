-- +goose Up
-- redeem_code_batch is a combined redemption of one code (the store's
-- RedeemBatch) in one round trip: n requests, arrays indexed 1..n in arrival
-- order. It runs RedeemBatch's steps in RedeemBatch's lock order (the
-- idempotency keys in key order, the code row, the allowance rows in user
-- order), so it cannot deadlock with redeem_code, the transaction paths or
-- another batch.
--
-- Why it cannot over-redeem: the code row is locked by a conditional
-- UPDATE (used = used, on every condition of redeem_code: under READ
-- COMMITTED it waits for a holder, then re-checks its WHERE on the committed
-- row); then a new statement (a new snapshot, as in redeem_code) counts uses
-- plus live holds, and nobody can add a use to this code until this
-- transaction ends. At most max minus that load are granted, each also
-- through the user's conditional allowance upsert and the user's live holds
-- under that row's lock (two requests of one user in a batch are counted one
-- after the other, in this transaction). The granted uses are added by one
-- conditional UPDATE that re-checks the maximum. The caller passes no key
-- twice (a repeated key is answered after the call, as a retry).
--
-- Personal codes are not decided here: a code bound to a user (the lock's
-- UPDATE matches no bound code) and a promotion with eligibility rules (read
-- by that UPDATE) abort the whole statement with SQLSTATE PC001, as
-- redeem_code (00013) does for rules, having written nothing; the store then
-- redeems the requests one by one, which answers not_your_code and
-- not_eligible. The client's address and agent go into the audit rows.
--
-- Answers one row per request: its index, outcome ('redeemed', 'replay' or
-- the refusal reason), the code's promotion (NULL: no such code, or a
-- replay), uses left. Events: p_heads[i] || promotion id || p_bodies[i] ||
-- uses left || '},"codeUses":' || the code's uses || '}'.
-- +goose StatementBegin
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
    v_user integer;
    v_reason text;
    v_rules boolean;
    v_bound boolean;
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
        UPDATE codes c SET used = c.used
        FROM promotions p
        WHERE c.code = p_code AND p.id = c.promotion_id
          AND c.used < p.max_usage_per_code
          AND c.revoked_at IS NULL
          AND c.user_id IS NULL
          AND p.active
          AND (p.starts_at IS NULL OR p.starts_at <= p_now)
          AND (p.expires_at IS NULL OR p.expires_at > p_now)
        RETURNING c.promotion_id, c.used, p.max_usage_per_code, p.per_user_limit, p.eligibility IS NOT NULL
        INTO v_pid, v_used, v_max, v_limit, v_rules;
        IF FOUND AND v_rules THEN
            RAISE EXCEPTION 'promotion % has eligibility rules', v_pid USING ERRCODE = 'PC001';
        END IF;
        IF NOT FOUND THEN
            SELECT c.promotion_id, c.user_id IS NOT NULL, CASE
                    WHEN p.delete_requested_at IS NOT NULL THEN 'promotion_deleted'
                    WHEN c.revoked_at IS NOT NULL THEN 'revoked'
                    WHEN NOT p.active THEN 'deactivated'
                    WHEN p.starts_at IS NOT NULL AND p_now < p.starts_at THEN 'not_started'
                    WHEN p.expires_at IS NOT NULL AND p_now >= p.expires_at THEN 'expired'
                    ELSE 'code_exhausted' END
            INTO v_pid, v_bound, v_reason
            FROM codes c JOIN promotions p ON p.id = c.promotion_id
            WHERE c.code = p_code;
            IF NOT FOUND THEN
                v_reason := 'code_not_found';
            ELSIF v_bound THEN
                RAISE EXCEPTION 'code % is bound to a user', p_code USING ERRCODE = 'PC001';
            END IF;
            FOR i IN 1..n LOOP
                IF outcomes[i] IS NULL THEN
                    outcomes[i] := v_reason;
                END IF;
            END LOOP;
        ELSE
            SELECT v_used + count(*) INTO v_load FROM reservations r
            WHERE r.code = p_code AND r.promotion_id = v_pid AND r.status = 'held' AND r.expires_at > p_now;
            FOR i IN SELECT t.ord FROM unnest(p_users) WITH ORDINALITY AS t(u, ord) ORDER BY t.u, t.ord LOOP
                CONTINUE WHEN outcomes[i] IS NOT NULL;
                IF v_load + v_granted >= v_max THEN
                    outcomes[i] := 'code_exhausted';
                    CONTINUE;
                END IF;
                IF v_limit <> 0 THEN
                    INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES (v_pid, p_users[i], 1)
                    ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used + 1 WHERE u.used < v_limit
                    RETURNING u.used INTO v_user;
                    IF NOT FOUND THEN
                        outcomes[i] := 'user_limit_reached';
                        CONTINUE;
                    END IF;
                    SELECT v_user + count(*) INTO v_user FROM reservations r
                    WHERE r.promotion_id = v_pid AND r.user_id = p_users[i]
                      AND r.status = 'held' AND r.expires_at > p_now;
                    IF v_user > v_limit THEN
                        UPDATE user_uses u SET used = u.used - 1
                        WHERE u.promotion_id = v_pid AND u.user_id = p_users[i] AND u.used > 0;
                        outcomes[i] := 'user_limit_reached';
                        CONTINUE;
                    END IF;
                END IF;
                outcomes[i] := 'redeemed';
                v_granted := v_granted + 1;
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

-- +goose Down
DROP FUNCTION redeem_code_batch(text, timestamptz, text[], text[], text[], text[], timestamptz[], text[], text[], text,
    text[], text[], text[], text[]);
