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

	qGrowPromotion = `DECLARE @t TABLE (counter_name nvarchar(450), code_count bigint);
UPDATE promotions SET code_count = code_count + @p2 OUTPUT inserted.counter_name, inserted.code_count INTO @t
WHERE id = @p1 AND kind = 'generated';
SELECT counter_name, code_count FROM @t;`

	qNextNumbers = `SELECT (SELECT COALESCE(MAX(batch_no), -1) + 1 FROM batches WHERE promotion_id = @p1),
	(SELECT COALESCE(MAX(topup_no), 0) + 1 FROM topups WHERE promotion_id = @p1)`

	// qInsertTopUpBatches is qInsertBatches numbered from @p7.
	qInsertTopUpBatches = `WITH d(n) AS (SELECT n FROM (VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)) AS v(n)),
g(n) AS (
	SELECT TOP (@p5) ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) - 1
	FROM d AS d1 CROSS JOIN d AS d2 CROSS JOIN d AS d3 CROSS JOIN d AS d4 CROSS JOIN d AS d5
		CROSS JOIN d AS d6 CROSS JOIN d AS d7 CROSS JOIN d AS d8 CROSS JOIN d AS d9 CROSS JOIN d AS d10
)
INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT @p1, CAST(@p7 + g.n AS int), @p2 + g.n * @p3,
	CASE WHEN @p4 - g.n * @p3 < @p3 THEN @p4 - g.n * @p3 ELSE @p3 END, @p6
FROM g`

	qInsertTopUp = `INSERT INTO topups (promotion_id, topup_no, code_count, seq_start, first_batch_no, batch_count, created_at)
VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7)`

	qTopUps = `SELECT topup_no, code_count, seq_start, first_batch_no, batch_count, created_at
FROM topups WHERE promotion_id = @p1 ORDER BY topup_no`

	qExpiredPromotions = `SELECT id FROM promotions WHERE expires_at IS NOT NULL AND expires_at < @p1 ORDER BY id`

	qPurgeCount = `SELECT (SELECT COUNT_BIG(*) FROM codes WHERE promotion_id = @p1),
	(SELECT COUNT_BIG(*) FROM redemptions WHERE promotion_id = @p1)`

	qRequestDeletion = `UPDATE promotions SET delete_requested_at = @p2, active = 0
WHERE id = @p1 AND delete_requested_at IS NULL`

	qFinishDeletion = `UPDATE promotions SET deleted_at = @p2 WHERE id = @p1 AND deleted_at IS NULL`

	qDeletionsPending = `SELECT id FROM promotions WHERE delete_requested_at IS NOT NULL AND deleted_at IS NULL ORDER BY id`

	qDeletion = `SELECT delete_requested_at, deleted_at FROM promotions WHERE id = @p1`
)

// qPurge deletes up to @p2 rows of one promotion from a table (see
// ../postgres/lifecycle_queries.go).
var qPurge = map[string]string{
	"codes":        `DELETE TOP (@p2) FROM codes WHERE promotion_id = @p1`,
	"user_uses":    `DELETE TOP (@p2) FROM user_uses WHERE promotion_id = @p1`,
	"reservations": `DELETE TOP (@p2) FROM reservations WHERE promotion_id = @p1`,
	"redemptions":  `DELETE TOP (@p2) FROM redemptions WHERE promotion_id = @p1`,
}
