package sqlserver

// The T-SQL of admin changes and their audit log, side by side with
// ../postgres/lifecycle_queries.go (which says why they are safe) and
// ../sqlite/lifecycle_queries.go.

const (
	qRevokeCode = `DECLARE @t TABLE (promotion_id bigint);
UPDATE codes SET revoked_at = @p2, revoke_reason = NULLIF(@p3, N'') OUTPUT inserted.promotion_id INTO @t
WHERE code = @p1 AND revoked_at IS NULL;
SELECT promotion_id FROM @t;`

	qRevocation = `SELECT promotion_id, revoked_at, COALESCE(revoke_reason, N'') FROM codes WHERE code = @p1`

	qInsertAudit = `INSERT INTO audit_log (id, at, actor, action, promotion_id, code, detail)
VALUES (@p1, @p2, @p3, @p4, @p5, NULLIF(@p6, ''), NULLIF(@p7, N''))`

	qAuditLog = `SELECT TOP (@p2) id, at, actor, action, promotion_id, COALESCE(code, ''), COALESCE(detail, N'')
FROM audit_log WHERE promotion_id = @p1 AND (@p3 = '' OR id < @p3) ORDER BY id DESC`

	qUpdatePromotion = `DECLARE @t TABLE (id bigint);
UPDATE promotions SET
	name = COALESCE(@p2, name),
	starts_at = CASE WHEN @p3 = 1 THEN @p4 ELSE starts_at END,
	expires_at = CASE WHEN @p5 = 1 THEN @p6 ELSE expires_at END,
	active = COALESCE(@p7, active)
OUTPUT inserted.id INTO @t
WHERE id = @p1 AND (
	(CASE WHEN @p3 = 1 THEN @p4 ELSE starts_at END) IS NULL
	OR (CASE WHEN @p5 = 1 THEN @p6 ELSE expires_at END) IS NULL
	OR (CASE WHEN @p3 = 1 THEN @p4 ELSE starts_at END) < (CASE WHEN @p5 = 1 THEN @p6 ELSE expires_at END));
SELECT id, name, starts_at, expires_at, CAST(active AS bit) FROM promotions WHERE id IN (SELECT id FROM @t);`

	qCancelBatches = `UPDATE batches SET state = 'cancelled', updated_at = @p2
WHERE promotion_id = @p1 AND done < code_count AND state <> 'cancelled'`

	qCancelledBatches = `SELECT COUNT(*) FROM batches
WHERE promotion_id = @p1 AND done < code_count AND state = 'cancelled'`
)
