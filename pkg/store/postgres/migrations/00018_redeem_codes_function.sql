-- +goose Up
-- redeem_codes is group commit on PostgreSQL: n concurrent redemptions of
-- any codes, gathered by one API process (the store's Redeem, see
-- docs/store.md), redeemed in ONE statement in autocommit, so in one round
-- trip and one transaction that shares one commit (one WAL flush) instead of
-- one each. Arrays indexed 1..n; the caller orders the members by code.
--
-- Each member is exactly one call of redeem_code (00013) with its own
-- arguments, in array order, in this one transaction at READ COMMITTED:
-- every statement inside redeem_code takes a new snapshot, and sees the
-- writes of the members before it (this transaction's own) and everything
-- other transactions committed. A member therefore sees what it would have
-- seen had the members before it committed just before it: the same
-- outcome, refusal reason and uses left as a serial execution. Two members
-- with the same idempotency key are two sequential calls: the second finds
-- the first's claim (its own transaction's row) and answers 'replay', which
-- the store answers from the committed record.
--
-- Why it cannot over-redeem, across replicas too: it adds no read or
-- decision of its own. Every use is still redeem_code's conditional UPDATE
-- on the code row (used < max, re-checked under the row's lock), its live
-- holds counted by a new statement under that lock, and the allowance's
-- conditional upsert with the user's holds counted under its lock; those
-- locks are now held until the group commits, so nobody (another group,
-- another replica, a reservation) can take a use in between.
--
-- Deadlocks: members lock their code rows in code order (the caller sorts
-- them), so two groups on overlapping codes queue instead of deadlocking;
-- the idempotency keys and allowance rows follow each member's code, so two
-- groups that share a key or a (promotion, user) row in crossed order can
-- still deadlock. PostgreSQL then aborts one of them (40P01); any error
-- aborts the whole statement, having written nothing, and the store
-- redeems that group's members one by one (redeem_code), each with its own
-- outcome or error. A member whose promotion has eligibility rules is not
-- redeemed here: it is answered 'rules' (nothing of it written) and the
-- store redeems it alone on its statement path after the group, so that
-- such codes cannot make every group they join fall back. A promotion given
-- rules between that check and redeem_code's own still aborts the group
-- (PC001), which then falls back as above.
--
-- Arguments: as redeem_code's, one array per argument (stream is one).
-- Answers one row per member: its index, outcome ('redeemed', 'replay',
-- 'rules' or the refusal reason), the code's promotion (NULL: no such code,
-- or a replay), uses left.
CREATE INDEX promotions_with_rules ON promotions (id) WHERE eligibility IS NOT NULL;

-- +goose StatementBegin
CREATE FUNCTION redeem_codes(p_ids text[], p_codes text[], p_users text[], p_orders text[], p_metadata text[],
    p_nows timestamptz[], p_keys text[], p_hashes text[], p_stream text, p_heads text[], p_bodies text[],
    p_addrs text[], p_agents text[])
RETURNS TABLE (o_idx integer, o_outcome text, o_promotion_id bigint, o_uses_left integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_rules integer[]; -- the members whose promotion has eligibility rules
BEGIN
    -- One probe of promotions_with_rules per group; the members' promotions
    -- only when some promotion has rules.
    IF EXISTS (SELECT 1 FROM promotions WHERE eligibility IS NOT NULL) THEN
        v_rules := ARRAY(SELECT m.i FROM unnest(p_codes) WITH ORDINALITY AS m(code, i)
            JOIN codes c ON c.code = m.code JOIN promotions p ON p.id = c.promotion_id
            WHERE p.eligibility IS NOT NULL);
    END IF;
    FOR i IN 1..coalesce(cardinality(p_ids), 0) LOOP
        o_idx := i;
        IF i = ANY(v_rules) THEN
            o_outcome := 'rules';
            o_promotion_id := NULL;
            o_uses_left := 0;
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT * INTO o_outcome, o_promotion_id, o_uses_left
        FROM redeem_code(p_ids[i], p_codes[i], p_users[i], p_orders[i], p_metadata[i], p_nows[i], p_keys[i],
            p_hashes[i], p_stream, p_heads[i], p_bodies[i], p_addrs[i], p_agents[i]);
        RETURN NEXT;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP INDEX promotions_with_rules;
DROP FUNCTION redeem_codes(text[], text[], text[], text[], text[], timestamptz[], text[], text[], text, text[], text[],
    text[], text[]);
