package sqlite

// The SQL of redemption, rollback, the audit trail and the event outbox,
// side by side with ../postgres/redemption_queries.go and
// ../sqlserver/redemption_queries.go. The algorithm that runs these
// statements is contract.Redeem / contract.Rollback, shared by the stores.
//
// Why SQLite cannot over-redeem: every write transaction is BEGIN IMMEDIATE
// on the store's single write connection, and SQLite admits one writer per
// database file at a time (other processes wait on busy_timeout). The
// conditional statements below therefore always see the latest committed
// counts, and "used < max" is decided inside the statement, not in Go.

const (
	qClaimKey = `INSERT INTO idempotency_keys (idem_key, request_hash, created_at) VALUES (?1, ?2, ?3)
ON CONFLICT (idem_key) DO NOTHING RETURNING 1`

	qStoredOutcome = `SELECT request_hash, coalesce(refused, ''), coalesce(redemption_id, '')
FROM idempotency_keys WHERE idem_key = ?`

	qSaveOutcome = `UPDATE idempotency_keys SET refused = nullif(?2, ''), redemption_id = nullif(?3, '')
WHERE idem_key = ?1`

	// qUseCode: every limit of the code and its promotion in one WHERE.
	qUseCode = `UPDATE codes SET used = used + 1
FROM promotions p
WHERE codes.code = ?1 AND p.id = codes.promotion_id
  AND codes.used < p.max_usage_per_code
  AND codes.revoked_at IS NULL
  AND p.active = 1
  AND (p.starts_at IS NULL OR p.starts_at <= ?2)
  AND (p.expires_at IS NULL OR p.expires_at > ?2)
RETURNING promotion_id, used,
  (SELECT max_usage_per_code FROM promotions WHERE id = codes.promotion_id),
  (SELECT per_user_limit FROM promotions WHERE id = codes.promotion_id)`

	qUnuseCode = `UPDATE codes SET used = used - 1 WHERE code = ? AND used > 0`

	qUseAllowance = `INSERT INTO user_uses (promotion_id, user_id, used) VALUES (?1, ?2, 1)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = used + 1 WHERE used < ?3
RETURNING used`

	qInsertRedemption = `INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at,
	uses_left, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

	qInsertEvent = `INSERT INTO events (stream, event_key, payload, created_at) VALUES (?, ?, ?, ?)`

	qCodeState = `SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at,
	c.code, c.used, coalesce(u.used, 0), p.active, c.revoked_at IS NOT NULL, p.delete_requested_at IS NOT NULL,
	(SELECT count(*) FROM reservations r WHERE r.code = c.code AND r.status = 'held' AND r.expires_at > ?3),
	(SELECT count(*) FROM reservations r WHERE r.promotion_id = c.promotion_id AND r.user_id = ?2
		AND r.status = 'held' AND r.expires_at > ?3)
FROM codes c JOIN promotions p ON p.id = c.promotion_id
LEFT JOIN user_uses u ON u.promotion_id = c.promotion_id AND u.user_id = ?2
WHERE c.code = ?1`

	redemptionCols = `id, promotion_id, code, user_id, coalesce(order_id, ''), metadata, redeemed_at, uses_left,
	rolled_back_at, coalesce(rollback_reason, ''), coalesce(idempotency_key, ''), coalesce(rollback_code_release, '')`

	qMarkRolledBack = `UPDATE redemptions SET rolled_back_at = ?2, rollback_reason = ?3
WHERE id = ?1 AND rolled_back_at IS NULL
RETURNING ` + redemptionCols

	qRedemption = `SELECT ` + redemptionCols + ` FROM redemptions WHERE id = ?`

	// qReleaseCode: the code row of the redemption's promotion only (see
	// ../postgres/redemption_queries.go).
	qReleaseCode = `UPDATE codes SET used = used - 1 WHERE code = ?1 AND promotion_id = ?2 AND used > 0 RETURNING used`

	qRecordCodeRelease = `UPDATE redemptions SET rollback_code_release = ?2 WHERE id = ?1`

	qReleaseAllowance = `UPDATE user_uses SET used = used - 1 WHERE promotion_id = ? AND user_id = ? AND used > 0`

	// Audit pages, newest first (ids are UUIDv7, time-ordered), one per
	// contract.RedemptionSelection: ?1 the promotion (or the user, across
	// promotions), ?2 the limit (-1: none), ?3 the cursor ('' for the first
	// page), ?4 the range's lowest id ('' for none: every id is >= ''), ?5
	// the user or the code.
	qRedemptions = `SELECT ` + redemptionCols + ` FROM redemptions
WHERE promotion_id = ?1 AND (?3 = '' OR id < ?3) AND id >= ?4 ORDER BY id DESC LIMIT ?2`

	qRedemptionsByUser = `SELECT ` + redemptionCols + ` FROM redemptions
WHERE promotion_id = ?1 AND user_id = ?5 AND (?3 = '' OR id < ?3) AND id >= ?4 ORDER BY id DESC LIMIT ?2`

	qRedemptionsByCode = `SELECT ` + redemptionCols + ` FROM redemptions
WHERE code = ?5 AND promotion_id = ?1 AND (?3 = '' OR id < ?3) AND id >= ?4 ORDER BY id DESC LIMIT ?2`

	qUserRedemptions = `SELECT ` + redemptionCols + ` FROM redemptions
WHERE user_id = ?1 AND (?3 = '' OR id < ?3) AND id >= ?4 ORDER BY id DESC LIMIT ?2`

	// One writer at a time: the lease only matters to publishers in other
	// processes sharing the file.
	qClaimEvents = `UPDATE events SET lease_until = ?2
WHERE seq IN (
	SELECT seq FROM events
	WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < ?3)
	ORDER BY seq LIMIT ?1)
RETURNING seq, stream, event_key, payload`

	qMarkEventPublished = `UPDATE events SET published_at = ?2 WHERE seq = ?1 AND published_at IS NULL`

	qCodeSpaces = `SELECT id, kind, coalesce(format, ''), coalesce(vanity_code, '') FROM promotions
WHERE id > ? ORDER BY id LIMIT ?`

	qSetActive = `UPDATE promotions SET active = ?2 WHERE id = ?1`

	// qPruneEvents: published before ?1 and counted by the totals rollup
	// (an uncounted event is still owed to the totals).
	qPruneEvents = `DELETE FROM events WHERE seq IN (
	SELECT seq FROM events WHERE published_at < ?1 AND counted_at IS NOT NULL ORDER BY seq LIMIT ?2)`

	// qClaimUncounted marks up to ?1 of the oldest uncounted events counted
	// at ?2 and returns them (the partial index events_uncounted serves the
	// scan). The store's one write connection makes the rollup transaction
	// the only writer: no other roller can take the same events.
	qClaimUncounted = `UPDATE events SET counted_at = ?2
WHERE seq IN (SELECT seq FROM events WHERE counted_at IS NULL ORDER BY seq LIMIT ?1)
RETURNING seq, stream, payload, created_at`

	qAddTotals = `INSERT INTO promotion_totals (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (promotion_id) DO UPDATE SET redemptions = redemptions + excluded.redemptions,
	codes_redeemed = codes_redeemed + excluded.codes_redeemed,
	rolled_back = rolled_back + excluded.rolled_back, updated_at = excluded.updated_at`
)
