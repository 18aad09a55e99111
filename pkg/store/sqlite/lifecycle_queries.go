package sqlite

// The SQL of admin changes and their audit log, side by side with
// ../postgres/lifecycle_queries.go (which says why they are safe) and
// ../sqlserver/lifecycle_queries.go.

const (
	qRevokeCode = `UPDATE codes SET revoked_at = ?2, revoke_reason = nullif(?3, '')
WHERE code = ?1 AND revoked_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM promotions p WHERE p.id = codes.promotion_id AND p.delete_requested_at IS NOT NULL)
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
WHERE id = ?1 AND delete_requested_at IS NULL AND (
	(CASE WHEN ?3 THEN ?4 ELSE starts_at END) IS NULL
	OR (CASE WHEN ?5 THEN ?6 ELSE expires_at END) IS NULL
	OR (CASE WHEN ?3 THEN ?4 ELSE starts_at END) < (CASE WHEN ?5 THEN ?6 ELSE expires_at END))
RETURNING id, name, starts_at, expires_at, active`

	qPromotionState = `SELECT delete_requested_at IS NOT NULL, cancelled_at IS NOT NULL FROM promotions WHERE id = ?`

	// qFlagCancelled: one writer at a time, so no chunk is in flight while
	// it runs; chunks read the flag before they commit, as on PostgreSQL.
	qFlagCancelled = `UPDATE promotions SET cancelled_at = ?2
WHERE id = ?1 AND kind = 'generated' AND cancelled_at IS NULL AND delete_requested_at IS NULL
	AND EXISTS (SELECT 1 FROM batches WHERE promotion_id = ?1 AND done < code_count)`

	qCancelBatches = `UPDATE batches SET state = 'cancelled', updated_at = ?2
WHERE promotion_id = ?1 AND done < code_count AND state <> 'cancelled'`

	qGrowPromotion = `UPDATE promotions SET code_count = code_count + ?2
WHERE id = ?1 AND kind = 'generated'
RETURNING counter_name, code_count`

	qNextNumbers = `SELECT (SELECT coalesce(max(batch_no), -1) + 1 FROM batches WHERE promotion_id = ?1),
	(SELECT coalesce(max(topup_no), 0) + 1 FROM topups WHERE promotion_id = ?1)`

	qInsertTopUpBatches = `WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < ?5)
INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT ?1, ?7 + n, ?2 + n * ?3, min(?3, ?4 - n * ?3), ?6 FROM g`

	qInsertTopUp = `INSERT INTO topups (promotion_id, topup_no, code_count, seq_start, first_batch_no, batch_count, created_at,
	idempotency_key, request_hash)
VALUES (?, ?, ?, ?, ?, ?, ?, nullif(?, ''), nullif(?, ''))`

	topUpCols = `topup_no, code_count, seq_start, first_batch_no, batch_count, created_at`

	qTopUps = `SELECT ` + topUpCols + ` FROM topups WHERE promotion_id = ? ORDER BY topup_no`

	qStoredTopUp = `SELECT ` + topUpCols + `, request_hash FROM topups WHERE promotion_id = ? AND idempotency_key = ?`

	qExpiredPromotions = `SELECT id FROM promotions WHERE expires_at IS NOT NULL AND expires_at < ? ORDER BY id`

	qPurgeCount = `SELECT (SELECT count(*) FROM codes WHERE promotion_id = ?1),
	(SELECT count(*) FROM redemptions WHERE promotion_id = ?1)`

	qRequestDeletion = `UPDATE promotions SET delete_requested_at = ?2, active = 0
WHERE id = ?1 AND delete_requested_at IS NULL`

	qFinishDeletion = `UPDATE promotions SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM codes WHERE promotion_id = ?1)`

	qDeletionsPending = `SELECT id FROM promotions WHERE delete_requested_at IS NOT NULL AND deleted_at IS NULL ORDER BY id`

	qDeletion = `SELECT delete_requested_at, deleted_at FROM promotions WHERE id = ?`
)

// qPurge deletes up to ?2 rows of one promotion from a table (see
// ../postgres/lifecycle_queries.go).
var qPurge = map[string]string{
	"codes":        `DELETE FROM codes WHERE code IN (SELECT code FROM codes WHERE promotion_id = ?1 LIMIT ?2)`,
	"user_uses":    `DELETE FROM user_uses WHERE promotion_id = ?1 AND user_id IN (SELECT user_id FROM user_uses WHERE promotion_id = ?1 LIMIT ?2)`,
	"reservations": `DELETE FROM reservations WHERE id IN (SELECT id FROM reservations WHERE promotion_id = ?1 LIMIT ?2)`,
	"redemptions":  `DELETE FROM redemptions WHERE id IN (SELECT id FROM redemptions WHERE promotion_id = ?1 ORDER BY id LIMIT ?2)`,
}

// qPurgeRedemptionKeys deletes the idempotency records of the redemptions
// that qPurge["redemptions"] deletes next in the same transaction (the same
// ORDER BY id LIMIT: one writer, so the same rows).
const qPurgeRedemptionKeys = `DELETE FROM idempotency_keys WHERE idem_key IN (
	SELECT idempotency_key FROM redemptions WHERE id IN (
		SELECT id FROM redemptions WHERE promotion_id = ?1 ORDER BY id LIMIT ?2))`
