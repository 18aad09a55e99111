package sqlite

import (
	"strings"

	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// SQLite's statements where they differ from sqlstore's shared ones
// (parameters ?n, times ISO 8601 UTC text).

// bucketWidth is how many leading characters of a stored time name its
// bucket (?2: 'hour' or 'day'); bucketTime completes bucket b to a time.
const (
	bucketWidth = `CASE ?2 WHEN 'day' THEN 10 ELSE 13 END`
	bucketTime  = `b || substr('0000-00-00T00:00:00.000000Z', length(b) + 1)`
)

const (
	// sqlNow is SQLite's clock in TimeLayout (strftime's %f has
	// milliseconds; the padding keeps the text order the time order);
	// sqlNowPlus is ?2 seconds (fractional, may be negative) later.
	sqlNow     = `strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')`
	sqlNowPlus = `(strftime('%Y-%m-%dT%H:%M:%f', 'now', printf('%+.6f seconds', ?2)) || '000Z')`
)

// codeUse is postgres' codeUse, more being further RETURNING columns. Its
// WHERE is sqlstore.CodeUsable with the promotion's conditions
// (sqlstore.PromotionUsable) in a scalar subquery on its primary key (NULL,
// so no row changed, when one fails), not UPDATE ... FROM, which SQLite runs
// in two passes through a temporary table.
func codeUse(set string, more ...string) string {
	r := strings.NewReplacer("c.", "", "$", "?", "p.active\n", "p.active = 1\n")
	return `UPDATE codes SET used = ` + set + `
WHERE code = ?1 AND ` + r.Replace(sqlstore.CodeOwn) + `
  AND used < (SELECT p.max_usage_per_code FROM promotions p WHERE p.id = codes.promotion_id
    AND ` + r.Replace(sqlstore.PromotionUsable) + `)
RETURNING promotion_id, used,
  (SELECT max_usage_per_code FROM promotions WHERE id = codes.promotion_id),
  (SELECT per_user_limit FROM promotions WHERE id = codes.promotion_id),
  (SELECT coalesce(eligibility, '') FROM promotions WHERE id = codes.promotion_id)` + strings.Join(append([]string{""}, more...), ",\n  ")
}

// Live holds of a code (codes.code) and of a user's allowance (?1, ?2), at
// now (?2 for a code, ?4 for an allowance): the loads UseCodeLoad and
// UseAllowanceLoad return, as CodeLoad and AllowanceLoad count them.
const (
	codeHolds = `used + (SELECT count(*) FROM reservations r
	WHERE r.code = codes.code AND r.promotion_id = codes.promotion_id AND r.status = 'held' AND r.expires_at > ?2)`
	allowanceHolds = `used + (SELECT count(*) FROM reservations r
	WHERE r.promotion_id = ?1 AND r.user_id = ?2 AND r.status = 'held' AND r.expires_at > ?4)`
)

// insertBatches writes ?5 batch rows numbered from first: ?3-sized slices of
// [?2, ?2+?4), the last one smaller.
func insertBatches(first string) string {
	return `WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < ?5)
INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT ?1, ` + first + ` + n, ?2 + n * ?3, min(?3, ?4 - n * ?3), ?6 FROM g`
}

// The leases (ClaimPendingBatches, ClaimEvents) are ?2 seconds of SQLite's
// clock, the same for every process on the file. SQLite has no row locks:
// one writer at a time holds the database's write lock, so FOR UPDATE and
// SKIP LOCKED go, and a lease only keeps other processes off the rows.
var statements = sqlstore.Compose(sqlstore.Rebind{Prefix: "?", Now: sqlNow,
	Replace: []string{sqlstore.LeaseEnd, sqlNowPlus, " FOR UPDATE", "", " SKIP LOCKED", ""}}, sqlstore.Statements{
	InsertBatches: insertBatches("0"),

	ListPromotions: `SELECT ` + strings.ReplaceAll(sqlstore.PromotionColsP, "p.", "l.") + `,
	l.total, l.generated, l.completed, l.retrying, l.parked, l.cancelled,
	l.active, l.delete_requested_at, l.deleted_at,
	coalesce(t.redemptions, 0), coalesce(t.codes_redeemed, 0), coalesce(t.rolled_back, 0)
FROM (
	SELECT ` + sqlstore.PromotionColsP + `,
		p.active, p.delete_requested_at, p.deleted_at, ` + sqlstore.ProgressCols + `
	FROM promotions p LEFT JOIN batches b ON b.promotion_id = p.id
	WHERE (?1 = 0 OR p.id < ?1) AND (?2 = '' OR instr(lower(p.name), lower(?2)) > 0)
		AND (?5 = 0 OR p.active = (?5 = 1))
	GROUP BY p.id
) l
LEFT JOIN promotion_totals t ON t.promotion_id = l.id
WHERE ?3 = '' OR ?3 = ` + sqlstore.StatusCase("l", "l") + `
ORDER BY l.id DESC LIMIT ?4`,

	// StatsSeries and StatsRefusalSeries bucket ISO 8601 text by its prefix.
	StatsSeries: `SELECT ` + bucketTime + `, sum(n), sum(rb), sum(rbk) FROM (
	SELECT substr(redeemed_at, 1, ` + bucketWidth + `) AS b, count(*) AS n, count(rolled_back_at) AS rb, 0 AS rbk
	FROM redemptions WHERE promotion_id = ?1 AND redeemed_at >= ?3 AND redeemed_at < ?4 GROUP BY 1
	UNION ALL
	SELECT substr(rolled_back_at, 1, ` + bucketWidth + `), 0, 0, count(*)
	FROM redemptions WHERE promotion_id = ?1 AND rolled_back_at >= ?3 AND rolled_back_at < ?4 GROUP BY 1
	UNION ALL
	SELECT substr(hour, 1, ` + bucketWidth + `), 0, 0, 0
	FROM refusals WHERE promotion_id = ?1 AND hour >= ?3 AND hour < ?4 GROUP BY 1
) GROUP BY b ORDER BY b`,

	StatsRefusalSeries: `SELECT ` + bucketTime + `, reason, sum(n) FROM (
	SELECT substr(hour, 1, ` + bucketWidth + `) AS b, reason, n
	FROM refusals WHERE promotion_id = ?1 AND hour >= ?3 AND hour < ?4
) GROUP BY b, reason`,

	// No over-redemption nor over-allocation: every write transaction is
	// BEGIN IMMEDIATE, one writer per file, so the statements see the latest
	// counts and the "row locks" are the database's one write lock.

	UseCode: codeUse("used + 1"),

	UseCodeLoad: codeUse("used + 1", codeHolds),
	UseAllowanceLoad: `INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES (?1, ?2, 1)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used + 1 WHERE u.used < ?3
RETURNING used, ` + allowanceHolds,

	AddCodeUses: `UPDATE codes SET used = used + ?2
WHERE code = ?1 AND used + ?2 <= (SELECT max_usage_per_code FROM promotions WHERE id = codes.promotion_id)`,

	IssueCodes: `UPDATE codes SET user_id = ?2, issuance_id = ?3, issued_at = ?4
WHERE rowid IN (
	SELECT rowid FROM codes WHERE promotion_id = ?1 AND user_id IS NULL AND used = 0 AND revoked_at IS NULL LIMIT ?5)
RETURNING code`,

	AddTotals: `INSERT INTO promotion_totals (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (promotion_id) DO UPDATE SET redemptions = redemptions + excluded.redemptions,
	codes_redeemed = codes_redeemed + excluded.codes_redeemed,
	rolled_back = rolled_back + excluded.rolled_back, updated_at = excluded.updated_at`,

	LockCode: codeUse("used"),

	CancelBatches: `UPDATE batches SET state = 'cancelled', updated_at = ?2
WHERE promotion_id = ?1 AND done < code_count AND state <> 'cancelled'`,

	InsertTopUpBatches: insertBatches("?7"),

	// PurgeRedemptionKeys: the same ORDER BY id LIMIT as Purge["redemptions"]
	// next, and one writer, so the same rows.
	PurgeRedemptionKeys: `DELETE FROM idempotency_keys WHERE idem_key IN (
	SELECT idempotency_key FROM redemptions WHERE id IN (
		SELECT id FROM redemptions WHERE promotion_id = ?1 ORDER BY id LIMIT ?2))`,

	Purge: map[string]string{
		"redemptions": `DELETE FROM redemptions WHERE id IN (SELECT id FROM redemptions WHERE promotion_id = ?1 ORDER BY id LIMIT ?2)
RETURNING 1`,
	},
})

// insertCodesRows is the number of rows per multi-row code insert: 2 bound
// parameters per row, well under SQLite's limit of 32766.
const insertCodesRows = 500

// qInsertCodes returns a multi-row insert of n (code, promotion_id) rows that
// skips codes already present; RowsAffected counts the rows inserted.
func qInsertCodes(n int) string {
	return values("INSERT INTO codes (code, promotion_id) VALUES ", n) + " ON CONFLICT (code) DO NOTHING"
}

// qMarkPublished returns an update marking n batches published, given as
// (promotion_id, batch_no) pairs of arguments; pairs that name no batch, or
// a published one, change nothing.
func qMarkPublished(n int) string {
	return `UPDATE batches SET published = 1, publish_lease_until = NULL, updated_at = ` + sqlNow + `
WHERE published = 0 AND (promotion_id, batch_no) IN (` + values("VALUES ", n) + `)`
}

// values is head followed by n rows (?,?).
func values(head string, n int) string {
	return head + strings.TrimPrefix(strings.Repeat(",(?,?)", n), ",")
}
