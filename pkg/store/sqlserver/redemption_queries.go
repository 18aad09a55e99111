package sqlserver

// The T-SQL of redemption, rollback, the audit trail and the event outbox,
// side by side with ../postgres/redemption_queries.go and
// ../sqlite/redemption_queries.go. The algorithm that runs these statements
// is contract.Redeem / contract.Rollback, shared by the stores.
//
// Why SQL Server cannot over-redeem: qUseCode and qUseAllowanceUpdate are
// single conditional UPDATEs. An UPDATE reads the rows it may modify under an
// update (U) lock, which two transactions cannot hold on one row at once (also
// under READ_COMMITTED_SNAPSHOT, where UPDATE still reads the latest committed
// version under U locks), converts it to an exclusive lock to write, and keeps
// that to the end of the transaction. The second redeemer therefore waits and
// evaluates "used < max" on the first one's committed count. Row locks only
// (lock escalation is disabled on codes), no table locks.
//
// Every UPDATE returns its rows through OUTPUT ... INTO a table variable:
// a plain OUTPUT fails (error 334) once a trigger exists on the table.

const (
	// qClaimKey inserts the idempotency record; a unique violation (2627)
	// means the key exists. A second inserter of the same key waits for the
	// first's key lock and gets the violation once the first commits.
	qClaimKey = `INSERT INTO idempotency_keys (idem_key, request_hash, created_at) VALUES (@p1, @p2, @p3)`

	qStoredOutcome = `SELECT request_hash, COALESCE(refused, ''), COALESCE(redemption_id, '')
FROM idempotency_keys WHERE idem_key = @p1`

	qSaveOutcome = `UPDATE idempotency_keys SET refused = NULLIF(@p2, ''), redemption_id = NULLIF(@p3, '')
WHERE idem_key = @p1`

	// qUseCode: every limit of the code and its promotion in one WHERE.
	qUseCode = `DECLARE @t TABLE (promotion_id bigint, used int, max_usage int, per_user int);
UPDATE c SET c.used = c.used + 1
OUTPUT inserted.promotion_id, inserted.used, p.max_usage_per_code, p.per_user_limit INTO @t
FROM codes AS c JOIN promotions AS p ON p.id = c.promotion_id
WHERE c.code = @p1 AND c.used < p.max_usage_per_code AND c.revoked_at IS NULL AND p.active = 1
  AND (p.starts_at IS NULL OR p.starts_at <= @p2) AND (p.expires_at IS NULL OR p.expires_at > @p2);
SELECT promotion_id, used, max_usage, per_user FROM @t;`

	qUnuseCode = `UPDATE codes SET used = used - 1 WHERE code = @p1 AND used > 0`

	// The allowance is an update-or-insert in two statements (no MERGE):
	// the conditional UPDATE when the user's row exists; else an INSERT of
	// the row at 1, whose unique violation (a concurrent first use by the
	// same user committed) sends the caller back to the UPDATE.
	qUseAllowanceUpdate = `DECLARE @t TABLE (used int);
UPDATE user_uses SET used = used + 1 OUTPUT inserted.used INTO @t
WHERE promotion_id = @p1 AND user_id = @p2 AND used < @p3;
SELECT used FROM @t;`

	qUseAllowanceInsert = `INSERT INTO user_uses (promotion_id, user_id, used)
SELECT @p1, @p2, 1 WHERE NOT EXISTS (SELECT 1 FROM user_uses WHERE promotion_id = @p1 AND user_id = @p2)`

	qInsertRedemption = `INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at,
	uses_left, idempotency_key) VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9)`

	qInsertEvent = `INSERT INTO events (stream, event_key, payload, created_at) VALUES (@p1, @p2, @p3, @p4)`

	qCodeState = `SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at,
	c.code, c.used, COALESCE(u.used, 0), CAST(p.active AS bit), CAST(CASE WHEN c.revoked_at IS NULL THEN 0 ELSE 1 END AS bit),
	CAST(CASE WHEN p.delete_requested_at IS NULL THEN 0 ELSE 1 END AS bit),
	(SELECT COUNT(*) FROM reservations AS r WHERE r.code = c.code AND r.status = 'held' AND r.expires_at > @p3),
	(SELECT COUNT(*) FROM reservations AS r WHERE r.promotion_id = c.promotion_id AND r.user_id = @p2
		AND r.status = 'held' AND r.expires_at > @p3)
FROM codes AS c JOIN promotions AS p ON p.id = c.promotion_id
LEFT JOIN user_uses AS u ON u.promotion_id = c.promotion_id AND u.user_id = @p2
WHERE c.code = @p1`

	redemptionCols = `id, promotion_id, code, user_id, COALESCE(order_id, N''), metadata, redeemed_at, uses_left,
	rolled_back_at, COALESCE(rollback_reason, N''), COALESCE(idempotency_key, N''), COALESCE(rollback_code_release, '')`

	// qMarkRolledBack lets exactly one rollback through: a second one waits
	// for the first's exclusive lock and re-checks rolled_back_at IS NULL.
	qMarkRolledBack = `DECLARE @t TABLE (id varchar(36));
UPDATE redemptions SET rolled_back_at = @p2, rollback_reason = @p3 OUTPUT inserted.id INTO @t
WHERE id = @p1 AND rolled_back_at IS NULL;
SELECT ` + redemptionCols + ` FROM redemptions WHERE id IN (SELECT id FROM @t);`

	qRedemption = `SELECT ` + redemptionCols + ` FROM redemptions WHERE id = @p1`

	// qReleaseCode returns the code's uses after the release (no row: the
	// code row of the redemption's promotion is gone, or had no use to give
	// back); a code with the same string in another promotion is not touched.
	qReleaseCode = `DECLARE @t TABLE (used int);
UPDATE codes SET used = used - 1 OUTPUT inserted.used INTO @t WHERE code = @p1 AND promotion_id = @p2 AND used > 0;
SELECT used FROM @t;`

	qRecordCodeRelease = `UPDATE redemptions SET rollback_code_release = @p2 WHERE id = @p1`

	qReleaseAllowance = `UPDATE user_uses SET used = used - 1 WHERE promotion_id = @p1 AND user_id = @p2 AND used > 0`

	// Audit pages, newest first (ids are UUIDv7, time-ordered), one per
	// contract.RedemptionSelection: @p1 the promotion (or the user, across
	// promotions), @p2 the TOP, @p3 the cursor ('' for the first page), @p4
	// the range's lowest id ('' for none: every id is >= ''), @p5 the user or
	// the code.
	qRedemptions = `SELECT TOP (@p2) ` + redemptionCols + ` FROM redemptions
WHERE promotion_id = @p1 AND (@p3 = '' OR id < @p3) AND id >= @p4 ORDER BY id DESC`

	qRedemptionsByUser = `SELECT TOP (@p2) ` + redemptionCols + ` FROM redemptions
WHERE promotion_id = @p1 AND user_id = @p5 AND (@p3 = '' OR id < @p3) AND id >= @p4 ORDER BY id DESC`

	qRedemptionsByCode = `SELECT TOP (@p2) ` + redemptionCols + ` FROM redemptions
WHERE code = @p5 AND promotion_id = @p1 AND (@p3 = '' OR id < @p3) AND id >= @p4 ORDER BY id DESC`

	qUserRedemptions = `SELECT TOP (@p2) ` + redemptionCols + ` FROM redemptions
WHERE user_id = @p1 AND (@p3 = '' OR id < @p3) AND id >= @p4 ORDER BY id DESC`

	// qClaimEvents leases the oldest unpublished events: READPAST skips rows
	// another publisher holds, UPDLOCK keeps two from taking the same, the
	// ORDER BY under TOP takes the oldest.
	qClaimEvents = `DECLARE @t TABLE (seq bigint);
WITH c AS (
	SELECT TOP (@p1) seq, lease_until FROM events WITH (UPDLOCK, READPAST, ROWLOCK)
	WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < @p3) ORDER BY seq)
UPDATE c SET lease_until = @p2 OUTPUT inserted.seq INTO @t;
SELECT e.seq, e.stream, e.event_key, e.payload FROM events AS e JOIN @t AS t ON t.seq = e.seq ORDER BY e.seq;`

	qMarkEventPublished = `UPDATE events SET published_at = @p2 WHERE seq = @p1 AND published_at IS NULL`

	qCodeSpaces = `SELECT TOP (@p2) id, kind, COALESCE(format, N''), COALESCE(vanity_code, '') FROM promotions
WHERE id > @p1 ORDER BY id`

	qSetActive = `UPDATE promotions SET active = @p2 WHERE id = @p1`

	// qPruneEvents: published before @p1 and counted by the totals rollup
	// (an uncounted event is still owed to the totals).
	qPruneEvents = `DELETE TOP (@p2) FROM events WHERE published_at < @p1 AND counted_at IS NOT NULL`

	// qClaimUncounted marks up to @p1 of the oldest uncounted events counted
	// at @p2 and returns them; the caller adds them to promotion_totals in
	// the same transaction. READPAST skips rows another roller (or a
	// redemption that has not committed) holds, UPDLOCK keeps two rollers
	// from taking the same row, and the UPDATE re-checks counted_at IS NULL
	// on the latest committed row under its lock. The filtered index
	// events_uncounted serves the scan.
	qClaimUncounted = `DECLARE @t TABLE (seq bigint, stream varchar(64), payload nvarchar(max), created_at datetime2(6));
WITH c AS (
	SELECT TOP (@p1) seq, stream, payload, created_at, counted_at FROM events WITH (UPDLOCK, READPAST, ROWLOCK)
	WHERE counted_at IS NULL ORDER BY seq)
UPDATE c SET counted_at = @p2 OUTPUT inserted.seq, inserted.stream, inserted.payload, inserted.created_at INTO @t;
SELECT seq, stream, payload, created_at FROM @t ORDER BY seq;`

	// qAddTotals adds one promotion's delta: update-or-insert without MERGE.
	// UPDLOCK and SERIALIZABLE on the UPDATE lock the key (or, for a new
	// promotion, its key range) to the end of the transaction, so a
	// concurrent roller cannot insert the same row in between.
	qAddTotals = `UPDATE promotion_totals WITH (UPDLOCK, SERIALIZABLE)
SET redemptions = redemptions + @p2, codes_redeemed = codes_redeemed + @p3, rolled_back = rolled_back + @p4,
	updated_at = @p5
WHERE promotion_id = @p1;
IF @@ROWCOUNT = 0
	INSERT INTO promotion_totals (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
	VALUES (@p1, @p2, @p3, @p4, @p5);`
)
