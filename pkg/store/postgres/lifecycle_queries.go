package postgres

// The SQL of admin changes (revocation, promotion updates) and their audit
// log, side by side with ../sqlite/lifecycle_queries.go and
// ../sqlserver/lifecycle_queries.go; the algorithm is in contract
// (lifecycle.go). Each change is one conditional statement, so two racing
// admins cannot both apply it, and its audit row and event are written in
// the same transaction.

const (
	// qRevokeCode: a code of a promotion whose deletion was requested is
	// not revoked (the promotion takes no change).
	qRevokeCode = `UPDATE codes c SET revoked_at = $2, revoke_reason = NULLIF($3, '')
WHERE c.code = $1 AND c.revoked_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM promotions p WHERE p.id = c.promotion_id AND p.delete_requested_at IS NOT NULL)
RETURNING c.promotion_id`

	qRevocation = `SELECT promotion_id, revoked_at, COALESCE(revoke_reason, '') FROM codes WHERE code = $1`

	qInsertAudit = `INSERT INTO audit_log (id, at, actor, action, promotion_id, code, detail)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, ''))`

	// qAuditLog pages a promotion's audit log, newest first; $3 is the
	// cursor ('' for the first page).
	qAuditLog = `SELECT id, at, actor, action, promotion_id, COALESCE(code, ''), COALESCE(detail, '')
FROM audit_log WHERE promotion_id = $1 AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $2`

	// qUpdatePromotion: $2 name or NULL; $3/$5 whether starts_at/expires_at
	// are set, to $4/$6 (NULL clears); $7 active or NULL. The WHERE refuses a
	// resulting window that is empty, and a promotion whose deletion was
	// requested (re-checked under the row lock: a racing DELETE either
	// commits first and this matches nothing, or waits and switches it off).
	qUpdatePromotion = `UPDATE promotions SET
	name = COALESCE($2::text, name),
	starts_at = CASE WHEN $3::boolean THEN $4::timestamptz ELSE starts_at END,
	expires_at = CASE WHEN $5::boolean THEN $6::timestamptz ELSE expires_at END,
	active = COALESCE($7::boolean, active)
WHERE id = $1 AND delete_requested_at IS NULL AND (
	(CASE WHEN $3::boolean THEN $4::timestamptz ELSE starts_at END) IS NULL
	OR (CASE WHEN $5::boolean THEN $6::timestamptz ELSE expires_at END) IS NULL
	OR (CASE WHEN $3::boolean THEN $4::timestamptz ELSE starts_at END)
		< (CASE WHEN $5::boolean THEN $6::timestamptz ELSE expires_at END))
RETURNING id, name, starts_at, expires_at, active`

	qPromotionState = `SELECT delete_requested_at IS NOT NULL, cancelled_at IS NOT NULL FROM promotions WHERE id = $1`

	qLockPromotion = qPromotionState + ` FOR UPDATE`

	// qFlagCancelled sets the flag every chunk reads before it commits. It
	// locks only the promotion row, which workers never lock, so a worker
	// frozen mid-chunk (holding its batch row) cannot make it wait.
	qFlagCancelled = `UPDATE promotions SET cancelled_at = $2
WHERE id = $1 AND kind = 'generated' AND cancelled_at IS NULL AND delete_requested_at IS NULL
	AND EXISTS (SELECT 1 FROM batches WHERE promotion_id = $1 AND done < code_count)`

	// qCancelBatches marks the unfinished batches that no transaction holds
	// (SKIP LOCKED: a chunk in flight holds its batch row; the flag refuses
	// that chunk and its worker marks the batch).
	qCancelBatches = `UPDATE batches SET state = 'cancelled', updated_at = $2
WHERE (promotion_id, batch_no) IN (
	SELECT promotion_id, batch_no FROM batches
	WHERE promotion_id = $1 AND done < code_count AND state <> 'cancelled'
	FOR UPDATE SKIP LOCKED)`

	qGrowPromotion = `UPDATE promotions SET code_count = code_count + $2
WHERE id = $1 AND kind = 'generated'
RETURNING counter_name, code_count`

	qNextNumbers = `SELECT (SELECT COALESCE(max(batch_no), -1) + 1 FROM batches WHERE promotion_id = $1),
	(SELECT COALESCE(max(topup_no), 0) + 1 FROM topups WHERE promotion_id = $1)`

	// qInsertTopUpBatches is qInsertBatches numbered from $7.
	qInsertTopUpBatches = `INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT $1::bigint, $7::int + g, $2::bigint + g::bigint * $3::bigint, LEAST($3::bigint, $4::bigint - g::bigint * $3::bigint), $6::timestamptz
FROM generate_series(0, $5::int - 1) AS g`

	qInsertTopUp = `INSERT INTO topups (promotion_id, topup_no, code_count, seq_start, first_batch_no, batch_count, created_at,
	idempotency_key, request_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, ''), NULLIF($9, ''))`

	topUpCols = `topup_no, code_count, seq_start, first_batch_no, batch_count, created_at`

	qTopUps = `SELECT ` + topUpCols + ` FROM topups WHERE promotion_id = $1 ORDER BY topup_no`

	qStoredTopUp = `SELECT ` + topUpCols + `, request_hash FROM topups WHERE promotion_id = $1 AND idempotency_key = $2`

	qExpiredPromotions = `SELECT id FROM promotions WHERE expires_at IS NOT NULL AND expires_at < $1 ORDER BY id`

	qPurgeCount = `SELECT (SELECT count(*) FROM codes WHERE promotion_id = $1),
	(SELECT count(*) FROM redemptions WHERE promotion_id = $1)`

	qRequestDeletion = `UPDATE promotions SET delete_requested_at = $2, active = false
WHERE id = $1 AND delete_requested_at IS NULL`

	// qFinishDeletion: only once no code is left (a chunk that read the
	// promotion live just before the deletion may commit just after it;
	// the next pass deletes its codes, then finishes).
	qFinishDeletion = `UPDATE promotions SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM codes WHERE promotion_id = $1)`

	qDeletionsPending = `SELECT id FROM promotions WHERE delete_requested_at IS NOT NULL AND deleted_at IS NULL ORDER BY id`

	qDeletion = `SELECT delete_requested_at, deleted_at FROM promotions WHERE id = $1`
)

// qPurge deletes up to $2 rows of one promotion from a table, one bounded
// statement (its own short transaction) at a time, so that redemptions of
// other promotions never wait long behind a purge.
var qPurge = map[string]string{
	"codes":        `DELETE FROM codes WHERE code IN (SELECT code FROM codes WHERE promotion_id = $1 LIMIT $2)`,
	"user_uses":    `DELETE FROM user_uses WHERE (promotion_id, user_id) IN (SELECT promotion_id, user_id FROM user_uses WHERE promotion_id = $1 LIMIT $2)`,
	"reservations": `DELETE FROM reservations WHERE id IN (SELECT id FROM reservations WHERE promotion_id = $1 LIMIT $2)`,
	// The redemptions' idempotency records go in the same statement: a
	// retry with a purged redemption's key finds no record (and redeems
	// anew, or is refused like any request) instead of a record naming a
	// redemption that is gone.
	"redemptions": `WITH d AS (
	DELETE FROM redemptions WHERE id IN (SELECT id FROM redemptions WHERE promotion_id = $1 LIMIT $2)
	RETURNING idempotency_key
), k AS (
	DELETE FROM idempotency_keys WHERE idem_key IN (SELECT idempotency_key FROM d WHERE idempotency_key IS NOT NULL)
)
SELECT count(*) FROM d`,
}
