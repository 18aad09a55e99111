package postgres

// The SQL of admin changes (revocation, promotion updates) and their audit
// log, side by side with ../sqlite/lifecycle_queries.go and
// ../sqlserver/lifecycle_queries.go; the algorithm is in contract
// (lifecycle.go). Each change is one conditional statement, so two racing
// admins cannot both apply it, and its audit row and event are written in
// the same transaction.

const (
	qRevokeCode = `UPDATE codes SET revoked_at = $2, revoke_reason = NULLIF($3, '')
WHERE code = $1 AND revoked_at IS NULL
RETURNING promotion_id`

	qRevocation = `SELECT promotion_id, revoked_at, COALESCE(revoke_reason, '') FROM codes WHERE code = $1`

	qInsertAudit = `INSERT INTO audit_log (id, at, actor, action, promotion_id, code, detail)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, ''))`

	// qAuditLog pages a promotion's audit log, newest first; $3 is the
	// cursor ('' for the first page).
	qAuditLog = `SELECT id, at, actor, action, promotion_id, COALESCE(code, ''), COALESCE(detail, '')
FROM audit_log WHERE promotion_id = $1 AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $2`

	// qUpdatePromotion: $2 name or NULL; $3/$5 whether starts_at/expires_at
	// are set, to $4/$6 (NULL clears); $7 active or NULL. The WHERE refuses a
	// resulting window that is empty.
	qUpdatePromotion = `UPDATE promotions SET
	name = COALESCE($2::text, name),
	starts_at = CASE WHEN $3::boolean THEN $4::timestamptz ELSE starts_at END,
	expires_at = CASE WHEN $5::boolean THEN $6::timestamptz ELSE expires_at END,
	active = COALESCE($7::boolean, active)
WHERE id = $1 AND (
	(CASE WHEN $3::boolean THEN $4::timestamptz ELSE starts_at END) IS NULL
	OR (CASE WHEN $5::boolean THEN $6::timestamptz ELSE expires_at END) IS NULL
	OR (CASE WHEN $3::boolean THEN $4::timestamptz ELSE starts_at END)
		< (CASE WHEN $5::boolean THEN $6::timestamptz ELSE expires_at END))
RETURNING id, name, starts_at, expires_at, active`

	// qCancelBatches: waits for a chunk commit holding a batch row, then
	// re-checks done < code_count on the committed row.
	qCancelBatches = `UPDATE batches SET state = 'cancelled', updated_at = $2
WHERE promotion_id = $1 AND done < code_count AND state <> 'cancelled'`

	qCancelledBatches = `SELECT count(*) FROM batches
WHERE promotion_id = $1 AND done < code_count AND state = 'cancelled'`

	qGrowPromotion = `UPDATE promotions SET code_count = code_count + $2
WHERE id = $1 AND kind = 'generated'
RETURNING counter_name, code_count`

	qNextNumbers = `SELECT (SELECT COALESCE(max(batch_no), -1) + 1 FROM batches WHERE promotion_id = $1),
	(SELECT COALESCE(max(topup_no), 0) + 1 FROM topups WHERE promotion_id = $1)`

	// qInsertTopUpBatches is qInsertBatches numbered from $7.
	qInsertTopUpBatches = `INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT $1::bigint, $7::int + g, $2::bigint + g::bigint * $3::bigint, LEAST($3::bigint, $4::bigint - g::bigint * $3::bigint), $6::timestamptz
FROM generate_series(0, $5::int - 1) AS g`

	qInsertTopUp = `INSERT INTO topups (promotion_id, topup_no, code_count, seq_start, first_batch_no, batch_count, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)`

	qTopUps = `SELECT topup_no, code_count, seq_start, first_batch_no, batch_count, created_at
FROM topups WHERE promotion_id = $1 ORDER BY topup_no`

	qExpiredPromotions = `SELECT id FROM promotions WHERE expires_at IS NOT NULL AND expires_at < $1 ORDER BY id`

	qPurgeCount = `SELECT (SELECT count(*) FROM codes WHERE promotion_id = $1),
	(SELECT count(*) FROM redemptions WHERE promotion_id = $1)`

	qRequestDeletion = `UPDATE promotions SET delete_requested_at = $2, active = false
WHERE id = $1 AND delete_requested_at IS NULL`

	qFinishDeletion = `UPDATE promotions SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL`

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
	"redemptions":  `DELETE FROM redemptions WHERE id IN (SELECT id FROM redemptions WHERE promotion_id = $1 LIMIT $2)`,
}
