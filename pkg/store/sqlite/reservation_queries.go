package sqlite

// The SQL of reservations, side by side with
// ../postgres/reservation_queries.go and ../sqlserver/reservation_queries.go.
// The algorithm is contract.Reserve, contract.Confirm and contract.Release.
//
// Why SQLite cannot over-allocate with reservations: every write transaction
// is BEGIN IMMEDIATE on the single write connection, so the lock-then-count
// sequence of the algorithm runs with no other writer in between; the "row
// locks" of qLockCode and qLockAllowance are the database's one write lock.
// Times are RFC 3339 text in UTC with a fixed width (formatTime), so text
// comparison is time order.

const (
	qLockCode = `UPDATE codes SET used = used
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

	qCodeLoad = `SELECT c.used + (SELECT count(*) FROM reservations r
	WHERE r.code = c.code AND r.status = 'held' AND r.expires_at > ?2 AND r.id <> ?3)
FROM codes c WHERE c.code = ?1`

	qLockAllowance = `INSERT INTO user_uses (promotion_id, user_id, used) VALUES (?1, ?2, 0)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = used WHERE used < ?3
RETURNING used`

	qAllowanceLoad = `SELECT coalesce((SELECT used FROM user_uses WHERE promotion_id = ?1 AND user_id = ?2), 0)
	+ (SELECT count(*) FROM reservations r WHERE r.promotion_id = ?1 AND r.user_id = ?2
		AND r.status = 'held' AND r.expires_at > ?3 AND r.id <> ?4)`

	reservationCols = `id, promotion_id, code, user_id, status, created_at, expires_at, settled_at,
	coalesce(redemption_id, ''), coalesce(order_id, '')`

	qInsertReservation = `INSERT INTO reservations (id, promotion_id, code, user_id, status, created_at, expires_at)
VALUES (?1, ?2, ?3, ?4, 'held', ?5, ?6)`

	qReservation = `SELECT ` + reservationCols + ` FROM reservations WHERE id = ?`

	qMarkConfirmed = `UPDATE reservations SET status = 'confirmed', settled_at = ?4, redemption_id = ?2,
	order_id = nullif(?3, '')
WHERE id = ?1 AND status = 'held'`

	qMarkReleased = `UPDATE reservations SET status = 'released', settled_at = ?2
WHERE id = ?1 AND status = 'held'
RETURNING ` + reservationCols

	qSaveReservationOutcome = `UPDATE idempotency_keys SET refused = nullif(?2, ''), reservation_id = nullif(?3, '')
WHERE idem_key = ?1`

	qStoredReservationOutcome = `SELECT request_hash, coalesce(refused, ''), coalesce(reservation_id, '')
FROM idempotency_keys WHERE idem_key = ?`

	qSweepReservations = `DELETE FROM reservations WHERE id IN (
	SELECT id FROM reservations WHERE expires_at < ?1 LIMIT ?2)`
)
