package sqlite

import "strings"

// All SQL of the SQLite store, in one place so that the dialects can be
// reviewed side by side (see ../postgres/queries.go). Parameters are ? or ?n.
// Times are bound as ISO 8601 UTC text (timeLayout).

const (
	// qReserve reserves ?2 sequence numbers from counter ?1, creating it at 0
	// if absent, and returns the first of them.
	qReserve = `INSERT INTO counters (name, next) VALUES (?1, ?2)
ON CONFLICT (name) DO UPDATE SET next = next + excluded.next
RETURNING next - ?2`

	promotionCols = `id, name, kind, code_count, format, vanity_code, max_usage_per_code, per_user_limit,
	starts_at, expires_at, counter_name, seq_start, created_at`

	qPromotionByKey = `SELECT ` + promotionCols + `, request_hash, active FROM promotions WHERE idempotency_key = ?`

	qInsertPromotion = `INSERT INTO promotions (name, kind, code_count, format, vanity_code,
	max_usage_per_code, per_user_limit, starts_at, expires_at, counter_name, seq_start,
	idempotency_key, request_hash, created_at, key_fingerprint)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING id`

	// qInsertBatches writes all batch rows of a promotion in one statement:
	// ?3-sized slices of [?2, ?2+?4), the last one smaller, ?5 of them.
	qInsertBatches = `WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < ?5)
INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT ?1, n, ?2 + n * ?3, min(?3, ?4 - n * ?3), ?6 FROM g`

	qInsertCode = `INSERT INTO codes (code, promotion_id) VALUES (?, ?)`

	qPromotion = `SELECT ` + promotionCols + ` FROM promotions WHERE id = ?`

	// qPromotionStatus adds what a status needs beyond promotionCols and the
	// progress: the switch, the deletion, the totals as of the last rollup
	// (no promotion_totals row: nothing counted yet).
	qPromotionStatus = `SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at,
	p.active, p.delete_requested_at, p.deleted_at,
	coalesce(t.redemptions, 0), coalesce(t.codes_redeemed, 0), coalesce(t.rolled_back, 0)
FROM promotions p LEFT JOIN promotion_totals t ON t.promotion_id = p.id WHERE p.id = ?`

	// qProgress: a batch counts as cancelled when its promotion is flagged
	// cancelled (see ../postgres/queries.go).
	qProgress = `SELECT count(*),
	coalesce(sum(b.done), 0),
	coalesce(sum(b.done = b.code_count), 0),
	coalesce(sum(b.state = 'retrying' AND b.done < b.code_count), 0),
	coalesce(sum(b.state = 'parked' AND b.done < b.code_count), 0),
	coalesce(sum((b.state = 'cancelled' OR p.cancelled_at IS NOT NULL) AND b.done < b.code_count), 0)
FROM batches b JOIN promotions p ON p.id = b.promotion_id WHERE b.promotion_id = ?`

	qPromotionExists = `SELECT EXISTS (SELECT 1 FROM promotions WHERE id = ?)`

	// qPromotionLive and qCancelBatch: the chunk commit gate (see
	// ../postgres/queries.go).
	qPromotionLive = `SELECT cancelled_at IS NULL AND delete_requested_at IS NULL FROM promotions WHERE id = ?`

	qCancelBatch = `UPDATE batches SET state = 'cancelled', updated_at = ?3
WHERE promotion_id = ?1 AND batch_no = ?2 AND done < code_count AND state <> 'cancelled'`

	qExportCodes = `SELECT code FROM codes WHERE promotion_id = ?`

	batchCols = `promotion_id, batch_no, seq_start, code_count, done, state, last_error`

	// "published = 0" literally: that is what the partial index says.
	qPendingBatches = `SELECT ` + batchCols + ` FROM batches WHERE published = 0
ORDER BY promotion_id, batch_no LIMIT ?`

	// qClaimPendingBatches leases up to ? of the oldest unpublished batches
	// to this publisher (one writer at a time: the write transaction is the
	// lock; the lease keeps another process on the same file off them).
	// The lease is ?1 seconds of SQLite's clock (dbNow), the same for every
	// process on the file whatever their own clocks say.
	qClaimPendingBatches = `UPDATE batches SET publish_lease_until = ` + dbNowPlus + `
WHERE (promotion_id, batch_no) IN (
	SELECT promotion_id, batch_no FROM batches
	WHERE published = 0 AND (publish_lease_until IS NULL OR publish_lease_until < ` + dbNow + `)
	ORDER BY promotion_id, batch_no LIMIT ?2)
RETURNING ` + batchCols

	// dbNow is SQLite's clock in timeLayout (strftime's %f has milliseconds;
	// the padding keeps the text order the time order); dbNowPlus is ?1
	// seconds (fractional, may be negative) later.
	dbNow     = `(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')`
	dbNowPlus = `(strftime('%Y-%m-%dT%H:%M:%f', 'now', printf('%+.6f seconds', ?1)) || '000Z')`

	qNow = `SELECT ` + dbNow

	qMarkPublished = `UPDATE batches SET published = 1, publish_lease_until = NULL, updated_at = ?
WHERE promotion_id = ? AND batch_no = ? AND published = 0`

	// qLoadBatch tells a missing promotion (no row) from a missing batch
	// (NULL batch columns) in one query.
	qLoadBatch = `SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at,
	b.batch_no, b.seq_start, b.code_count, b.done, b.state, b.last_error, p.key_fingerprint
FROM promotions p LEFT JOIN batches b ON b.promotion_id = p.id AND b.batch_no = ?2
WHERE p.id = ?1`

	// qAdvance is the compare-and-set at the heart of CommitChunk: it moves
	// done from ?4 to ?4+?3 or touches nothing. Write transactions are BEGIN
	// IMMEDIATE, so there is no concurrent writer to race with.
	qAdvance = `UPDATE batches SET done = done + ?3,
	state = CASE WHEN done + ?3 = code_count THEN 'done' ELSE state END,
	updated_at = ?5
WHERE promotion_id = ?1 AND batch_no = ?2 AND done = ?4 AND done + ?3 <= code_count AND state <> 'cancelled'
RETURNING done`

	qBatchProgress = `SELECT done, code_count FROM batches WHERE promotion_id = ? AND batch_no = ?`

	// qSetBatchState never touches a finished batch: done is final.
	qSetBatchState = `UPDATE batches SET state = ?3, last_error = ?4, updated_at = ?5
WHERE promotion_id = ?1 AND batch_no = ?2 AND done < code_count AND state <> 'cancelled'`

	qBatchExists = `SELECT EXISTS (SELECT 1 FROM batches WHERE promotion_id = ? AND batch_no = ?)`

	qIncompleteBatches = `SELECT ` + batchCols + ` FROM batches
WHERE promotion_id = ? AND done < code_count AND state <> 'cancelled' ORDER BY batch_no`

	qAllIncompleteBatches = `SELECT ` + batchCols + ` FROM batches
WHERE done < code_count AND state <> 'cancelled' ORDER BY promotion_id, batch_no`

	qGetCode = `SELECT c.code, c.promotion_id, c.used, p.max_usage_per_code
FROM codes c JOIN promotions p ON p.id = c.promotion_id WHERE c.code = ?`
)

