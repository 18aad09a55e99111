package sqlserver

import (
	"strconv"
	"strings"

	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// The T-SQL of the SQL Server store where it differs from the statements the
// dialects share (../internal/sqlstore/queries.go), so that the dialects can be
// reviewed side by side (see ../postgres/queries.go and ../sqlite/queries.go).
// ExportCodes is covered by codes_promotion_id (which carries the clustered
// key, code).
// Parameters are @p1, @p2, ... in the order of the arguments (go-mssqldb's
// "sqlserver" driver names positional arguments so; one may be used twice).
// A statement with arguments runs through sp_executesql.
//
// Argument types, because they decide whether an index is used:
//   - code arguments are mssql.VarChar (varchar): the codes column is
//     varchar with a binary collation, and the column's explicit collation
//     wins over the argument's, so the comparison is a plain index seek;
//   - batch_no arguments are int32 (int), promotion ids and counts int64
//     (bigint): the types of the columns, no conversion on the column side;
//   - times are time.Time in UTC: the driver sends datetimeoffset, and
//     SQL Server converts datetimeoffset to datetime2 by dropping the offset
//     (not by converting to UTC), so the value must already be UTC.

// qInsertCodesSkipping returns an insert of n codes (@p2..@p(n+1)) for
// promotion @p1 that skips codes already in the table and duplicates among
// the n, and then selects the number of rows inserted. It is the collision
// path of CommitChunk, and the insert of replacement codes.
//
//   - SELECT @@ROWCOUNT rather than the driver's RowsAffected: that one is
//     read from the DONE tokens, which carry no count when NOCOUNT is on (a
//     server may default it on through 'user options'), and the count is
//     what keeps the chunk exact. An error of the INSERT (2627, 1205) is
//     still returned: database/sql's Row.Scan reports the error the driver
//     finds when it reads the response to its end.
//   - DISTINCT: NOT EXISTS does not see rows of its own statement, so two
//     equal codes in one statement would both pass it and the second would
//     fail on the primary key. The COLLATE makes DISTINCT compare bytes (the
//     arguments carry the database's collation, often case-insensitive,
//     which would merge "abc" and "ABC").
//   - No HOLDLOCK: serializable key-range locks on codes (the hot table)
//     would make fallback commits of different promotions block and
//     deadlock on each other's gaps. UPDLOCK takes update locks on codes
//     that exist (held to the end of the transaction); a code that another
//     transaction inserts between our check and our insert fails the
//     statement with 2627, and CommitChunk runs the fallback again (the
//     code then exists and is skipped). Such a race needs two chunks to
//     render the same code at the same moment: rare by construction.
//   - Earlier statements of the same transaction are visible to the check,
//     so a code repeated across statements is skipped too.
func qInsertCodesSkipping(n int) string {
	return "INSERT INTO codes (code, promotion_id, used)\nSELECT s.code, @p1, 0\nFROM (SELECT DISTINCT v.code COLLATE Latin1_General_100_BIN2 AS code\n\tFROM (VALUES " +
		valueRows(n, 1, 2) +
		") AS v(code)) AS s\nWHERE NOT EXISTS (SELECT 1 FROM codes AS c WITH (UPDLOCK) WHERE c.code = s.code);\n" +
		"SELECT @@ROWCOUNT;"
}

// qMarkPublished returns an update marking n batches published, given as
// (promotion_id, batch_no) pairs @p1,@p2, @p3,@p4, ...; pairs that name no
// batch, or a published one, change nothing.
func qMarkPublished(n int) string {
	return "UPDATE b SET published = 1, publish_lease_until = NULL, updated_at = SYSUTCDATETIME()\nFROM batches AS b JOIN (VALUES " +
		valueRows(n, 2, 1) +
		") AS r(promotion_id, batch_no)\n\tON b.promotion_id = r.promotion_id AND b.batch_no = r.batch_no\nWHERE b.published = 0"
}

// valueRows returns n rows of a VALUES list with per parameters each,
// numbered from first: "(@p2),(@p3)" or "(@p1, @p2),(@p3, @p4)".
func valueRows(n, per, first int) string {
	var b strings.Builder
	b.Grow(n * per * 8)
	for i := range n * per {
		switch {
		case i == 0:
			b.WriteByte('(')
		case i%per == 0:
			b.WriteString("),(")
		default:
			b.WriteString(", ")
		}
		b.WriteString("@p")
		b.WriteString(strconv.Itoa(first + i))
	}
	if n > 0 {
		b.WriteByte(')')
	}
	return b.String()
}

const (
	// qReserve reserves @p2 sequence numbers from counter @p1, creating it at
	// 0 if absent, and returns the first of them (the value before the
	// update). UPDLOCK + HOLDLOCK make the existence check take a key-range
	// update lock held to the end of the transaction, so two transactions
	// creating the same counter queue instead of both inserting it; the
	// update then holds the row's exclusive lock to the end of the
	// transaction, which serialises reservations per counter (as PostgreSQL's
	// row lock does). A rollback returns the range. (The key-range lock here
	// covers one counter name, taken once per promotion or replacement round:
	// not the codes table.) OUTPUT ... INTO a table variable, then SELECT:
	// a plain OUTPUT clause fails (error 334) once the table has a trigger.
	qReserve = `DECLARE @t TABLE (n bigint);
IF NOT EXISTS (SELECT 1 FROM counters WITH (UPDLOCK, HOLDLOCK) WHERE name = @p1)
	INSERT INTO counters (name, [next]) VALUES (@p1, 0);
UPDATE counters SET [next] = [next] + @p2 OUTPUT deleted.[next] INTO @t WHERE name = @p1;
SELECT n FROM @t;`

	// Migration lock: an exclusive application lock owned by the session, so
	// that concurrent `promocodes migrate` runs apply migrations one at a
	// time (goose has no SQL Server locker). sp_getapplock returns >= 0 when
	// granted, < 0 on timeout (-1), cancel (-2), deadlock (-3) or error (-999).
	qGetAppLock = `DECLARE @r int;
EXEC @r = sys.sp_getapplock @Resource = @p1, @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = @p2;
SELECT @r;`

	qReleaseAppLock = `EXEC sys.sp_releaseapplock @Resource = @p1, @LockOwner = 'Session'`

	// maxValuesRows bounds the rows of one generated multi-row statement: a
	// VALUES list takes at most 1000 rows in an INSERT, and a request at most
	// 2100 parameters (1000 rows × 2 parameters + 1 is within both).
	maxValuesRows = 1000
)

// bucketOfT floors e.t to its hour (@p2 = 'hour') or day: whole units since
// an epoch, added back to it.
const bucketOfT = `CASE WHEN @p2 = N'hour'
		THEN DATEADD(hour, DATEDIFF(hour, CAST('2000-01-01' AS datetime2), e.t), CAST('2000-01-01' AS datetime2))
		ELSE DATEADD(day, DATEDIFF(day, CAST('2000-01-01' AS datetime2), e.t), CAST('2000-01-01' AS datetime2)) END`

// insertBatches writes all batch rows of a promotion in one statement,
// numbered from first: @p3-sized slices of [@p2, @p2+@p4), the last one
// smaller, @p5 of them. The numbers come from a cross join of ten 10-row tables (up to 10^10
// rows) cut by TOP, which stops the join after @p5 rows: no recursion
// limit (a recursive CTE stops at 100 levels without OPTION (MAXRECURSION 0))
// and no numbers table to maintain. ORDER BY under TOP: without it TOP
// may keep any @p5 of the numbered rows, not 0..@p5-1 (the plan does
// not sort: the numbers come out in order).
func insertBatches(first string) string {
	return `WITH d(n) AS (SELECT n FROM (VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)) AS v(n)),
g(n) AS (
	SELECT TOP (@p5) ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) - 1 AS n
	FROM d AS d1 CROSS JOIN d AS d2 CROSS JOIN d AS d3 CROSS JOIN d AS d4 CROSS JOIN d AS d5
		CROSS JOIN d AS d6 CROSS JOIN d AS d7 CROSS JOIN d AS d8 CROSS JOIN d AS d9 CROSS JOIN d AS d10
	ORDER BY n
)
INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT @p1, CAST(` + first + ` + g.n AS int), @p2 + g.n * @p3,
	CASE WHEN @p4 - g.n * @p3 < @p3 THEN @p4 - g.n * @p3 ELSE @p3 END, @p6
FROM g`
}

// codeUse is UseCode (set: one use more) and LockCode (set: the same
// uses): every limit of the code and its promotion in one WHERE.
func codeUse(set string) string {
	return `DECLARE @t TABLE (promotion_id bigint, used int, max_usage int, per_user int, eligibility nvarchar(max));
UPDATE c SET c.used = ` + set + `
OUTPUT inserted.promotion_id, inserted.used, p.max_usage_per_code, p.per_user_limit, p.eligibility INTO @t
FROM codes AS c JOIN promotions AS p ON p.id = c.promotion_id
WHERE c.code = @p1 AND c.used < p.max_usage_per_code AND c.revoked_at IS NULL AND p.active = 1
  AND (c.user_id IS NULL OR c.user_id = @p3)
  AND (p.starts_at IS NULL OR p.starts_at <= @p2) AND (p.expires_at IS NULL OR p.expires_at > @p2);
SELECT promotion_id, used, max_usage, per_user, COALESCE(eligibility, N'') FROM @t;`
}

var statements = sqlstore.Compose(sqlstore.Rebind{Prefix: "@p", Now: "SYSUTCDATETIME()", Top: true,
	Flag: func(p string) string { return "CAST(CASE WHEN " + p + " THEN 1 ELSE 0 END AS bit)" }}, sqlstore.Statements{
	Reserve: qReserve,

	InsertPromotion: `DECLARE @t TABLE (id bigint);
INSERT INTO promotions (name, kind, code_count, format, vanity_code,
	max_usage_per_code, per_user_limit, starts_at, expires_at, counter_name, seq_start,
	idempotency_key, request_hash, created_at, key_fingerprint, eligibility)
OUTPUT inserted.id INTO @t
VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9, @p10, @p11, @p12, @p13, @p14, @p15, @p16);
SELECT id FROM @t;`,

	InsertBatches: insertBatches("0"),

	InsertCode: `INSERT INTO codes (code, promotion_id, used) VALUES (@p1, @p2, 0)`,

	// Progress: a batch counts as cancelled when its promotion is flagged
	// cancelled (see ../postgres/queries.go).
	Progress: `SELECT COUNT(*),
	COALESCE(SUM(b.done), 0),
	COALESCE(SUM(CASE WHEN b.done = b.code_count THEN 1 ELSE 0 END), 0),
	COALESCE(SUM(CASE WHEN b.state = 'retrying' AND b.done < b.code_count THEN 1 ELSE 0 END), 0),
	COALESCE(SUM(CASE WHEN b.state = 'parked' AND b.done < b.code_count THEN 1 ELSE 0 END), 0),
	COALESCE(SUM(CASE WHEN (b.state = 'cancelled' OR p.cancelled_at IS NOT NULL) AND b.done < b.code_count
		THEN 1 ELSE 0 END), 0)
FROM batches AS b JOIN promotions AS p ON p.id = b.promotion_id WHERE b.promotion_id = @p1`,

	// ClaimPendingBatches leases up to @p1 of the oldest unpublished
	// batches for @p2 milliseconds of the server's clock (SYSUTCDATETIME():
	// replicas whose clocks disagree still agree on the lease) to this
	// publisher: READPAST skips rows another replica holds, UPDLOCK keeps
	// two from taking the same, the ORDER BY under TOP takes the oldest;
	// OUTPUT ... INTO a table variable (plain OUTPUT fails once a trigger
	// exists on the table, error 334).
	ClaimPendingBatches: `DECLARE @t TABLE (promotion_id bigint, batch_no int);
DECLARE @now datetime2 = SYSUTCDATETIME();
WITH c AS (
	SELECT TOP (@p1) promotion_id, batch_no, publish_lease_until FROM batches WITH (UPDLOCK, READPAST, ROWLOCK)
	WHERE published = 0 AND (publish_lease_until IS NULL OR publish_lease_until < @now)
	ORDER BY promotion_id, batch_no)
UPDATE c SET publish_lease_until = DATEADD(millisecond, @p2, @now) OUTPUT inserted.promotion_id, inserted.batch_no INTO @t;
SELECT b.promotion_id, b.batch_no, b.seq_start, b.code_count, b.done, b.state, b.last_error
FROM batches AS b JOIN @t AS t ON t.promotion_id = b.promotion_id AND t.batch_no = b.batch_no
ORDER BY b.promotion_id, b.batch_no;`,

	// Advance is the compare-and-set at the heart of CommitChunk: it moves
	// done from @p4 to @p4+@p3 or touches nothing. The right-hand sides of SET
	// see the row before the update (done + @p3 in the CASE is the new done).
	// At READ COMMITTED (locking or snapshot) an UPDATE reads its target row
	// under an update lock, so a concurrent committer of the same chunk waits
	// for the row, then evaluates done = @p4 against the committed row and
	// matches nothing.
	Advance: `DECLARE @t TABLE (done bigint);
UPDATE batches SET done = done + @p3,
	state = CASE WHEN done + @p3 = code_count THEN 'done' ELSE state END,
	updated_at = SYSUTCDATETIME()
OUTPUT inserted.done INTO @t
WHERE promotion_id = @p1 AND batch_no = @p2 AND done = @p4 AND done + @p3 <= code_count AND state <> 'cancelled';
SELECT done FROM @t;`,

	// ListPromotions is a page of promotions with their progress, newest first:
	// @p1 the cursor (ids below it; 0 = from the newest), @p2 a name fragment
	// (empty = any), @p3 a status (empty = any), @p4 the page size, @p5 the
	// active filter (0 any, 1 active, 2 inactive). The
	// applied aggregate runs per promotion, so an unfiltered page walks the
	// clustered key backwards and stops after @p4 rows; the totals are one
	// primary-key look-up per row; the status is sqlstore.StatusCase.
	ListPromotions: `SELECT TOP (@p4) ` + sqlstore.PromotionColsP + `,
	b.total, b.generated, b.completed, b.retrying, b.parked, b.cancelled, ` + sqlstore.StatusCols + `
FROM promotions p
CROSS APPLY (
	SELECT COUNT(*) AS total,
		COALESCE(SUM(CAST(done AS bigint)), 0) AS generated,
		COALESCE(SUM(CASE WHEN done = code_count THEN 1 ELSE 0 END), 0) AS completed,
		COALESCE(SUM(CASE WHEN state = 'retrying' AND done < code_count THEN 1 ELSE 0 END), 0) AS retrying,
		COALESCE(SUM(CASE WHEN state = 'parked' AND done < code_count THEN 1 ELSE 0 END), 0) AS parked,
		COALESCE(SUM(CASE WHEN (state = 'cancelled' OR p.cancelled_at IS NOT NULL) AND done < code_count
			THEN 1 ELSE 0 END), 0) AS cancelled
	FROM batches WHERE promotion_id = p.id
) b
CROSS APPLY (SELECT ` + sqlstore.StatusCase("p", "b") + ` AS status) s
LEFT JOIN promotion_totals t ON t.promotion_id = p.id
WHERE (@p1 = 0 OR p.id < @p1)
	AND (@p2 = N'' OR CHARINDEX(LOWER(@p2), LOWER(p.name)) > 0)
	AND (@p3 = N'' OR s.status = @p3)
	AND (@p5 = 0 OR p.active = CASE WHEN @p5 = 1 THEN 1 ELSE 0 END)
ORDER BY p.id DESC`,

	// Backlog: batches with codes still to write, except those of
	// promotions whose deletion was requested.
	Backlog: `SELECT
	COALESCE(SUM(CASE WHEN b.state NOT IN ('parked', 'cancelled') THEN CAST(1 AS bigint) ELSE 0 END), 0),
	COALESCE(SUM(CASE WHEN b.state = 'parked' THEN CAST(1 AS bigint) ELSE 0 END), 0),
	COALESCE(SUM(CASE WHEN b.state NOT IN ('parked', 'cancelled') THEN b.code_count - b.done ELSE 0 END), 0)
FROM batches b JOIN promotions p ON p.id = b.promotion_id
WHERE b.done < b.code_count AND p.delete_requested_at IS NULL`,

	// Redemption analytics of one promotion (@p1), from the audit trail.
	StatsTotals: `SELECT COUNT_BIG(*) - COUNT_BIG(rolled_back_at), COUNT_BIG(rolled_back_at),
	COUNT_BIG(DISTINCT CASE WHEN rolled_back_at IS NULL THEN code END)
FROM redemptions WHERE promotion_id = @p1`,

	// StatsSeries is the time series over [@p3, @p4) in buckets of an hour
	// or a day (@p2 'hour' or 'day', UTC): redemptions made (and how many of
	// those were rolled back since), rollbacks made, and a row for every
	// bucket with refusals (StatsRefusalSeries counts them by reason). The
	// window is bounded, so is the answer.
	StatsSeries: `SELECT x.b, SUM(e.n), SUM(e.rb), SUM(e.rbk) FROM (
	SELECT redeemed_at AS t, CAST(1 AS bigint) AS n,
		CAST(CASE WHEN rolled_back_at IS NULL THEN 0 ELSE 1 END AS bigint) AS rb, CAST(0 AS bigint) AS rbk
	FROM redemptions WHERE promotion_id = @p1 AND redeemed_at >= @p3 AND redeemed_at < @p4
	UNION ALL
	SELECT rolled_back_at, 0, 0, 1
	FROM redemptions WHERE promotion_id = @p1 AND rolled_back_at >= @p3 AND rolled_back_at < @p4
	UNION ALL
	SELECT hour, 0, 0, 0
	FROM refusals WHERE promotion_id = @p1 AND hour >= @p3 AND hour < @p4
) e CROSS APPLY (SELECT ` + bucketOfT + ` AS b) x GROUP BY x.b ORDER BY x.b`,

	// StatsRefusalSeries is the series' refusals by reason.
	StatsRefusalSeries: `SELECT x.b, e.reason, SUM(e.n) FROM (
	SELECT hour AS t, reason, n FROM refusals WHERE promotion_id = @p1 AND hour >= @p3 AND hour < @p4
) e CROSS APPLY (SELECT ` + bucketOfT + ` AS b) x GROUP BY x.b, e.reason`,

	StatsOrders: `SELECT order_currency, COUNT_BIG(*), COALESCE(SUM(order_amount), 0), COALESCE(SUM(discount), 0)
FROM redemptions WHERE promotion_id = @p1 AND rolled_back_at IS NULL AND order_currency IS NOT NULL
GROUP BY order_currency ORDER BY order_currency`,

	StatsSegments: `SELECT s.segment, COALESCE(r.order_currency, ''), COUNT_BIG(*),
	COALESCE(SUM(r.order_amount), 0), COALESCE(SUM(r.discount), 0)
FROM redemption_segments AS s JOIN redemptions AS r ON r.id = s.redemption_id
WHERE s.promotion_id = @p1 AND r.rolled_back_at IS NULL
GROUP BY s.segment, r.order_currency ORDER BY s.segment, 2`,

	StatsTopUsers: `SELECT TOP (@p2) user_id, COUNT_BIG(*) AS n FROM redemptions
WHERE promotion_id = @p1 AND rolled_back_at IS NULL
GROUP BY user_id ORDER BY n DESC, user_id`,

	AddRefusals: `UPDATE refusals SET n = n + @p4 WHERE promotion_id = @p1 AND reason = @p2 AND hour = @p3;
IF @@ROWCOUNT = 0
	INSERT INTO refusals (promotion_id, reason, hour, n) VALUES (@p1, @p2, @p3, @p4);`,

	// Redemption, rollback, the audit trail and the event outbox.
	//
	// Why SQL Server cannot over-redeem: UseCode and UseAllowance are
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

	// ClaimKey inserts the idempotency record; a unique violation (2627)
	// means the key exists. A second inserter of the same key waits for the
	// first's key lock and gets the violation once the first commits.
	ClaimKey: `INSERT INTO idempotency_keys (idem_key, request_hash, created_at) VALUES (@p1, @p2, @p3)`,

	UseCode: codeUse("c.used + 1"),

	RedeemOnce: qRedeemOnce, // once.go

	// AddCodeUses takes a combined redemption's n uses at once, within the
	// maximum (re-checked on the row this transaction has locked).
	AddCodeUses: `UPDATE c SET c.used = c.used + @p2 FROM codes AS c JOIN promotions AS p ON p.id = c.promotion_id
WHERE c.code = @p1 AND c.used + @p2 <= p.max_usage_per_code`,

	// The allowance is an update-or-insert in two statements (no MERGE):
	// the conditional UPDATE when the user's row exists; else an INSERT of
	// the row at 1, whose unique violation (a concurrent first use by the
	// same user committed) sends the caller back to the UPDATE.
	UseAllowance: `DECLARE @t TABLE (used int);
UPDATE user_uses SET used = used + 1 OUTPUT inserted.used INTO @t
WHERE promotion_id = @p1 AND user_id = @p2 AND used < @p3;
SELECT used FROM @t;`,

	UseAllowanceInsert: `INSERT INTO user_uses (promotion_id, user_id, used)
SELECT @p1, @p2, 1 WHERE NOT EXISTS (SELECT 1 FROM user_uses WHERE promotion_id = @p1 AND user_id = @p2)`,

	// InsertRedemptionSegment: a redemption carries each segment once (the
	// core de-duplicates), so a plain insert.
	InsertRedemptionSegment: `INSERT INTO redemption_segments (redemption_id, promotion_id, segment) VALUES (@p1, @p2, @p3)`,

	// MarkRolledBack lets exactly one rollback through: a second one waits
	// for the first's exclusive lock and re-checks rolled_back_at IS NULL.
	MarkRolledBack: `DECLARE @t TABLE (id varchar(36));
UPDATE redemptions SET rolled_back_at = @p2, rollback_reason = @p3 OUTPUT inserted.id INTO @t
WHERE id = @p1 AND rolled_back_at IS NULL;
SELECT ` + sqlstore.RedemptionCols + ` FROM redemptions WHERE id IN (SELECT id FROM @t);`,

	// ReleaseCode returns the code's uses after the release (no row: the
	// code row of the redemption's promotion is gone, or had no use to give
	// back); a code with the same string in another promotion is not touched.
	ReleaseCode: `DECLARE @t TABLE (used int);
UPDATE codes SET used = used - 1 OUTPUT inserted.used INTO @t WHERE code = @p1 AND promotion_id = @p2 AND used > 0;
SELECT used FROM @t;`,

	// ClaimEvents leases the oldest unpublished events for @p2 milliseconds
	// of the server's clock: READPAST skips rows another publisher holds,
	// UPDLOCK keeps two from taking the same, the ORDER BY under TOP takes
	// the oldest.
	ClaimEvents: `DECLARE @t TABLE (seq bigint);
DECLARE @now datetime2 = SYSUTCDATETIME();
WITH c AS (
	SELECT TOP (@p1) seq, lease_until FROM events WITH (UPDLOCK, READPAST, ROWLOCK)
	WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < @now) ORDER BY seq)
UPDATE c SET lease_until = DATEADD(millisecond, @p2, @now) OUTPUT inserted.seq INTO @t;
SELECT e.seq, e.stream, e.event_key, e.payload FROM events AS e JOIN @t AS t ON t.seq = e.seq ORDER BY e.seq;`,

	// Personal codes (see ../postgres/queries.go). IssueCodes: READPAST
	// skips the codes another issuance holds, UPDLOCK keeps two from taking
	// the same (the queue pattern of the outbox claims), ROWLOCK and the
	// disabled escalation keep it to the rows taken: no hot row.
	IssueCodes: `DECLARE @t TABLE (code varchar(128));
WITH pick AS (
	SELECT TOP (@p5) code, user_id, issuance_id, issued_at FROM codes WITH (UPDLOCK, READPAST, ROWLOCK)
	WHERE promotion_id = @p1 AND user_id IS NULL AND used = 0 AND revoked_at IS NULL ORDER BY code)
UPDATE pick SET user_id = @p2, issuance_id = @p3, issued_at = @p4 OUTPUT inserted.code INTO @t;
SELECT code FROM @t;`,

	// PruneEvents: published before @p1 and counted by the totals rollup
	// (an uncounted event is still owed to the totals).
	PruneEvents: `DELETE TOP (@p2) FROM events WHERE published_at < @p1 AND counted_at IS NOT NULL`,

	// ClaimUncounted marks up to @p1 of the oldest uncounted events counted
	// at @p2 and returns them; the caller adds them to promotion_totals in
	// the same transaction. READPAST skips rows another roller (or a
	// redemption that has not committed) holds, UPDLOCK keeps two rollers
	// from taking the same row, and the UPDATE re-checks counted_at IS NULL
	// on the latest committed row under its lock. The filtered index
	// events_uncounted serves the scan.
	ClaimUncounted: `DECLARE @t TABLE (seq bigint, stream varchar(64), payload nvarchar(max), created_at datetime2(6));
WITH c AS (
	SELECT TOP (@p1) seq, stream, payload, created_at, counted_at FROM events WITH (UPDLOCK, READPAST, ROWLOCK)
	WHERE counted_at IS NULL ORDER BY seq)
UPDATE c SET counted_at = @p2 OUTPUT inserted.seq, inserted.stream, inserted.payload, inserted.created_at INTO @t;
SELECT seq, stream, payload, created_at FROM @t ORDER BY seq;`,

	// AddTotals adds one promotion's delta: update-or-insert without MERGE.
	// UPDLOCK and SERIALIZABLE on the UPDATE lock the key (or, for a new
	// promotion, its key range) to the end of the transaction, so a
	// concurrent roller cannot insert the same row in between.
	AddTotals: `UPDATE promotion_totals WITH (UPDLOCK, SERIALIZABLE)
SET redemptions = redemptions + @p2, codes_redeemed = codes_redeemed + @p3, rolled_back = rolled_back + @p4,
	updated_at = @p5
WHERE promotion_id = @p1;
IF @@ROWCOUNT = 0
	INSERT INTO promotion_totals (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
	VALUES (@p1, @p2, @p3, @p4, @p5);`,

	// Reservations.
	//
	// Why SQL Server cannot over-allocate with reservations: LockCode is a
	// conditional UPDATE (as UseCode) that holds the code row's exclusive lock
	// to the end of the transaction; CodeLoad runs after it, so it reads every
	// reservation and use committed by the lock's earlier holders (a new
	// statement-level snapshot under READ_COMMITTED_SNAPSHOT, the latest committed
	// rows under locking READ COMMITTED), and nobody adds one to this code until
	// this transaction ends. Same for the allowance row. Every transaction takes
	// its locks in the order code, allowance, reservation row, and a release
	// locks only its reservation row and waits for nothing, so a locking read of
	// reservations that waits for a release cannot close a cycle.

	LockCode: codeUse("c.used"),

	// The allowance lock is an update-or-insert in two statements, as
	// UseAllowance is: the no-op UPDATE while below the limit, else the
	// INSERT of the row at 0.
	LockAllowance: `DECLARE @t TABLE (used int);
UPDATE user_uses SET used = used OUTPUT inserted.used INTO @t
WHERE promotion_id = @p1 AND user_id = @p2 AND used < @p3;
SELECT used FROM @t;`,

	LockAllowanceInsert: `INSERT INTO user_uses (promotion_id, user_id, used)
SELECT @p1, @p2, 0 WHERE NOT EXISTS (SELECT 1 FROM user_uses WHERE promotion_id = @p1 AND user_id = @p2)`,

	MarkReleased: `DECLARE @t TABLE (id varchar(36));
UPDATE reservations SET status = 'released', settled_at = @p2 OUTPUT inserted.id INTO @t
WHERE id = @p1 AND status = 'held';
SELECT ` + sqlstore.ReservationCols + ` FROM reservations WHERE id IN (SELECT id FROM @t);`,

	SweepReservations: `DELETE TOP (@p2) FROM reservations WHERE expires_at < @p1`,

	SweepIdempotencyKeys: `DELETE TOP (@p2) FROM idempotency_keys WHERE created_at < @p1`,

	// Admin changes and their audit log (../postgres/queries.go says why
	// they are safe).

	RevokeCode: `DECLARE @t TABLE (promotion_id bigint);
UPDATE c SET c.revoked_at = @p2, c.revoke_reason = NULLIF(@p3, N'') OUTPUT inserted.promotion_id INTO @t
FROM codes AS c
WHERE c.code = @p1 AND c.revoked_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM promotions AS p WHERE p.id = c.promotion_id AND p.delete_requested_at IS NOT NULL);
SELECT promotion_id FROM @t;`,

	UpdatePromotion: `DECLARE @t TABLE (id bigint);
UPDATE promotions SET
	name = COALESCE(@p2, name),
	starts_at = CASE WHEN @p3 = 1 THEN @p4 ELSE starts_at END,
	expires_at = CASE WHEN @p5 = 1 THEN @p6 ELSE expires_at END,
	active = COALESCE(@p7, active),
	eligibility = CASE WHEN @p8 = 1 THEN @p9 ELSE eligibility END
OUTPUT inserted.id INTO @t
WHERE id = @p1 AND delete_requested_at IS NULL AND (
	(CASE WHEN @p3 = 1 THEN @p4 ELSE starts_at END) IS NULL
	OR (CASE WHEN @p5 = 1 THEN @p6 ELSE expires_at END) IS NULL
	OR (CASE WHEN @p3 = 1 THEN @p4 ELSE starts_at END) < (CASE WHEN @p5 = 1 THEN @p6 ELSE expires_at END));
SELECT id, name, starts_at, expires_at, CAST(active AS bit), COALESCE(eligibility, N'') FROM promotions
WHERE id IN (SELECT id FROM @t);`,

	// LockPromotion: the update lock is held to the end of the transaction.
	LockPromotion: `SELECT CAST(CASE WHEN delete_requested_at IS NULL THEN 0 ELSE 1 END AS bit),
	CAST(CASE WHEN cancelled_at IS NULL THEN 0 ELSE 1 END AS bit) FROM promotions WITH (UPDLOCK, ROWLOCK) WHERE id = @p1`,

	// FlagCancelled sets the flag every chunk reads before it commits (see
	// ../postgres/queries.go); only the promotion row is locked.
	// "Some batch is unfinished" must not wait for a chunk in flight either
	// (at locking READ COMMITTED a plain read of its batch row would): an
	// unlocked unfinished batch (READPAST), or a batch row some transaction
	// holds, seen as fewer rows through READPAST than through NOLOCK (chunks
	// never add or remove batch rows; a held row is a chunk in flight, which
	// the flag then refuses).
	FlagCancelled: `UPDATE promotions SET cancelled_at = @p2
WHERE id = @p1 AND kind = 'generated' AND cancelled_at IS NULL AND delete_requested_at IS NULL
	AND (EXISTS (SELECT 1 FROM batches WITH (READPAST) WHERE promotion_id = @p1 AND done < code_count)
		OR (SELECT COUNT(*) FROM batches WITH (NOLOCK) WHERE promotion_id = @p1)
			> (SELECT COUNT(*) FROM batches WITH (READPAST) WHERE promotion_id = @p1))`,

	// CancelBatches marks the unfinished batches no transaction holds
	// (READPAST skips a chunk in flight; the flag refuses it and its worker
	// marks the batch).
	CancelBatches: `UPDATE b SET b.state = 'cancelled', b.updated_at = @p2
FROM batches AS b WITH (ROWLOCK, READPAST)
WHERE b.promotion_id = @p1 AND b.done < b.code_count AND b.state <> 'cancelled'`,

	GrowPromotion: `DECLARE @t TABLE (counter_name nvarchar(450), code_count bigint);
UPDATE promotions SET code_count = code_count + @p2 OUTPUT inserted.counter_name, inserted.code_count INTO @t
WHERE id = @p1 AND kind = 'generated';
SELECT counter_name, code_count FROM @t;`,

	InsertTopUpBatches: insertBatches("@p7"),

	PurgeCount: `SELECT (SELECT COUNT_BIG(*) FROM codes WHERE promotion_id = @p1),
	(SELECT COUNT_BIG(*) FROM redemptions WHERE promotion_id = @p1)`,

	// Purge deletes up to @p2 rows of one promotion from a table (see
	// ../postgres/queries.go).
	Purge: map[string]string{
		"codes":        `DELETE TOP (@p2) FROM codes WHERE promotion_id = @p1`,
		"user_uses":    `DELETE TOP (@p2) FROM user_uses WHERE promotion_id = @p1`,
		"reservations": `DELETE TOP (@p2) FROM reservations WHERE promotion_id = @p1`,
		// The redemptions with their idempotency records, in one batch, a
		// row each.
		"redemptions": `DECLARE @d TABLE (idempotency_key nvarchar(256) COLLATE Latin1_General_100_BIN2 NULL);
DELETE TOP (@p2) FROM redemptions OUTPUT deleted.idempotency_key INTO @d WHERE promotion_id = @p1;
DELETE FROM idempotency_keys WHERE idem_key IN (SELECT idempotency_key FROM @d WHERE idempotency_key IS NOT NULL);
SELECT 1 FROM @d;`,
	},
})
