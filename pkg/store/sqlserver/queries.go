package sqlserver

import (
	"strconv"
	"strings"

	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// SQL Server's statements where they differ from sqlstore's shared ones
// (parameters @pn; argument types decide index use: docs/store.md, "SQL
// Server"). UPDATEs return rows through OUTPUT ... INTO a table variable
// (Rebind.Output does RETURNING): a plain OUTPUT fails once a table has a
// trigger.

// qInsertCodesSkipping returns an insert of n codes (@p2..@p(n+1)) for
// promotion @p1 that skips codes already in the table (or inserted earlier
// in the transaction) and duplicates among the n, then selects the number of
// rows inserted: the collision path of CommitChunk and the insert of
// replacement codes.
//   - @@ROWCOUNT, not RowsAffected: NOCOUNT (a server's 'user options') zeroes
//     the latter, and the count keeps the chunk exact; an INSERT's error still
//     comes back through Row.Scan.
//   - DISTINCT, comparing bytes (COLLATE): NOT EXISTS does not see the
//     statement's own rows, and the arguments' collation may fold case.
//   - UPDLOCK without HOLDLOCK: range locks on the hot table would make
//     fallbacks of different promotions deadlock on each other's gaps; a code
//     inserted by another transaction in between fails the statement with
//     2627 and CommitChunk runs the fallback again.
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
	rows, row := make([]string, n), make([]string, per)
	for r := range rows {
		for i := range row {
			row[i] = "@p" + strconv.Itoa(first+r*per+i)
		}
		rows[r] = "(" + strings.Join(row, ", ") + ")"
	}
	return strings.Join(rows, ",")
}