// insertCodesRows is the number of rows per multi-row code insert: 2 bound
// parameters per row, well under SQLite's limit of 32766.
const insertCodesRows = 500

// qInsertCodes returns a multi-row insert of n (code, promotion_id) rows that
// skips codes already present; RowsAffected counts the rows inserted.
func qInsertCodes(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO codes (code, promotion_id) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?)")
	}
	b.WriteString(" ON CONFLICT (code) DO NOTHING")
	return b.String()
}

// qListPromotions is a page of promotions with their progress, newest first:
// ?1 the cursor (ids below it; 0 = from the newest), ?2 a name fragment
// (empty = any), ?3 a status (empty = any), ?4 the page size, ?5 the active
// filter (contract.ActiveFilter: 0 any, 1 active, 2 inactive). The status
// CASE is promo.PromotionStatus.Status in SQL, branch for branch: the
// deletion first, then the generation (a vanity promotion is complete).
const qListPromotions = `SELECT l.id, l.name, l.kind, l.code_count, l.format, l.vanity_code, l.max_usage_per_code,
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
ORDER BY l.id DESC LIMIT ?4`

// qOldestUnpublished is the creation time of the promotion of the oldest
// unpublished batch (ids grow with time), through the partial index.
const qOldestUnpublished = `SELECT created_at FROM promotions
WHERE id = (SELECT min(promotion_id) FROM batches WHERE published = 0)`

// Redemption analytics of one promotion (?1), from the audit trail. Times are
// ISO 8601 text, so an hour bucket is the first 13 characters and a day the
// first 10 (?2). The series keeps the newest buckets (?3).
const (
	qStatsTotals = `SELECT count(*) - count(rolled_back_at), count(rolled_back_at),
	count(DISTINCT CASE WHEN rolled_back_at IS NULL THEN code END)
FROM redemptions WHERE promotion_id = ?1`

	// qStatsSeries is the time series over [?3, ?4) in buckets named by the
	// first ?2 characters of the stored times (13: an hour, 10: a day; times
	// are UTC, fixed width): redemptions made (and how many of those were
	// rolled back since), rollbacks made, and a row for every bucket with
	// refusals (qStatsRefusalSeries counts them by reason). The window is
	// bounded, so is the answer.
	qStatsSeries = `SELECT b, sum(n), sum(rb), sum(rbk) FROM (
	SELECT substr(redeemed_at, 1, ?2) AS b, count(*) AS n, count(rolled_back_at) AS rb, 0 AS rbk
	FROM redemptions WHERE promotion_id = ?1 AND redeemed_at >= ?3 AND redeemed_at < ?4 GROUP BY 1
	UNION ALL
	SELECT substr(rolled_back_at, 1, ?2), 0, 0, count(*)
	FROM redemptions WHERE promotion_id = ?1 AND rolled_back_at >= ?3 AND rolled_back_at < ?4 GROUP BY 1
	UNION ALL
	SELECT substr(hour, 1, ?2), 0, 0, 0
	FROM refusals WHERE promotion_id = ?1 AND hour >= ?3 AND hour < ?4 GROUP BY 1
) GROUP BY b ORDER BY b`

	// qStatsRefusalSeries is the series' refusals by reason.
	qStatsRefusalSeries = `SELECT substr(hour, 1, ?2), reason, sum(n)
FROM refusals WHERE promotion_id = ?1 AND hour >= ?3 AND hour < ?4 GROUP BY 1, 2`

	qStatsTopUsers = `SELECT user_id, count(*) AS n FROM redemptions
WHERE promotion_id = ?1 AND rolled_back_at IS NULL
GROUP BY user_id ORDER BY n DESC, user_id LIMIT ?2`
)
