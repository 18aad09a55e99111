package postgres

// The SQL of reservations, side by side with ../sqlite/reservation_queries.go
// and ../sqlserver/reservation_queries.go. The algorithm is contract.Reserve,
// contract.Confirm and contract.Release; the holds are counted by qCodeLoad
// and qAllowanceLoad, which every redemption runs too.
//
// Why PostgreSQL cannot over-allocate with reservations: a reserver takes the
// code row's lock first (qLockCode, a conditional UPDATE that re-checks its
// WHERE on the latest row version after waiting, like qUseCode) and only
// then counts uses plus live holds (qCodeLoad). qCodeLoad is a new statement,
// so under READ COMMITTED it reads a new snapshot, taken after the lock was
// granted: it sees every reservation and use committed by the lock's earlier
// holders, and nobody adds one to this code until this transaction ends
// (every reserver, redeemer and confirmer locks the code row first). The
// count is not folded into the UPDATE's WHERE on purpose: a subquery there
// would keep the statement's first snapshot through the EvalPlanQual
// re-check and could let two reservers into the last use. Same for the user's
// allowance row (qLockAllowance, then qAllowanceLoad).

const (
	// qLockCode: qUseCode's conditions, without adding a use (used = used
	// takes the row lock).
	qLockCode = `UPDATE codes c SET used = c.used
FROM promotions p
WHERE c.code = $1 AND p.id = c.promotion_id
  AND c.used < p.max_usage_per_code
  AND c.revoked_at IS NULL
  AND p.active
  AND (p.starts_at IS NULL OR p.starts_at <= $2)
  AND (p.expires_at IS NULL OR p.expires_at > $2)
RETURNING c.promotion_id, c.used, p.max_usage_per_code, p.per_user_limit`

	// qCodeLoad: committed uses plus live holds; $3 is a reservation being
	// confirmed ('' for none), whose own hold is not counted.
	qCodeLoad = `SELECT c.used + (SELECT count(*) FROM reservations r
	WHERE r.code = c.code AND r.status = 'held' AND r.expires_at > $2 AND r.id <> $3)
FROM codes c WHERE c.code = $1`

	// qLockAllowance creates the user's row at 0 uses, or locks it while
	// below the limit.
	qLockAllowance = `INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES ($1, $2, 0)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used WHERE u.used < $3
RETURNING u.used`

	qAllowanceLoad = `SELECT COALESCE((SELECT used FROM user_uses WHERE promotion_id = $1 AND user_id = $2), 0)
	+ (SELECT count(*) FROM reservations r WHERE r.promotion_id = $1 AND r.user_id = $2
		AND r.status = 'held' AND r.expires_at > $3 AND r.id <> $4)`

	reservationCols = `id, promotion_id, code, user_id, status, created_at, expires_at, settled_at,
	COALESCE(redemption_id, ''), COALESCE(order_id, '')`

	qInsertReservation = `INSERT INTO reservations (id, promotion_id, code, user_id, status, created_at, expires_at)
VALUES ($1, $2, $3, $4, 'held', $5, $6)`

	qReservation = `SELECT ` + reservationCols + ` FROM reservations WHERE id = $1`

	// qMarkConfirmed and qMarkReleased let one settlement through: a second
	// one waits for the first's row lock, re-checks status = 'held' and
	// matches nothing.
	qMarkConfirmed = `UPDATE reservations SET status = 'confirmed', settled_at = $4, redemption_id = $2,
	order_id = NULLIF($3, '')
WHERE id = $1 AND status = 'held'`

	qMarkReleased = `UPDATE reservations SET status = 'released', settled_at = $2
WHERE id = $1 AND status = 'held'
RETURNING ` + reservationCols

	qSaveReservationOutcome = `UPDATE idempotency_keys SET refused = NULLIF($2, ''), reservation_id = NULLIF($3, '')
WHERE idem_key = $1`

	qStoredReservationOutcome = `SELECT request_hash, COALESCE(refused, ''), COALESCE(reservation_id, '')
FROM idempotency_keys WHERE idem_key = $1`

	// qSweepReservations deletes up to $2 rows that ended before $1.
	qSweepReservations = `DELETE FROM reservations WHERE id IN (
	SELECT id FROM reservations WHERE expires_at < $1 LIMIT $2)`
)
