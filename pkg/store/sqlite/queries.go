package sqlite

import (
	"strings"

	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// The SQL of the SQLite store that the shared core runs (see
// sqlstore.Statements for each statement's arguments), so that the dialects
// can be reviewed side by side (../postgres/queries.go,
// ../sqlserver/queries.go). Parameters are ? or ?n. Times are bound as ISO
// 8601 UTC text (sqlstore.TimeLayout); sqlNow is the database's clock in that
// form.

// bucketWidth is how many leading characters of a stored time name its
// bucket (?2: 'hour' or 'day'); bucketTime completes bucket b to a time.
const (
	bucketWidth = `CASE ?2 WHEN 'day' THEN 10 ELSE 13 END`
	bucketTime  = `b || substr('0000-00-00T00:00:00.000000Z', length(b) + 1)`
)

const (
	sqlNow = `strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')`

	promotionCols = `id, name, kind, code_count, format, vanity_code, max_usage_per_code, per_user_limit,
	starts_at, expires_at, counter_name, seq_start, created_at`

	// qReserve reserves ?2 sequence numbers from counter ?1, creating it at 0
	// if absent, and returns the first of them.
	qReserve = `INSERT INTO counters (name, next) VALUES (?1, ?2)
ON CONFLICT (name) DO UPDATE SET next = next + excluded.next
RETURNING next - ?2`

	qPromotionExists = `SELECT EXISTS (SELECT 1 FROM promotions WHERE id = ?)`

	batchCols = `promotion_id, batch_no, seq_start, code_count, done, state, last_error`
)

var statements = sqlstore.Statements{
	Reserve: qReserve,

	PromotionByKey: `SELECT ` + promotionCols + `, request_hash, active FROM promotions WHERE idempotency_key = ?`,

	InsertPromotion: `INSERT INTO promotions (name, kind, code_count, format, vanity_code,
	max_usage_per_code, per_user_limit, starts_at, expires_at, counter_name, seq_start,
	idempotency_key, request_hash, created_at, key_fingerprint)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING id`,

	// InsertBatches: ?3-sized slices of [?2, ?2+?4), the last one smaller,
	// ?5 of them.
	InsertBatches: `WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < ?5)
INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT ?1, n, ?2 + n * ?3, min(?3, ?4 - n * ?3), ?6 FROM g`,

	InsertCode: `INSERT INTO codes (code, promotion_id) VALUES (?, ?)`,

	// PromotionStatus: the totals as of the last rollup (no
	// promotion_totals row: nothing counted yet).
	PromotionStatus: `SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at,
	p.active, p.delete_requested_at, p.deleted_at,
	coalesce(t.redemptions, 0), coalesce(t.codes_redeemed, 0), coalesce(t.rolled_back, 0)
FROM promotions p LEFT JOIN promotion_totals t ON t.promotion_id = p.id WHERE p.id = ?`,

	// Progress: a batch counts as cancelled when its promotion is flagged
	// cancelled (see ../postgres/queries.go).
	Progress: `SELECT count(*),
	coalesce(sum(b.done), 0),
	coalesce(sum(b.done = b.code_count), 0),
	coalesce(sum(b.state = 'retrying' AND b.done < b.code_count), 0),
	coalesce(sum(b.state = 'parked' AND b.done < b.code_count), 0),
	coalesce(sum((b.state = 'cancelled' OR p.cancelled_at IS NOT NULL) AND b.done < b.code_count), 0)
FROM batches b JOIN promotions p ON p.id = b.promotion_id WHERE b.promotion_id = ?`,

	PromotionExists: qPromotionExists,

	ExportCodes: `SELECT code FROM codes WHERE promotion_id = ?`,

	// "published = 0" literally: that is what the partial index says.
	PendingBatches: `SELECT ` + batchCols + ` FROM batches WHERE published = 0
ORDER BY promotion_id, batch_no LIMIT ?`,

	// ClaimPendingBatches leases up to ?1 of the oldest unpublished batches
	// until ?2 to this publisher (one writer at a time: the statement holds
	// the write lock; the lease keeps another process on the same file off
	// them).
	ClaimPendingBatches: `UPDATE batches SET publish_lease_until = ?2
WHERE (promotion_id, batch_no) IN (
	SELECT promotion_id, batch_no FROM batches
	WHERE published = 0 AND (publish_lease_until IS NULL OR publish_lease_until < ?3)
	ORDER BY promotion_id, batch_no LIMIT ?1)
RETURNING ` + batchCols,

	// LoadBatch tells a missing promotion (no row) from a missing batch
	// (NULL batch columns) in one query.
	LoadBatch: `SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at,
	b.batch_no, b.seq_start, b.code_count, b.done, b.state, b.last_error, p.key_fingerprint
FROM promotions p LEFT JOIN batches b ON b.promotion_id = p.id AND b.batch_no = ?2
WHERE p.id = ?1`,

	// Advance is the compare-and-set at the heart of CommitChunk: it moves
	// done from ?4 to ?4+?3 or touches nothing. Write transactions are BEGIN
	// IMMEDIATE, so there is no concurrent writer to race with.
	Advance: `UPDATE batches SET done = done + ?3,
	state = CASE WHEN done + ?3 = code_count THEN 'done' ELSE state END,
	updated_at = ` + sqlNow + `
WHERE promotion_id = ?1 AND batch_no = ?2 AND done = ?4 AND done + ?3 <= code_count AND state <> 'cancelled'
RETURNING done`,

	BatchProgress: `SELECT done, code_count FROM batches WHERE promotion_id = ? AND batch_no = ?`,

	// PromotionLive and CancelBatch: the chunk commit gate (see
	// ../postgres/queries.go).
	PromotionLive: `SELECT cancelled_at IS NULL AND delete_requested_at IS NULL FROM promotions WHERE id = ?`,

	CancelBatch: `UPDATE batches SET state = 'cancelled', updated_at = ` + sqlNow + `
WHERE promotion_id = ?1 AND batch_no = ?2 AND done < code_count AND state <> 'cancelled'`,

	// SetBatchState never touches a finished batch: done is final.
	SetBatchState: `UPDATE batches SET state = ?3, last_error = ?4, updated_at = ` + sqlNow + `
WHERE promotion_id = ?1 AND batch_no = ?2 AND done < code_count AND state <> 'cancelled'`,

	BatchExists: `SELECT EXISTS (SELECT 1 FROM batches WHERE promotion_id = ? AND batch_no = ?)`,

	IncompleteBatches: `SELECT ` + batchCols + ` FROM batches
WHERE promotion_id = ? AND done < code_count AND state <> 'cancelled' ORDER BY batch_no`,

	AllIncompleteBatches: `SELECT ` + batchCols + ` FROM batches
WHERE done < code_count AND state <> 'cancelled' ORDER BY promotion_id, batch_no`,

	GetCode: `SELECT c.code, c.promotion_id, c.used, p.max_usage_per_code
FROM codes c JOIN promotions p ON p.id = c.promotion_id WHERE c.code = ?`,

	// ListPromotions: ?1 the cursor (ids below it; 0 = from the newest), ?2
	// a name fragment (empty = any), ?3 a status (empty = any), ?4 the page
	// size, ?5 the active filter (contract.ActiveFilter: 0 any, 1 active, 2
	// inactive). The status CASE is promo.PromotionStatus.Status in SQL,
	// branch for branch: the deletion first, then the generation (a vanity
	// promotion is complete).
	ListPromotions: `SELECT l.id, l.name, l.kind, l.code_count, l.format, l.vanity_code, l.max_usage_per_code,
	l.per_user_limit, l.starts_at, l.expires_at, l.counter_name, l.seq_start, l.created_at,
	l.total, l.generated, l.completed, l.retrying, l.parked, l.cancelled,
	l.active, l.delete_requested_at, l.deleted_at,
	coalesce(t.redemptions, 0), coalesce(t.codes_redeemed, 0), coalesce(t.rolled_back, 0)
FROM (
	SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code, p.per_user_limit,
		p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at,
		p.active, p.delete_requested_at, p.deleted_at,
		count(b.batch_no) AS total,
		coalesce(sum(b.done), 0) AS generated,
		coalesce(sum(b.done = b.code_count), 0) AS completed,
		coalesce(sum(b.state = 'retrying' AND b.done < b.code_count), 0) AS retrying,
		coalesce(sum(b.state = 'parked' AND b.done < b.code_count), 0) AS parked,
		coalesce(sum((b.state = 'cancelled' OR p.cancelled_at IS NOT NULL) AND b.done < b.code_count), 0) AS cancelled
	FROM promotions p LEFT JOIN batches b ON b.promotion_id = p.id
	WHERE (?1 = 0 OR p.id < ?1) AND (?2 = '' OR instr(lower(p.name), lower(?2)) > 0)
		AND (?5 = 0 OR p.active = (?5 = 1))
	GROUP BY p.id
) l
LEFT JOIN promotion_totals t ON t.promotion_id = l.id
WHERE ?3 = '' OR ?3 = CASE
	WHEN l.deleted_at IS NOT NULL THEN 'deleted'
	WHEN l.delete_requested_at IS NOT NULL THEN 'deleting'
	WHEN l.kind = 'vanity' OR l.generated >= l.code_count THEN 'completed'
	WHEN l.cancelled > 0 THEN 'cancelled'
	WHEN l.parked > 0 THEN 'failed'
	WHEN l.generated > 0 THEN 'generating'
	ELSE 'pending' END
ORDER BY l.id DESC LIMIT ?4`,

	// OldestUnpublished: the creation time of the promotion of the oldest
	// unpublished batch (ids grow with time), through the partial index.
	OldestUnpublished: `SELECT created_at FROM promotions
WHERE id = (SELECT min(promotion_id) FROM batches WHERE published = 0)`,

	// Redemption analytics of one promotion (?1), from the audit trail.
	StatsTotals: `SELECT count(*) - count(rolled_back_at), count(rolled_back_at),
	count(DISTINCT CASE WHEN rolled_back_at IS NULL THEN code END)
FROM redemptions WHERE promotion_id = ?1`,

	// StatsSeries is the time series over [?3, ?4): times are ISO 8601
	// text, so an hour bucket is the first 13 characters and a day the first
	// 10 (?2 says which), completed to a time by the rest of a zero time.
	// Redemptions made (and how many of those were rolled back since),
	// rollbacks made, and a row for every bucket with refusals
	// (StatsRefusalSeries counts them by reason). The window is bounded, so
	// is the answer.
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

	// StatsRefusalSeries is the series' refusals by reason.
	StatsRefusalSeries: `SELECT ` + bucketTime + `, reason, sum(n) FROM (
	SELECT substr(hour, 1, ` + bucketWidth + `) AS b, reason, n
	FROM refusals WHERE promotion_id = ?1 AND hour >= ?3 AND hour < ?4
) GROUP BY b, reason`,

	StatsTopUsers: `SELECT user_id, count(*) AS n FROM redemptions
WHERE promotion_id = ?1 AND rolled_back_at IS NULL
GROUP BY user_id ORDER BY n DESC, user_id LIMIT ?2`,

	ClaimUncounted: qClaimUncounted,
	AddTotals:      qAddTotals,

	AddRefusals: `INSERT INTO refusals (promotion_id, reason, hour, n) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (promotion_id, reason, hour) DO UPDATE SET n = n + excluded.n`,

	RefusalsByReason: `SELECT reason, sum(n) FROM refusals WHERE promotion_id = ?
GROUP BY reason ORDER BY 2 DESC, 1`,
}

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
	var b strings.Builder
	b.Grow(len(head) + 6*n)
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?)")
	}
	return b.String()
}
