package sqlite

// The SQL of admin changes and their audit log, side by side with
// ../postgres/lifecycle_queries.go (which says why they are safe) and
// ../sqlserver/lifecycle_queries.go.

const (
	qRevokeCode = `UPDATE codes SET revoked_at = ?2, revoke_reason = nullif(?3, '')
WHERE code = ?1 AND revoked_at IS NULL
RETURNING promotion_id`

	qRevocation = `SELECT promotion_id, revoked_at, coalesce(revoke_reason, '') FROM codes WHERE code = ?`

	qInsertAudit = `INSERT INTO audit_log (id, at, actor, action, promotion_id, code, detail)
VALUES (?1, ?2, ?3, ?4, ?5, nullif(?6, ''), nullif(?7, ''))`

	qAuditLog = `SELECT id, at, actor, action, promotion_id, coalesce(code, ''), coalesce(detail, '')
FROM audit_log WHERE promotion_id = ?1 AND (?3 = '' OR id < ?3) ORDER BY id DESC LIMIT ?2`

	qUpdatePromotion = `UPDATE promotions SET
	name = coalesce(?2, name),
	starts_at = CASE WHEN ?3 THEN ?4 ELSE starts_at END,
	expires_at = CASE WHEN ?5 THEN ?6 ELSE expires_at END,
	active = coalesce(?7, active)
WHERE id = ?1 AND (
	(CASE WHEN ?3 THEN ?4 ELSE starts_at END) IS NULL
	OR (CASE WHEN ?5 THEN ?6 ELSE expires_at END) IS NULL
	OR (CASE WHEN ?3 THEN ?4 ELSE starts_at END) < (CASE WHEN ?5 THEN ?6 ELSE expires_at END))
RETURNING id, name, starts_at, expires_at, active`

	qCancelBatches = `UPDATE batches SET state = 'cancelled', updated_at = ?2
WHERE promotion_id = ?1 AND done < code_count AND state <> 'cancelled'`

	qCancelledBatches = `SELECT count(*) FROM batches
WHERE promotion_id = ? AND done < code_count AND state = 'cancelled'`
)
