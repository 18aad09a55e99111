package postgres

// The SQL of redemption, rollback, the audit trail and the event outbox,
// side by side with ../sqlite/redemption_queries.go and
// ../sqlserver/redemption_queries.go. The algorithm that runs these
// statements is contract.Redeem / contract.Rollback, shared by the stores.
//
// Why PostgreSQL cannot over-redeem: qUseCode and qUseAllowance are single
// conditional statements. Under READ COMMITTED an UPDATE (or the DO UPDATE of
// an upsert) that finds its row locked by another transaction waits, then
// re-evaluates its WHERE clause against the row as that transaction committed
// it (EvalPlanQual). So "used < max" is checked on the latest committed count
// while the row lock is held, and two transactions can never both move a
// count from max-1 to max. No read-check-write in Go, no table locks.

const (
	// qClaimKey waits for a concurrent transaction inserting the same key,
	// then inserts nothing (no row returned) if that one committed.
	qClaimKey = `INSERT INTO idempotency_keys (idem_key, request_hash, created_at) VALUES ($1, $2, $3)
ON CONFLICT (idem_key) DO NOTHING RETURNING true`

	qStoredOutcome = `SELECT request_hash, COALESCE(refused, ''), COALESCE(redemption_id, '')
FROM idempotency_keys WHERE idem_key = $1`

	qSaveOutcome = `UPDATE idempotency_keys SET refused = NULLIF($2, ''), redemption_id = NULLIF($3, '')
WHERE idem_key = $1`

	// qUseCode: every limit of the code and its promotion in one WHERE.
	qUseCode = `UPDATE codes c SET used = c.used + 1
FROM promotions p
WHERE c.code = $1 AND p.id = c.promotion_id
  AND c.used < p.max_usage_per_code
  AND c.revoked_at IS NULL
  AND p.active
  AND (p.starts_at IS NULL OR p.starts_at <= $2)
  AND (p.expires_at IS NULL OR p.expires_at > $2)
RETURNING c.promotion_id, c.used, p.max_usage_per_code, p.per_user_limit`

	qUnuseCode = `UPDATE codes SET used = used - 1 WHERE code = $1 AND used > 0`

	// qUseAllowance creates the user's row at 1, or adds 1 while below the
	// limit; RETURNING gives no row when the limit is reached.
	qUseAllowance = `INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES ($1, $2, 1)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used + 1 WHERE u.used < $3
RETURNING u.used`

	// qInsertRedemption writes the audit row and its outbox event in one
	// statement.
	qInsertRedemption = `WITH r AS (
	INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at, uses_left, idempotency_key)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
)
INSERT INTO events (stream, event_key, payload, created_at) VALUES ($10, $11, $12, $7)`

	qInsertEvent = `INSERT INTO events (stream, event_key, payload, created_at) VALUES ($1, $2, $3, $4)`

	// qCodeState: $3 is now, for the live reservations.
	qCodeState = `SELECT ` + promotionColsP + `, c.code, c.used, COALESCE(u.used, 0), p.active,
	c.revoked_at IS NOT NULL, p.delete_requested_at IS NOT NULL,
	(SELECT count(*) FROM reservations r WHERE r.code = c.code AND r.status = 'held' AND r.expires_at > $3),
	(SELECT count(*) FROM reservations r WHERE r.promotion_id = c.promotion_id AND r.user_id = $2
		AND r.status = 'held' AND r.expires_at > $3)
FROM codes c JOIN promotions p ON p.id = c.promotion_id
LEFT JOIN user_uses u ON u.promotion_id = c.promotion_id AND u.user_id = $2
WHERE c.code = $1`

	redemptionCols = `id, promotion_id, code, user_id, COALESCE(order_id, ''), metadata, redeemed_at, uses_left,
	rolled_back_at, COALESCE(rollback_reason, ''), COALESCE(idempotency_key, ''), COALESCE(rollback_code_release, '')`

	// qMarkRolledBack lets exactly one rollback of a redemption through:
	// a second one waits for the first's row lock, re-checks
	// rolled_back_at IS NULL and matches nothing.
	qMarkRolledBack = `UPDATE redemptions SET rolled_back_at = $2, rollback_reason = $3
WHERE id = $1 AND rolled_back_at IS NULL
RETURNING ` + redemptionCols

	qRedemption = `SELECT ` + redemptionCols + ` FROM redemptions WHERE id = $1`

	// qReleaseCode gives the use back to the code row of the redemption's
	// promotion only: after a deletion or purge the same string may be
	// another promotion's code, which this must not touch.
	qReleaseCode = `UPDATE codes SET used = used - 1 WHERE code = $1 AND promotion_id = $2 AND used > 0 RETURNING used`

	qRecordCodeRelease = `UPDATE redemptions SET rollback_code_release = $2 WHERE id = $1`

	qReleaseAllowance = `UPDATE user_uses SET used = used - 1 WHERE promotion_id = $1 AND user_id = $2 AND used > 0`

	// Audit pages, newest first (ids are UUIDv7, time-ordered), one per
	// contract.RedemptionSelection: $1 the promotion (or the user, across
	// promotions), $2 the limit (NULL: none), $3 the cursor ('' for the
	// first page), $4 the range's lowest id ('' for none: every id is >= ''),
	// $5 the user or the code.
	qRedemptions = `SELECT ` + redemptionCols + ` FROM redemptions
WHERE promotion_id = $1 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`

	qRedemptionsByUser = `SELECT ` + redemptionCols + ` FROM redemptions
WHERE promotion_id = $1 AND user_id = $5 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`

	qRedemptionsByCode = `SELECT ` + redemptionCols + ` FROM redemptions
WHERE code = $5 AND promotion_id = $1 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`

	qUserRedemptions = `SELECT ` + redemptionCols + ` FROM redemptions
WHERE user_id = $1 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`

	// qClaimEvents leases the oldest unpublished events to this publisher;
	// SKIP LOCKED and the lease keep another replica's publisher off them.
	qClaimEvents = `UPDATE events SET lease_until = $2
WHERE seq IN (
	SELECT seq FROM events
	WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < $3)
	ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING seq, stream, event_key, payload`

	qMarkEventsPublished = `UPDATE events SET published_at = $2 WHERE seq = ANY($1) AND published_at IS NULL`

	// qCodeSpaces lists what validation needs to recognise codes offline:
	// the format of each generated promotion and each vanity code.
	qCodeSpaces = `SELECT id, kind, COALESCE(format, ''), COALESCE(vanity_code, '') FROM promotions
WHERE id > $1 ORDER BY id LIMIT $2`

	promotionColsP = `p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at`

	qSetActive = `UPDATE promotions SET active = $2 WHERE id = $1`

	// qPruneEvents deletes up to $2 events published before $1 and counted
	// by the totals rollup (an uncounted one is still owed to the totals).
	qPruneEvents = `DELETE FROM events WHERE seq IN (
	SELECT seq FROM events WHERE published_at < $1 AND counted_at IS NOT NULL ORDER BY seq LIMIT $2)`

	// qClaimUncounted marks up to $1 of the oldest uncounted events counted
	// at $2 and returns them; the caller adds them to promotion_totals in
	// the same transaction. SKIP LOCKED passes over rows another roller is
	// counting right now; a row that roller committed meanwhile is
	// re-checked against counted_at IS NULL under its lock and left out.
	// The partial index events_uncounted serves the scan.
	qClaimUncounted = `UPDATE events SET counted_at = $2
WHERE seq IN (
	SELECT seq FROM events WHERE counted_at IS NULL
	ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING seq, stream, payload, created_at`

	// qAddTotals adds one delta per promotion (the arrays are in promotion
	// order, so two rollers lock totals rows in the same order).
	qAddTotals = `INSERT INTO promotion_totals AS t (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
SELECT d.id, d.r, d.c, d.b, $5 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) AS d(id, r, c, b)
ORDER BY d.id
ON CONFLICT (promotion_id) DO UPDATE SET redemptions = t.redemptions + EXCLUDED.redemptions,
	codes_redeemed = t.codes_redeemed + EXCLUDED.codes_redeemed,
	rolled_back = t.rolled_back + EXCLUDED.rolled_back, updated_at = EXCLUDED.updated_at`
)
