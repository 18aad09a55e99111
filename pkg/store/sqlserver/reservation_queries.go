package sqlserver

// The T-SQL of reservations, side by side with
// ../postgres/reservation_queries.go and ../sqlite/reservation_queries.go.
// The algorithm is contract.Reserve, contract.Confirm and contract.Release.
//
// Why SQL Server cannot over-allocate with reservations: qLockCode is a
// conditional UPDATE (as qUseCode) that holds the code row's exclusive lock
// to the end of the transaction; qCodeLoad runs after it, so it reads every
// reservation and use committed by the lock's earlier holders (a new
// statement-level snapshot under READ_COMMITTED_SNAPSHOT, the latest committed
// rows under locking READ COMMITTED), and nobody adds one to this code until
// this transaction ends. Same for the allowance row. Every transaction takes
// its locks in the order code, allowance, reservation row, and a release
// locks only its reservation row and waits for nothing, so a locking read of
// reservations that waits for a release cannot close a cycle.

const (
	qLockCode = `DECLARE @t TABLE (promotion_id bigint, used int, max_usage int, per_user int);
UPDATE c SET c.used = c.used
OUTPUT inserted.promotion_id, inserted.used, p.max_usage_per_code, p.per_user_limit INTO @t
FROM codes AS c JOIN promotions AS p ON p.id = c.promotion_id
WHERE c.code = @p1 AND c.used < p.max_usage_per_code AND c.revoked_at IS NULL AND p.active = 1
  AND (p.starts_at IS NULL OR p.starts_at <= @p2) AND (p.expires_at IS NULL OR p.expires_at > @p2);
SELECT promotion_id, used, max_usage, per_user FROM @t;`

	qCodeLoad = `SELECT c.used + (SELECT COUNT(*) FROM reservations AS r
	WHERE r.code = c.code AND r.status = 'held' AND r.expires_at > @p2 AND r.id <> @p3)
FROM codes AS c WHERE c.code = @p1`

	// The allowance lock is an update-or-insert in two statements, as in
	// UseAllowance: the no-op UPDATE while below the limit, else the INSERT
	// of the row at 0.
	qLockAllowanceUpdate = `DECLARE @t TABLE (used int);
UPDATE user_uses SET used = used OUTPUT inserted.used INTO @t
WHERE promotion_id = @p1 AND user_id = @p2 AND used < @p3;
SELECT used FROM @t;`

	qLockAllowanceInsert = `INSERT INTO user_uses (promotion_id, user_id, used)
SELECT @p1, @p2, 0 WHERE NOT EXISTS (SELECT 1 FROM user_uses WHERE promotion_id = @p1 AND user_id = @p2)`

	qAllowanceLoad = `SELECT COALESCE((SELECT used FROM user_uses WHERE promotion_id = @p1 AND user_id = @p2), 0)
	+ (SELECT COUNT(*) FROM reservations AS r WHERE r.promotion_id = @p1 AND r.user_id = @p2
		AND r.status = 'held' AND r.expires_at > @p3 AND r.id <> @p4)`

	reservationCols = `id, promotion_id, code, user_id, status, created_at, expires_at, settled_at,
	COALESCE(redemption_id, ''), COALESCE(order_id, N'')`

	qInsertReservation = `INSERT INTO reservations (id, promotion_id, code, user_id, status, created_at, expires_at)
VALUES (@p1, @p2, @p3, @p4, 'held', @p5, @p6)`

	qReservation = `SELECT ` + reservationCols + ` FROM reservations WHERE id = @p1`

	qMarkConfirmed = `UPDATE reservations SET status = 'confirmed', settled_at = @p4, redemption_id = @p2,
	order_id = NULLIF(@p3, N'')
WHERE id = @p1 AND status = 'held'`

	qMarkReleased = `DECLARE @t TABLE (id varchar(36));
UPDATE reservations SET status = 'released', settled_at = @p2 OUTPUT inserted.id INTO @t
WHERE id = @p1 AND status = 'held';
SELECT ` + reservationCols + ` FROM reservations WHERE id IN (SELECT id FROM @t);`

	qSaveReservationOutcome = `UPDATE idempotency_keys SET refused = NULLIF(@p2, ''), reservation_id = NULLIF(@p3, '')
WHERE idem_key = @p1`

	qStoredReservationOutcome = `SELECT request_hash, COALESCE(refused, ''), COALESCE(reservation_id, '')
FROM idempotency_keys WHERE idem_key = @p1`

	qSweepReservations = `DELETE TOP (@p2) FROM reservations WHERE expires_at < @p1`
)
