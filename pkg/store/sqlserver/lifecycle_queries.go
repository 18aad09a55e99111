package sqlserver

// The T-SQL of admin changes and their audit log, side by side with
// ../postgres/lifecycle_queries.go (which says why they are safe) and
// ../sqlite/lifecycle_queries.go.

const (
	qRevokeCode = `DECLARE @t TABLE (promotion_id bigint);
UPDATE c SET c.revoked_at = @p2, c.revoke_reason = NULLIF(@p3, N'') OUTPUT inserted.promotion_id INTO @t
FROM codes AS c
WHERE c.code = @p1 AND c.revoked_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM promotions AS p WHERE p.id = c.promotion_id AND p.delete_requested_at IS NOT NULL);
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
WHERE id = @p1 AND delete_requested_at IS NULL AND (
	(CASE WHEN @p3 = 1 THEN @p4 ELSE starts_at END) IS NULL
	OR (CASE WHEN @p5 = 1 THEN @p6 ELSE expires_at END) IS NULL
	OR (CASE WHEN @p3 = 1 THEN @p4 ELSE starts_at END) < (CASE WHEN @p5 = 1 THEN @p6 ELSE expires_at END));
SELECT id, name, starts_at, expires_at, CAST(active AS bit) FROM promotions WHERE id IN (SELECT id FROM @t);`

	qPromotionState = `SELECT CAST(CASE WHEN delete_requested_at IS NULL THEN 0 ELSE 1 END AS bit),
	CAST(CASE WHEN cancelled_at IS NULL THEN 0 ELSE 1 END AS bit) FROM promotions WHERE id = @p1`

	// qLockPromotion: the update lock is held to the end of the transaction.
	qLockPromotion = `SELECT CAST(CASE WHEN delete_requested_at IS NULL THEN 0 ELSE 1 END AS bit),
	CAST(CASE WHEN cancelled_at IS NULL THEN 0 ELSE 1 END AS bit) FROM promotions WITH (UPDLOCK, ROWLOCK) WHERE id = @p1`

	// qFlagCancelled sets the flag every chunk reads before it commits (see
	// ../postgres/lifecycle_queries.go); only the promotion row is locked.
	// "Some batch is unfinished" must not wait for a chunk in flight either
	// (at locking READ COMMITTED a plain read of its batch row would): an
	// unlocked unfinished batch (READPAST), or a batch row some transaction
	// holds, seen as fewer rows through READPAST than through NOLOCK (chunks
	// never add or remove batch rows; a held row is a chunk in flight, which
	// the flag then refuses).
	qFlagCancelled = `UPDATE promotions SET cancelled_at = @p2
WHERE id = @p1 AND kind = 'generated' AND cancelled_at IS NULL AND delete_requested_at IS NULL
	AND (EXISTS (SELECT 1 FROM batches WITH (READPAST) WHERE promotion_id = @p1 AND done < code_count)
		OR (SELECT COUNT(*) FROM batches WITH (NOLOCK) WHERE promotion_id = @p1)
			> (SELECT COUNT(*) FROM batches WITH (READPAST) WHERE promotion_id = @p1))`

	// qCancelBatches marks the unfinished batches no transaction holds
	// (READPAST skips a chunk in flight; the flag refuses it and its worker
	// marks the batch).
	qCancelBatches = `UPDATE b SET b.state = 'cancelled', b.updated_at = @p2
FROM batches AS b WITH (ROWLOCK, READPAST)
WHERE b.promotion_id = @p1 AND b.done < b.code_count AND b.state <> 'cancelled'`

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

	qInsertTopUp = `INSERT INTO topups (promotion_id, topup_no, code_count, seq_start, first_batch_no, batch_count, created_at,
	idempotency_key, request_hash)
VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, NULLIF(@p8, N''), NULLIF(@p9, ''))`

	topUpCols = `topup_no, code_count, seq_start, first_batch_no, batch_count, created_at`

	qTopUps = `SELECT ` + topUpCols + ` FROM topups WHERE promotion_id = @p1 ORDER BY topup_no`

	qStoredTopUp = `SELECT ` + topUpCols + `, request_hash FROM topups WHERE promotion_id = @p1 AND idempotency_key = @p2`

	qExpiredPromotions = `SELECT id FROM promotions WHERE expires_at IS NOT NULL AND expires_at < @p1 ORDER BY id`

	qPurgeCount = `SELECT (SELECT COUNT_BIG(*) FROM codes WHERE promotion_id = @p1),
	(SELECT COUNT_BIG(*) FROM redemptions WHERE promotion_id = @p1)`

	qRequestDeletion = `UPDATE promotions SET delete_requested_at = @p2, active = 0
WHERE id = @p1 AND delete_requested_at IS NULL`

	qFinishDeletion = `UPDATE promotions SET deleted_at = @p2 WHERE id = @p1 AND deleted_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM codes WHERE promotion_id = @p1)`

	qDeletionsPending = `SELECT id FROM promotions WHERE delete_requested_at IS NOT NULL AND deleted_at IS NULL ORDER BY id`

	qDeletion = `SELECT delete_requested_at, deleted_at FROM promotions WHERE id = @p1`
)

// qPurge deletes up to @p2 rows of one promotion from a table (see
// ../postgres/lifecycle_queries.go).
var qPurge = map[string]string{
	"codes":        `DELETE TOP (@p2) FROM codes WHERE promotion_id = @p1`,
	"user_uses":    `DELETE TOP (@p2) FROM user_uses WHERE promotion_id = @p1`,
	"reservations": `DELETE TOP (@p2) FROM reservations WHERE promotion_id = @p1`,
	// The redemptions with their idempotency records, in one batch (see
	// ../postgres/lifecycle_queries.go).
	"redemptions": `DECLARE @d TABLE (idempotency_key nvarchar(256) COLLATE Latin1_General_100_BIN2 NULL);
DELETE TOP (@p2) FROM redemptions OUTPUT deleted.idempotency_key INTO @d WHERE promotion_id = @p1;
DELETE FROM idempotency_keys WHERE idem_key IN (SELECT idempotency_key FROM @d WHERE idempotency_key IS NOT NULL);
SELECT COUNT_BIG(*) FROM @d;`,
}
