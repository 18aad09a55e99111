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

	redemptionCols = `id, promotion_id, code, user_id, coalesce(order_id, ''), metadata, redeemed_at, uses_left,
	rolled_back_at, coalesce(rollback_reason, ''), coalesce(idempotency_key, ''), coalesce(rollback_code_release, ''),
	coalesce(client_addr, ''), coalesce(user_agent, ''), order_amount, coalesce(order_currency, ''), discount,
	first_order, coalesce(segments, ''), coalesce(country, '')`

	reservationCols = `id, promotion_id, code, user_id, status, created_at, expires_at, settled_at,
	coalesce(redemption_id, ''), coalesce(order_id, '')`

	topUpCols = `topup_no, code_count, seq_start, first_batch_no, batch_count, created_at`
)

const (
	// sqlNow is SQLite's clock in TimeLayout (strftime's %f has
	// milliseconds; the padding keeps the text order the time order);
	// sqlNowPlus is ?2 seconds (fractional, may be negative) later.
	sqlNow     = `strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')`
	sqlNowPlus = `(strftime('%Y-%m-%dT%H:%M:%f', 'now', printf('%+.6f seconds', ?2)) || '000Z')`

	promotionCols = `id, name, kind, code_count, format, vanity_code, max_usage_per_code, per_user_limit,
	starts_at, expires_at, counter_name, seq_start, created_at, eligibility`

	// qReserve reserves ?2 sequence numbers from counter ?1, creating it at 0
	// if absent, and returns the first of them.
	qReserve = `INSERT INTO counters (name, next) VALUES (?1, ?2)
ON CONFLICT (name) DO UPDATE SET next = next + excluded.next
RETURNING next - ?2`

	qPromotionExists = `SELECT EXISTS (SELECT 1 FROM promotions WHERE id = ?)`

	batchCols = `promotion_id, batch_no, seq_start, code_count, done, state, last_error`

	qPromotionState = `SELECT delete_requested_at IS NOT NULL, cancelled_at IS NOT NULL FROM promotions WHERE id = ?`
)

// codeUse is UseCode (set: one use more) and LockCode (set: the same
// uses): every limit of the code and its promotion in one WHERE.
func codeUse(set string) string {
	return `UPDATE codes SET used = ` + set + `
FROM promotions p
WHERE codes.code = ?1 AND p.id = codes.promotion_id
  AND codes.used < p.max_usage_per_code
  AND codes.revoked_at IS NULL
  AND (codes.user_id IS NULL OR codes.user_id = ?3)
  AND p.active = 1
  AND (p.starts_at IS NULL OR p.starts_at <= ?2)
  AND (p.expires_at IS NULL OR p.expires_at > ?2)
RETURNING promotion_id, used,
  (SELECT max_usage_per_code FROM promotions WHERE id = codes.promotion_id),
  (SELECT per_user_limit FROM promotions WHERE id = codes.promotion_id),
  (SELECT coalesce(eligibility, '') FROM promotions WHERE id = codes.promotion_id)`
}

// insertBatches writes ?5 batch rows numbered from first: ?3-sized slices of
// [?2, ?2+?4), the last one smaller.
func insertBatches(first string) string {
	return `WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < ?5)
INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT ?1, ` + first + ` + n, ?2 + n * ?3, min(?3, ?4 - n * ?3), ?6 FROM g`
}

