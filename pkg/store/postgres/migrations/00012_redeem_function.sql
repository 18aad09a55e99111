-- +goose Up
-- redeem_code is a whole redemption in one round trip: the store calls it in
-- autocommit (one statement, its own transaction at READ COMMITTED) instead of
-- BEGIN, seven statements and COMMIT, each a network round trip while the code
-- row's lock is held. It runs the same steps, in the same lock order (the
-- idempotency key, the code row, the user's allowance row), as the store's
-- statement-by-statement redemption, so every transaction that takes these
-- locks still takes them in one order and cannot deadlock with this one.
--
-- Why it cannot over-redeem:
--   * the use of the code is one conditional UPDATE (used < max, not revoked,
--     active, inside the window). Under READ COMMITTED an UPDATE that finds
--     the row locked waits, then re-evaluates its WHERE against the row as the
--     lock's holder committed it (EvalPlanQual): two redemptions can never both
--     move a count from max-1 to max;
--   * live reservations are counted AFTER that lock is held, by a new
--     statement: a plpgsql function that is VOLATILE takes a new snapshot for
--     each statement under READ COMMITTED, so the count sees every
--     reservation committed by the lock's earlier holders, and nobody adds one
--     to this code until this transaction ends (every reserver, redeemer and
--     confirmer locks the code row first). Uses plus holds over the maximum:
--     the use is taken back in the same transaction and refused;
--   * the per-user allowance is the same pattern on the (promotion, user) row:
--     a conditional upsert (used < limit), then the user's live holds counted
--     under its lock;
--   * the idempotency claim is an INSERT ... ON CONFLICT DO NOTHING: a second
--     request with the same key waits for the first's transaction, then
--     inserts nothing and is answered from the first's record (outcome
--     'replay'; the store reads the record).
-- Nothing reads a count and decides in the client.
--
-- A refusal keeps its exact reason: when the conditional UPDATE matched no
-- row, the reason is read from the code's and the promotion's state in the
-- order redemption's rules check them (deletion requested, revoked,
-- deactivated, not started, expired, else exhausted); the refusal is written
-- into the idempotency record in the same transaction.
--
-- Arguments: redemption id, code (canonical), user, order id (NULL: none),
-- metadata (NULL: none), now, idempotency key ('' for none), request hash,
-- outbox stream, and the event's payload around the three values only this
-- function knows: p_head || promotion id || p_body || uses left ||
-- '},"codeUses":' || the code's uses || '}' is exactly the JSON the store
-- would have encoded. Answers outcome ('redeemed', 'replay' or a refusal
-- reason), the code's promotion (NULL when the code does not exist or on a
-- replay) and the uses left.
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

-- +goose Down
DROP FUNCTION redeem_code(text, text, text, text, text, timestamptz, text, text, text, text, text);