const (
	// qReserve: UPDLOCK, HOLDLOCK make two creators of one counter queue on
	// its key range (one name, not the codes table); the update's row lock
	// then serialises reservations per counter to the end of the transaction.
	qReserve = `DECLARE @t TABLE (n bigint);
IF NOT EXISTS (SELECT 1 FROM counters WITH (UPDLOCK, HOLDLOCK) WHERE name = @p1)
	INSERT INTO counters (name, [next]) VALUES (@p1, 0);
UPDATE counters SET [next] = [next] + @p2 OUTPUT deleted.[next] INTO @t WHERE name = @p1;
SELECT n FROM @t;`

	// The migration lock (appLocker): sp_getapplock returns >= 0 when
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

// insertBatches writes @p5 batch rows numbered from first: @p3-sized slices
// of [@p2, @p2+@p4), the last one smaller. The numbers are a cross join of
// ten 10-row tables cut by TOP (no recursion limit, no numbers table); the
// ORDER BY makes TOP keep 0..@p5-1.
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

// codeUse is postgres' codeUse, on sqlstore.CodeUsable.
func codeUse(set string) string {
	return `DECLARE @t TABLE (promotion_id bigint, used int, max_usage int, per_user int, eligibility nvarchar(max));
UPDATE c SET c.used = ` + set + `
OUTPUT inserted.promotion_id, inserted.used, p.max_usage_per_code, p.per_user_limit, p.eligibility INTO @t
FROM codes AS c, promotions AS p
WHERE ` + strings.NewReplacer("$", "@p", "p.active\n", "p.active = 1\n").Replace(sqlstore.CodeUsable) + `;
SELECT promotion_id, used, max_usage, per_user, COALESCE(eligibility, N'') FROM @t;`
}

// allowance sets a user's used to set below the limit @p3; allowanceInsert
// inserts its absent row at used.
func allowance(set string) string {
	return `DECLARE @t TABLE (used int);
UPDATE user_uses SET used = ` + set + ` OUTPUT inserted.used INTO @t
WHERE promotion_id = @p1 AND user_id = @p2 AND used < @p3;
SELECT used FROM @t;`
}

func allowanceInsert(used int) string {
	return `INSERT INTO user_uses (promotion_id, user_id, used)
SELECT @p1, @p2, ` + strconv.Itoa(used) + ` WHERE NOT EXISTS (SELECT 1 FROM user_uses WHERE promotion_id = @p1 AND user_id = @p2)`
}

// Advance (shared): SET's right-hand sides see the row before the update;
// the UPDATE reads its row under an update lock (with or without snapshot),
// so a concurrent committer of the chunk waits, then matches nothing.
var statements = sqlstore.Compose(sqlstore.Rebind{Prefix: "@p", Now: "SYSUTCDATETIME()", Top: true,
	// COUNT_BIG: bigint, as PostgreSQL counts. No ON CONFLICT: a second
	// inserter of a key (ClaimKey) waits for the first's key lock and gets
	// 2627 once it commits; a redemption's segments are distinct.
	// A bit parameter is no predicate: UpdatePromotion's "set" flags compare.
	// LockPromotion: UPDLOCK is FOR UPDATE.
	Replace: []string{"count(", "COUNT_BIG(", "\nON CONFLICT (idem_key) DO NOTHING", "", "\nON CONFLICT DO NOTHING", "",
		"WHEN $3 THEN", "WHEN $3 = 1 THEN", "WHEN $5 THEN", "WHEN $5 = 1 THEN", "WHEN $8 THEN", "WHEN $8 = 1 THEN",
		"promotions WHERE id = $1 FOR UPDATE", "promotions WITH (UPDLOCK, ROWLOCK) WHERE id = $1"},
	Flag: func(p string) string { return "CAST(CASE WHEN " + p + " THEN 1 ELSE 0 END AS bit)" },
	Output: map[string]string{"promotions.id": "bigint", "promotions.counter_name": "nvarchar(450)",
		"promotions.code_count": "bigint", "batches.done": "bigint", "codes.used": "int", "codes.promotion_id": "bigint",
		"redemptions.id": "varchar(36)", "reservations.id": "varchar(36)"}}, sqlstore.Statements{
	Reserve: qReserve,

	InsertBatches: insertBatches("0"),

	// ClaimPendingBatches and ClaimEvents lease on the server's clock for @p2
	// ms: READPAST skips rows another replica holds, UPDLOCK keeps two from
	// taking the same, the ORDER BY under TOP takes the oldest.
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

	ListPromotions: `SELECT TOP (@p4) ` + sqlstore.PromotionColsP + `,
	g.total, g.generated, g.completed, g.retrying, g.parked, g.cancelled, ` + sqlstore.StatusCols + `
FROM promotions p
CROSS APPLY (SELECT ` + sqlstore.ProgressCols + `
	FROM batches b WHERE b.promotion_id = p.id) g
CROSS APPLY (SELECT ` + sqlstore.StatusCase("p", "g") + ` AS status) s
LEFT JOIN promotion_totals t ON t.promotion_id = p.id
WHERE (@p1 = 0 OR p.id < @p1)
	AND (@p2 = N'' OR CHARINDEX(LOWER(@p2), LOWER(p.name)) > 0)
	AND (@p3 = N'' OR s.status = @p3)
	AND (@p5 = 0 OR p.active = CASE WHEN @p5 = 1 THEN 1 ELSE 0 END)
ORDER BY p.id DESC`,

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

	StatsRefusalSeries: `SELECT x.b, e.reason, SUM(e.n) FROM (
	SELECT hour AS t, reason, n FROM refusals WHERE promotion_id = @p1 AND hour >= @p3 AND hour < @p4
) e CROSS APPLY (SELECT ` + bucketOfT + ` AS b) x GROUP BY x.b, e.reason`,

	AddRefusals: `UPDATE refusals SET n = n + @p4 WHERE promotion_id = @p1 AND reason = @p2 AND hour = @p3;
IF @@ROWCOUNT = 0
	INSERT INTO refusals (promotion_id, reason, hour, n) VALUES (@p1, @p2, @p3, @p4);`,

	// Why SQL Server cannot over-redeem: a conditional UPDATE reads its rows
	// under an update (U) lock, which two transactions cannot share (snapshot
	// or not), and keeps the exclusive lock to the end: the second redeemer
	// checks "used < max" on the first's committed count. Row locks only
	// (no lock escalation on codes).

	UseCode: codeUse("c.used + 1"),

	RedeemOnce: qRedeemOnce, // once.go

	AddCodeUses: `UPDATE c SET c.used = c.used + @p2 FROM codes AS c JOIN promotions AS p ON p.id = c.promotion_id
WHERE c.code = @p1 AND c.used + @p2 <= p.max_usage_per_code`,

	// The allowance is an update-or-insert in two statements (no MERGE):
	// the conditional UPDATE, else the Insert, whose unique violation (a
	// concurrent first use) sends the core back to the UPDATE.
	UseAllowance: allowance("used + 1"), UseAllowanceInsert: allowanceInsert(1),
	LockAllowance: allowance("used"), LockAllowanceInsert: allowanceInsert(0),

	ClaimEvents: `DECLARE @t TABLE (seq bigint);
DECLARE @now datetime2 = SYSUTCDATETIME();
WITH c AS (
	SELECT TOP (@p1) seq, lease_until FROM events WITH (UPDLOCK, READPAST, ROWLOCK)
	WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < @now) ORDER BY seq)
UPDATE c SET lease_until = DATEADD(millisecond, @p2, @now) OUTPUT inserted.seq INTO @t;
SELECT e.seq, e.stream, e.event_key, e.payload FROM events AS e JOIN @t AS t ON t.seq = e.seq ORDER BY e.seq;`,

	// IssueCodes, ClaimUncounted: the claims' READPAST, UPDLOCK, ROWLOCK
	// queue; the UPDATE re-checks its WHERE on the latest committed row.
	IssueCodes: `DECLARE @t TABLE (code varchar(128));
WITH pick AS (
	SELECT TOP (@p5) code, user_id, issuance_id, issued_at FROM codes WITH (UPDLOCK, READPAST, ROWLOCK)
	WHERE promotion_id = @p1 AND user_id IS NULL AND used = 0 AND revoked_at IS NULL ORDER BY code)
UPDATE pick SET user_id = @p2, issuance_id = @p3, issued_at = @p4 OUTPUT inserted.code INTO @t;
SELECT code FROM @t;`,

	ClaimUncounted: `DECLARE @t TABLE (seq bigint, stream varchar(64), payload nvarchar(max), created_at datetime2(6));
WITH c AS (
	SELECT TOP (@p1) seq, stream, payload, created_at, counted_at FROM events WITH (UPDLOCK, READPAST, ROWLOCK)
	WHERE counted_at IS NULL ORDER BY seq)
UPDATE c SET counted_at = @p2 OUTPUT inserted.seq, inserted.stream, inserted.payload, inserted.created_at INTO @t;
SELECT seq, stream, payload, created_at FROM @t ORDER BY seq;`,

	// AddTotals: UPDLOCK, SERIALIZABLE lock the key (or a new promotion's
	// key range), so a concurrent roller cannot insert the row in between.
	AddTotals: `UPDATE promotion_totals WITH (UPDLOCK, SERIALIZABLE)
SET redemptions = redemptions + @p2, codes_redeemed = codes_redeemed + @p3, rolled_back = rolled_back + @p4,
	updated_at = @p5
WHERE promotion_id = @p1;
IF @@ROWCOUNT = 0
	INSERT INTO promotion_totals (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
	VALUES (@p1, @p2, @p3, @p4, @p5);`,

	// LockCode, then CodeLoad in a later statement: see sqlstore's take.

	LockCode: codeUse("c.used"),

	// FlagCancelled locks only the promotion row; "some batch is unfinished"
	// must not wait for a chunk in flight: an unlocked unfinished batch
	// (READPAST), or a held batch row, seen as fewer rows through READPAST
	// than through NOLOCK (a held row is a chunk in flight, which the flag
	// then refuses).
	FlagCancelled: `UPDATE promotions SET cancelled_at = @p2
WHERE id = @p1 AND kind = 'generated' AND cancelled_at IS NULL AND delete_requested_at IS NULL
	AND (EXISTS (SELECT 1 FROM batches WITH (READPAST) WHERE promotion_id = @p1 AND done < code_count)
		OR (SELECT COUNT(*) FROM batches WITH (NOLOCK) WHERE promotion_id = @p1)
			> (SELECT COUNT(*) FROM batches WITH (READPAST) WHERE promotion_id = @p1))`,

	// CancelBatches: READPAST skips a chunk in flight (the flag refuses it).
	CancelBatches: `UPDATE b SET b.state = 'cancelled', b.updated_at = @p2
FROM batches AS b WITH (ROWLOCK, READPAST)
WHERE b.promotion_id = @p1 AND b.done < b.code_count AND b.state <> 'cancelled'`,

	InsertTopUpBatches: insertBatches("@p7"),

	Purge: map[string]string{
		"user_uses": `DELETE TOP (@p2) FROM user_uses WHERE promotion_id = @p1`,
		"redemptions": `DECLARE @d TABLE (idempotency_key nvarchar(256) COLLATE Latin1_General_100_BIN2 NULL);
DELETE TOP (@p2) FROM redemptions OUTPUT deleted.idempotency_key INTO @d WHERE promotion_id = @p1;
DELETE FROM idempotency_keys WHERE idem_key IN (SELECT idempotency_key FROM @d WHERE idempotency_key IS NOT NULL);
SELECT 1 FROM @d;`,
	},
})