var statements = sqlstore.Statements{
	Reserve: qReserve,

	PromotionByKey: `SELECT ` + promotionCols + `, request_hash, active FROM promotions WHERE idempotency_key = ?`,

	InsertPromotion: `INSERT INTO promotions (name, kind, code_count, format, vanity_code,
	max_usage_per_code, per_user_limit, starts_at, expires_at, counter_name, seq_start,
	idempotency_key, request_hash, created_at, key_fingerprint, eligibility)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING id`,

	InsertBatches: insertBatches("0"),

	InsertCode: `INSERT INTO codes (code, promotion_id) VALUES (?, ?)`,

	// PromotionStatus: the totals as of the last rollup (no
	// promotion_totals row: nothing counted yet).
	PromotionStatus: `SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at, p.eligibility,
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
	// for ?2 seconds of SQLite's clock (the same for every process on the
	// file, whatever their own clocks say) to this publisher (one writer at
	// a time: the statement holds the write lock; the lease keeps another
	// process on the same file off them).
	ClaimPendingBatches: `UPDATE batches SET publish_lease_until = ` + sqlNowPlus + `
WHERE (promotion_id, batch_no) IN (
	SELECT promotion_id, batch_no FROM batches
	WHERE published = 0 AND (publish_lease_until IS NULL OR publish_lease_until < ` + sqlNow + `)
	ORDER BY promotion_id, batch_no LIMIT ?1)
RETURNING ` + batchCols,

	Now: `SELECT ` + sqlNow,

	// LoadBatch tells a missing promotion (no row) from a missing batch
	// (NULL batch columns) in one query.
	LoadBatch: `SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at, p.eligibility,
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
	// size, ?5 the active filter (0 any, 1 active, 2
	// inactive). The status CASE is promo.PromotionStatus.Status in SQL,
	// branch for branch: the deletion first, then the generation (a vanity
	// promotion is complete).
	ListPromotions: `SELECT l.id, l.name, l.kind, l.code_count, l.format, l.vanity_code, l.max_usage_per_code,
	l.per_user_limit, l.starts_at, l.expires_at, l.counter_name, l.seq_start, l.created_at, l.eligibility,
	l.total, l.generated, l.completed, l.retrying, l.parked, l.cancelled,
	l.active, l.delete_requested_at, l.deleted_at,
	coalesce(t.redemptions, 0), coalesce(t.codes_redeemed, 0), coalesce(t.rolled_back, 0)
FROM (
	SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code, p.per_user_limit,
		p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at, p.eligibility,
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
	// Backlog: batches with codes still to write, except those of
	// promotions whose deletion was requested.
	Backlog: `SELECT
	coalesce(sum(CASE WHEN b.state NOT IN ('parked', 'cancelled') THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN b.state = 'parked' THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN b.state NOT IN ('parked', 'cancelled') THEN b.code_count - b.done ELSE 0 END), 0)
FROM batches b JOIN promotions p ON p.id = b.promotion_id
WHERE b.done < b.code_count AND p.delete_requested_at IS NULL`,

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

	StatsOrders: `SELECT order_currency, count(*), coalesce(sum(order_amount), 0), coalesce(sum(discount), 0)
FROM redemptions WHERE promotion_id = ? AND rolled_back_at IS NULL AND order_currency IS NOT NULL
GROUP BY order_currency ORDER BY order_currency`,

	StatsSegments: `SELECT s.segment, coalesce(r.order_currency, ''), count(*),
	coalesce(sum(r.order_amount), 0), coalesce(sum(r.discount), 0)
FROM redemption_segments s JOIN redemptions r ON r.id = s.redemption_id
WHERE s.promotion_id = ? AND r.rolled_back_at IS NULL
GROUP BY s.segment, r.order_currency ORDER BY s.segment, 2`,

	StatsTopUsers: `SELECT user_id, count(*) AS n FROM redemptions
WHERE promotion_id = ?1 AND rolled_back_at IS NULL
GROUP BY user_id ORDER BY n DESC, user_id LIMIT ?2`,

	AddRefusals: `INSERT INTO refusals (promotion_id, reason, hour, n) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (promotion_id, reason, hour) DO UPDATE SET n = n + excluded.n`,

	RefusalsByReason: `SELECT reason, sum(n) FROM refusals WHERE promotion_id = ?
GROUP BY reason ORDER BY 2 DESC, 1`,

	// Redemption, rollback, the audit trail and the event outbox.
	//
	// Why SQLite cannot over-redeem: every write transaction is BEGIN IMMEDIATE
	// on the store's single write connection, and SQLite admits one writer per
	// database file at a time (other processes wait on busy_timeout). The
	// conditional statements below therefore always see the latest committed
	// counts, and "used < max" is decided inside the statement, not in Go.

	ClaimKey: `INSERT INTO idempotency_keys (idem_key, request_hash, created_at) VALUES (?1, ?2, ?3)
ON CONFLICT (idem_key) DO NOTHING`,

	StoredOutcome: `SELECT request_hash, coalesce(refused, ''), coalesce(redemption_id, '')
FROM idempotency_keys WHERE idem_key = ?`,

	SaveOutcome: `UPDATE idempotency_keys SET refused = nullif(?2, ''), redemption_id = nullif(?3, '')
WHERE idem_key = ?1`,

	UseCode: codeUse("used + 1"),

	// AddCodeUses takes a combined redemption's n uses at once, within the
	// maximum.
	AddCodeUses: `UPDATE codes SET used = used + ?2
WHERE code = ?1 AND used + ?2 <= (SELECT max_usage_per_code FROM promotions WHERE id = codes.promotion_id)`,

	UnuseCode: `UPDATE codes SET used = used - 1 WHERE code = ? AND used > 0`,

	UseAllowance: `INSERT INTO user_uses (promotion_id, user_id, used) VALUES (?1, ?2, 1)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = used + 1 WHERE used < ?3
RETURNING used`,

	InsertRedemption: `INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at,
	uses_left, idempotency_key, client_addr, user_agent, order_amount, order_currency, discount, first_order, segments,
	country) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,

	InsertRedemptionSegment: `INSERT INTO redemption_segments (redemption_id, promotion_id, segment) VALUES (?, ?, ?)
ON CONFLICT DO NOTHING`,

	InsertEvent: `INSERT INTO events (stream, event_key, payload, created_at) VALUES (?, ?, ?, ?)`,

	CodeState: `SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at, p.eligibility,
	c.code, c.used, coalesce(u.used, 0), p.active, c.revoked_at IS NOT NULL, p.delete_requested_at IS NOT NULL,
	(SELECT count(*) FROM reservations r WHERE r.code = c.code AND r.promotion_id = c.promotion_id AND r.status = 'held' AND r.expires_at > ?3),
	(SELECT count(*) FROM reservations r WHERE r.promotion_id = c.promotion_id AND r.user_id = ?2
		AND r.status = 'held' AND r.expires_at > ?3),
	coalesce(c.user_id, '')
FROM codes c JOIN promotions p ON p.id = c.promotion_id
LEFT JOIN user_uses u ON u.promotion_id = c.promotion_id AND u.user_id = ?2
WHERE c.code = ?1`,

	MarkRolledBack: `UPDATE redemptions SET rolled_back_at = ?2, rollback_reason = ?3
WHERE id = ?1 AND rolled_back_at IS NULL
RETURNING ` + redemptionCols,

	Redemption: `SELECT ` + redemptionCols + ` FROM redemptions WHERE id = ?`,

	// ReleaseCode: the code row of the redemption's promotion only (see
	// ../postgres/queries.go).
	ReleaseCode: `UPDATE codes SET used = used - 1 WHERE code = ?1 AND promotion_id = ?2 AND used > 0 RETURNING used`,

	RecordCodeRelease: `UPDATE redemptions SET rollback_code_release = ?2 WHERE id = ?1`,

	ReleaseAllowance: `UPDATE user_uses SET used = used - 1 WHERE promotion_id = ? AND user_id = ? AND used > 0`,

	// Audit pages, newest first (ids are UUIDv7, time-ordered), one per
	// selection: ?1 the promotion (or the user, across
	// promotions), ?2 the limit (-1: none), ?3 the cursor ('' for the first
	// page), ?4 the range's lowest id ('' for none: every id is >= ''), ?5
	// the user or the code.
	Redemptions: `SELECT ` + redemptionCols + ` FROM redemptions
WHERE promotion_id = ?1 AND (?3 = '' OR id < ?3) AND id >= ?4 ORDER BY id DESC LIMIT ?2`,

	RedemptionsByUser: `SELECT ` + redemptionCols + ` FROM redemptions
WHERE promotion_id = ?1 AND user_id = ?5 AND (?3 = '' OR id < ?3) AND id >= ?4 ORDER BY id DESC LIMIT ?2`,

	RedemptionsByCode: `SELECT ` + redemptionCols + ` FROM redemptions
WHERE code = ?5 AND promotion_id = ?1 AND (?3 = '' OR id < ?3) AND id >= ?4 ORDER BY id DESC LIMIT ?2`,

	UserRedemptions: `SELECT ` + redemptionCols + ` FROM redemptions
WHERE user_id = ?1 AND (?3 = '' OR id < ?3) AND id >= ?4 ORDER BY id DESC LIMIT ?2`,

	// ClaimEvents leases up to ?1 events for ?2 seconds of SQLite's clock.
	// One writer at a time: the lease only matters to publishers in other
	// processes sharing the file.
	ClaimEvents: `UPDATE events SET lease_until = ` + sqlNowPlus + `
WHERE seq IN (
	SELECT seq FROM events
	WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < ` + sqlNow + `)
	ORDER BY seq LIMIT ?1)
RETURNING seq, stream, event_key, payload`,

	// MarkEventPublished stamps SQLite's clock: the retention that prunes
	// published events counts from it.
	MarkEventPublished: `UPDATE events SET published_at = ` + sqlNow + ` WHERE seq = ?1 AND published_at IS NULL`,

	CodeSpaces: `SELECT id, kind, coalesce(format, ''), coalesce(vanity_code, '') FROM promotions
WHERE id > ? ORDER BY id LIMIT ?`,

	// Personal codes (see ../postgres/queries.go). IssueCodes: one writer at
	// a time, so the codes it picks are taken by no one else.
	IssuablePromotion: `SELECT kind, delete_requested_at IS NOT NULL FROM promotions WHERE id = ?`,

	IssueCodes: `UPDATE codes SET user_id = ?2, issuance_id = ?3, issued_at = ?4
WHERE rowid IN (
	SELECT rowid FROM codes WHERE promotion_id = ?1 AND user_id IS NULL AND used = 0 AND revoked_at IS NULL LIMIT ?5)
RETURNING code`,

	IssuedCodes: `SELECT code FROM codes WHERE user_id = ? AND issuance_id = ? ORDER BY code`,

	SaveIssuanceOutcome: `UPDATE idempotency_keys SET issuance_id = ?2 WHERE idem_key = ?1`,

	StoredIssuanceOutcome: `SELECT request_hash, coalesce(issuance_id, '') FROM idempotency_keys WHERE idem_key = ?`,

	UserCodes: `SELECT c.code, c.promotion_id, p.name, c.issued_at, c.used, p.max_usage_per_code,
	c.revoked_at IS NOT NULL, p.active, p.delete_requested_at IS NOT NULL, p.starts_at, p.expires_at
FROM codes c JOIN promotions p ON p.id = c.promotion_id
WHERE c.user_id = ? ORDER BY c.issued_at DESC, c.code LIMIT ?`,

	SetActive: `UPDATE promotions SET active = ?2 WHERE id = ?1`,

	// PruneEvents: published before ?1 and counted by the totals rollup
	// (an uncounted event is still owed to the totals).
	PruneEvents: `DELETE FROM events WHERE seq IN (
	SELECT seq FROM events WHERE published_at < ?1 AND counted_at IS NOT NULL ORDER BY seq LIMIT ?2)`,

	// ClaimUncounted marks up to ?1 of the oldest uncounted events counted
	// at ?2 and returns them (the partial index events_uncounted serves the
	// scan). The store's one write connection makes the rollup transaction
	// the only writer: no other roller can take the same events.
	ClaimUncounted: `UPDATE events SET counted_at = ?2
WHERE seq IN (SELECT seq FROM events WHERE counted_at IS NULL ORDER BY seq LIMIT ?1)
RETURNING seq, stream, payload, created_at`,

	AddTotals: `INSERT INTO promotion_totals (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (promotion_id) DO UPDATE SET redemptions = redemptions + excluded.redemptions,
	codes_redeemed = codes_redeemed + excluded.codes_redeemed,
	rolled_back = rolled_back + excluded.rolled_back, updated_at = excluded.updated_at`,

	// Reservations.
	//
	// Why SQLite cannot over-allocate with reservations: every write transaction
	// is BEGIN IMMEDIATE on the single write connection, so the lock-then-count
	// sequence of the algorithm runs with no other writer in between; the "row
	// locks" of LockCode and LockAllowance are the database's one write lock.
	// Times are RFC 3339 text in UTC with a fixed width (sqlstore.FormatTime),
	// so text comparison is time order.

	LockCode: codeUse("used"),

	CodeLoad: `SELECT c.used + (SELECT count(*) FROM reservations r
	WHERE r.code = c.code AND r.promotion_id = c.promotion_id AND r.status = 'held' AND r.expires_at > ?2 AND r.id <> ?3)
FROM codes c WHERE c.code = ?1`,

	LockAllowance: `INSERT INTO user_uses (promotion_id, user_id, used) VALUES (?1, ?2, 0)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = used WHERE used < ?3
RETURNING used`,

	AllowanceLoad: `SELECT coalesce((SELECT used FROM user_uses WHERE promotion_id = ?1 AND user_id = ?2), 0)
	+ (SELECT count(*) FROM reservations r WHERE r.promotion_id = ?1 AND r.user_id = ?2
		AND r.status = 'held' AND r.expires_at > ?3 AND r.id <> ?4)`,

	InsertReservation: `INSERT INTO reservations (id, promotion_id, code, user_id, status, created_at, expires_at, shopper)
VALUES (?1, ?2, ?3, ?4, 'held', ?5, ?6, ?7)`,

	ReservationShopper: `SELECT shopper FROM reservations WHERE id = ?`,

	Reservation: `SELECT ` + reservationCols + ` FROM reservations WHERE id = ?`,

	MarkConfirmed: `UPDATE reservations SET status = 'confirmed', settled_at = ?4, redemption_id = ?2,
	order_id = nullif(?3, '')
WHERE id = ?1 AND status = 'held'`,

	MarkReleased: `UPDATE reservations SET status = 'released', settled_at = ?2
WHERE id = ?1 AND status = 'held'
RETURNING ` + reservationCols,

	SaveReservationOutcome: `UPDATE idempotency_keys SET refused = nullif(?2, ''), reservation_id = nullif(?3, '')
WHERE idem_key = ?1`,

	StoredReservationOutcome: `SELECT request_hash, coalesce(refused, ''), coalesce(reservation_id, '')
FROM idempotency_keys WHERE idem_key = ?`,

	SweepReservations: `DELETE FROM reservations WHERE id IN (
	SELECT id FROM reservations WHERE expires_at < ?1 LIMIT ?2)`,

	// Admin changes and their audit log (../postgres/queries.go says why they
	// are safe; here the one writer serialises them).

	RevokeCode: `UPDATE codes SET revoked_at = ?2, revoke_reason = nullif(?3, '')
WHERE code = ?1 AND revoked_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM promotions p WHERE p.id = codes.promotion_id AND p.delete_requested_at IS NOT NULL)
RETURNING promotion_id`,

	Revocation: `SELECT promotion_id, revoked_at, coalesce(revoke_reason, '') FROM codes WHERE code = ?`,

	InsertAudit: `INSERT INTO audit_log (id, at, actor, action, promotion_id, code, detail)
VALUES (?1, ?2, ?3, ?4, ?5, nullif(?6, ''), nullif(?7, ''))`,

	AuditLog: `SELECT id, at, actor, action, promotion_id, coalesce(code, ''), coalesce(detail, '')
FROM audit_log WHERE promotion_id = ?1 AND (?3 = '' OR id < ?3) ORDER BY id DESC LIMIT ?2`,

	UpdatePromotion: `UPDATE promotions SET
	name = coalesce(?2, name),
	starts_at = CASE WHEN ?3 THEN ?4 ELSE starts_at END,
	expires_at = CASE WHEN ?5 THEN ?6 ELSE expires_at END,
	active = coalesce(?7, active),
	eligibility = CASE WHEN ?8 THEN ?9 ELSE eligibility END
WHERE id = ?1 AND delete_requested_at IS NULL AND (
	(CASE WHEN ?3 THEN ?4 ELSE starts_at END) IS NULL
	OR (CASE WHEN ?5 THEN ?6 ELSE expires_at END) IS NULL
	OR (CASE WHEN ?3 THEN ?4 ELSE starts_at END) < (CASE WHEN ?5 THEN ?6 ELSE expires_at END))
RETURNING id, name, starts_at, expires_at, active, coalesce(eligibility, '')`,

	PromotionState: qPromotionState,

	// LockPromotion: the transaction already holds the one write lock.
	LockPromotion: qPromotionState,

	// FlagCancelled: one writer at a time, so no chunk is in flight while
	// it runs; chunks read the flag before they commit, as on PostgreSQL.
	FlagCancelled: `UPDATE promotions SET cancelled_at = ?2
WHERE id = ?1 AND kind = 'generated' AND cancelled_at IS NULL AND delete_requested_at IS NULL
	AND EXISTS (SELECT 1 FROM batches WHERE promotion_id = ?1 AND done < code_count)`,

	CancelBatches: `UPDATE batches SET state = 'cancelled', updated_at = ?2
WHERE promotion_id = ?1 AND done < code_count AND state <> 'cancelled'`,

	GrowPromotion: `UPDATE promotions SET code_count = code_count + ?2
WHERE id = ?1 AND kind = 'generated'
RETURNING counter_name, code_count`,

	NextNumbers: `SELECT (SELECT coalesce(max(batch_no), -1) + 1 FROM batches WHERE promotion_id = ?1),
	(SELECT coalesce(max(topup_no), 0) + 1 FROM topups WHERE promotion_id = ?1)`,

	InsertTopUpBatches: insertBatches("?7"),

	InsertTopUp: `INSERT INTO topups (promotion_id, topup_no, code_count, seq_start, first_batch_no, batch_count, created_at,
	idempotency_key, request_hash)
VALUES (?, ?, ?, ?, ?, ?, ?, nullif(?, ''), nullif(?, ''))`,

	TopUps: `SELECT ` + topUpCols + ` FROM topups WHERE promotion_id = ? ORDER BY topup_no`,

	StoredTopUp: `SELECT ` + topUpCols + `, request_hash FROM topups WHERE promotion_id = ? AND idempotency_key = ?`,

	ExpiredPromotions: `SELECT id FROM promotions WHERE expires_at IS NOT NULL AND expires_at < ? ORDER BY id`,

	PurgeCount: `SELECT (SELECT count(*) FROM codes WHERE promotion_id = ?1),
	(SELECT count(*) FROM redemptions WHERE promotion_id = ?1)`,

	RequestDeletion: `UPDATE promotions SET delete_requested_at = ?2, active = 0
WHERE id = ?1 AND delete_requested_at IS NULL`,

	FinishDeletion: `UPDATE promotions SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM codes WHERE promotion_id = ?1)`,

	MarkPurge: `UPDATE promotions SET delete_requested_at = COALESCE(delete_requested_at, ?3), active = 0
WHERE id = ?1 AND expires_at IS NOT NULL AND expires_at < ?2`,

	DeletionsPending: `SELECT id FROM promotions WHERE delete_requested_at IS NOT NULL AND deleted_at IS NULL ORDER BY id`,

	Deletion: `SELECT delete_requested_at, deleted_at FROM promotions WHERE id = ?`,

	// CodeReservations: ?1 the code, ?2 its promotion, ?3 now, ?4 the limit.
	CodeReservations: `SELECT ` + reservationCols + ` FROM reservations
WHERE code = ?1 AND promotion_id = ?2 AND status = 'held' AND expires_at > ?3 ORDER BY expires_at LIMIT ?4`,

	// PurgeRedemptionKeys deletes the idempotency records of the redemptions
	// that Purge["redemptions"] deletes next in the same transaction (the same
	// ORDER BY id LIMIT: one writer, so the same rows).
	PurgeRedemptionKeys: `DELETE FROM idempotency_keys WHERE idem_key IN (
	SELECT idempotency_key FROM redemptions WHERE id IN (
		SELECT id FROM redemptions WHERE promotion_id = ?1 ORDER BY id LIMIT ?2))`,

	// Purge deletes up to ?2 rows of one promotion from a table (see
	// ../postgres/queries.go); the redemptions' answer a row each.
	Purge: map[string]string{
		"codes":        `DELETE FROM codes WHERE code IN (SELECT code FROM codes WHERE promotion_id = ?1 LIMIT ?2)`,
		"user_uses":    `DELETE FROM user_uses WHERE promotion_id = ?1 AND user_id IN (SELECT user_id FROM user_uses WHERE promotion_id = ?1 LIMIT ?2)`,
		"reservations": `DELETE FROM reservations WHERE id IN (SELECT id FROM reservations WHERE promotion_id = ?1 LIMIT ?2)`,
		"redemptions": `DELETE FROM redemptions WHERE id IN (SELECT id FROM redemptions WHERE promotion_id = ?1 ORDER BY id LIMIT ?2)
RETURNING 1`,
	},
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
