package sqlstore

import (
	"maps"
	"reflect"
	"regexp"
	"strings"
)

// The statement text the dialects share, in PostgreSQL's terms, rebound to
// each by Compose. The row locks spoken of are SQLite's one write lock there.

// The column lists the scanners read (scan.go), in their order.
const (
	PromotionCols = `id, name, kind, code_count, format, vanity_code, max_usage_per_code, per_user_limit,
	starts_at, expires_at, counter_name, seq_start, created_at, eligibility`

	PromotionColsP = `p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at, p.eligibility`

	// StatusCols: the switch, the deletion, the totals as of the last
	// rollup (t LEFT JOINed: no row, no redemption counted yet).
	StatusCols = `p.active, p.delete_requested_at, p.deleted_at,
	COALESCE(t.redemptions, 0), COALESCE(t.codes_redeemed, 0), COALESCE(t.rolled_back, 0)`

	BatchCols = `promotion_id, batch_no, seq_start, code_count, done, state, last_error`

	RedemptionCols = `id, promotion_id, code, user_id, COALESCE(order_id, ''), metadata, redeemed_at, uses_left,
	rolled_back_at, COALESCE(rollback_reason, ''), COALESCE(idempotency_key, ''), COALESCE(rollback_code_release, ''),
	COALESCE(client_addr, ''), COALESCE(user_agent, ''), order_amount, COALESCE(order_currency, ''), discount,
	first_order, COALESCE(segments, ''), COALESCE(country, '')`

	ReservationCols = `id, promotion_id, code, user_id, status, created_at, expires_at, settled_at,
	COALESCE(redemption_id, ''), COALESCE(order_id, '')`

	TopUpCols = `topup_no, code_count, seq_start, first_batch_no, batch_count, created_at`

	// ProgressCols: over batches b of p; a batch of a promotion flagged
	// cancelled counts as cancelled, also while a chunk in flight holds it.
	ProgressCols = `count(b.batch_no) AS total, CAST(COALESCE(sum(b.done), 0) AS bigint) AS generated,
	count(CASE WHEN b.done = b.code_count THEN 1 END) AS completed,
	count(CASE WHEN b.state = 'retrying' AND b.done < b.code_count THEN 1 END) AS retrying,
	count(CASE WHEN b.state = 'parked' AND b.done < b.code_count THEN 1 END) AS parked,
	count(CASE WHEN (b.state = 'cancelled' OR p.cancelled_at IS NOT NULL) AND b.done < b.code_count THEN 1 END) AS cancelled`
)

// InsertRedemption is shared with PostgreSQL's RedemptionWithEvent.
const InsertRedemption = `INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at,
	uses_left, idempotency_key, client_addr, user_agent, order_amount, order_currency, discount, first_order, segments,
	country) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`

// Statements is a dialect's statement text. A field with shared text
// (portable, below) is documented by it: its $n are the arguments in
// order, its select list or RETURNING the columns (promotionCols, batchCols,
// ... stand for PromotionCols, BatchCols, ...), and a dialect's own text
// keeps both. The fields without shared text are documented here. Times go
// through Dialect.Time, batch numbers are int32, ids, codes, streams and
// hashes go through Dialect.VarChar, an optional text "" is NULL. The core
// reads the affected row count of what it runs with Exec (no rows returned),
// and a RETURNING's row or its absence.
type Statements struct {
	Reserve, PromotionByKey, InsertPromotion string
	// InsertBatches (promotion id, seq_start, batch size, code_count, batch
	// count, created_at) writes every batch row; InsertTopUpBatches takes
	// the first batch number too.
	InsertBatches, InsertTopUpBatches string

	InsertCode, PromotionStatus, Progress, PromotionExists, BatchExists, ExportCodes string

	PendingBatches, ClaimPendingBatches, LoadBatch, Advance, BatchProgress, PromotionLive string

	CancelBatch, SetBatchState, IncompleteBatches, AllIncompleteBatches, GetCode string
	// ListPromotions (before id, name fragment, status, limit, active filter):
	// promotionCols, the Progress columns, then PromotionStatus's tail.
	ListPromotions string

	Now, Backlog, OldestUnpublished, CodeSpaces, SetActive, StatsTotals, StatsTopUsers string
	// StatsSeries (id, "hour" or "day", from, to): bucket, redemptions,
	// rolled back since, rollbacks, oldest first, a row per bucket of [from,
	// to) with activity or refusals; StatsRefusalSeries (the same): bucket,
	// reason, count.
	StatsSeries, StatsRefusalSeries string

	StatsOrders, StatsSegments, ClaimUncounted string
	// AddTotals (promotion id, redemptions, codes redeemed, rolled back,
	// now), once per promotion (or once with arrays: Dialect.Arrays).
	AddTotals string

	AddRefusals, RefusalsByReason string
	// ClaimKey inserts an idempotency record: 0 rows, or a unique violation,
	// if the key exists. A redemption claims with its own id, so SaveOutcome
	// runs only on a refusal (which clears it).
	ClaimKey string

	StoredOutcome, StoredReservationOutcome, SaveOutcome, SaveReservationOutcome string
	// UseCode (code, now, user) adds a use to a code not revoked, not bound
	// to another user, with a use left, of an active promotion in its
	// window; LockCode locks the row on the same conditions, adding none
	// (row): promotion_id, used, max_usage_per_code, per_user_limit,
	// eligibility ('').
	UseCode, LockCode string

	UnuseCode string
	// AddCodeUses (code, n) adds n uses within the maximum (-> n).
	AddCodeUses string
	// Without an upsert, the Insert statements (promotion id, user) insert an
	// absent allowance row (-> n) after the update matched none; a unique
	// violation sends the core back to the update.
	UseAllowance, LockAllowance, UseAllowanceInsert, LockAllowanceInsert string

	CodeLoad, AllowanceLoad string
	// UseCodeLoad (code, now, user) and UseAllowanceLoad (promotion id,
	// user, limit, now), if set, are UseCode and UseAllowance returning the
	// load too (a last column). Only where writes are serialised (SQLite):
	// under READ COMMITTED the subquery would miss holds (see take).
	UseCodeLoad, UseAllowanceLoad string
	// RedemptionWithEvent, if set, is InsertRedemption and InsertEvent in
	// one statement (InsertRedemption's arguments, then stream, key,
	// payload).
	InsertRedemption, InsertEvent, RedemptionWithEvent, InsertRedemptionSegment string
	// RedeemOnce, if set, is a whole redemption in one statement in
	// autocommit: the core's steps in its lock order (docs/store.md, "One
	// round trip per redemption"). Arguments: id, code, user, order id,
	// metadata, redeemed_at, key (''), request hash, stream, the event's
	// head and body (EventParts), client address, user agent. A promotion
	// with rules aborts it (Dialect.StatementPath). Row: outcome
	// ("redeemed", "replay" or the refusal), promotion id (0: none), uses
	// left.
	RedeemOnce string
	// RedeemBatchOnce, if set (with Arrays), is RedeemBatch in one
	// statement: code, now, then RedeemGroupOnce's arrays but the codes.
	// Rows: index (1-based), then RedeemOnce's row. A bound code or rules
	// abort it (Dialect.StatementPath): the core redeems one by one.
	RedeemBatchOnce string
	// RedeemGroupOnce, if set (with Arrays), is RedeemOnce for n
	// redemptions in array order in one transaction (NewRedeemGroupOnce):
	// an array per RedeemOnce argument, the stream as one. Rows as
	// RedeemBatchOnce's. Any error aborts it whole, having written nothing.
	RedeemGroupOnce string
	// The reservation's, confirmation's and rollback's forms of RedeemOnce:
	// each, if set, runs the core's steps in its lock order in autocommit
	// (see once) and answers what the core would. ReserveOnce (reservation
	// id, code, user, now, expires at, key (''), request hash). Row: outcome
	// ("reserved", "replay" or the refusal), promotion id (0: none). Rules
	// abort it (Dialect.StatementPath).
	ReserveOnce string
	// ConfirmOnce (reservation id, redemption id, order id, metadata, now,
	// stream, ConfirmEventParts, client address, user agent). Row: outcome
	// ("confirmed", "settled", "not_found" or the refusal), promotion id,
	// code, user, uses left. Rules, or a reservation that kept its shopper,
	// abort it: the core checks the rules in force.
	ConfirmOnce string
	// RollbackOnce (redemption id, now, reason, stream, RollbackEventParts,
	// the event row's time). Row: outcome ("rolled_back", "replayed",
	// "not_found"), then the redemption's redemptionCols.
	RollbackOnce string

	CodeState, MarkRolledBack, Redemption, ReleaseCode, RecordCodeRelease, ReleaseAllowance string
	// The audit trail: a limit of Dialect.AllRows reads all.
	Redemptions, RedemptionsByUser, RedemptionsByCode, UserRedemptions string

	ClaimEvents, MarkEventPublished, PruneEvents string

	// Reservations.
	InsertReservation, Reservation, ReservationShopper, MarkConfirmed, MarkReleased string
	SweepReservations, SweepIdempotencyKeys, CodeReservations                       string

	// The lifecycle.
	RevokeCode, Revocation, InsertAudit, AuditLog, UpdatePromotion, PromotionState, LockPromotion string
	// CancelBatches (id, now) cancels the unfinished batches no transaction
	// holds (-> n).
	FlagCancelled, CancelBatches string

	GrowPromotion, NextNumbers, InsertTopUp, TopUps, StoredTopUp                                          string
	ExpiredPromotions, DeletionsPending, PurgeCount, RequestDeletion, FinishDeletion, Deletion, MarkPurge string
	// Purge (promotion id, limit) by table (-> n; "redemptions": a row per
	// redemption deleted, its idempotency record with it, or first by
	// PurgeRedemptionKeys, if set, in the same transaction).
	Purge               map[string]string
	PurgeRedemptionKeys string

	// Personal codes. IssueCodes (promotion id, user, issuance id, now, n)
	// binds up to n unassigned codes (unused, not revoked) a concurrent
	// issuance does not hold: code.
	IssuablePromotion, IssueCodes, IssuedCodes string
	// IssueCodesFrom (IssueCodes', then pages from, to), if set, reads only
	// the heap pages [from, to): code, page. IssueCursor (promotion id): the
	// page the last issuance began at (a hint); SetIssueCursor (promotion
	// id, page) records it waiting for no lock.
	IssueCodesFrom, IssueCursor, SetIssueCursor string
	SaveIssuanceOutcome, StoredIssuanceOutcome  string
	UserCodes                                   string
}

var portable = Statements{
	AddRefusals: `INSERT INTO refusals AS r (promotion_id, reason, hour, n) VALUES ($1, $2, $3, $4)
ON CONFLICT (promotion_id, reason, hour) DO UPDATE SET n = r.n + EXCLUDED.n`,

	UseAllowance: `INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES ($1, $2, 1)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used + 1 WHERE u.used < $3
RETURNING used`,

	LockAllowance: `INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES ($1, $2, 0)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used WHERE u.used < $3
RETURNING used`,

	// Reserve's row lock is held to the end of the transaction, which
	// serialises reservations per counter.
	Reserve: `INSERT INTO counters (name, next) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET next = counters.next + EXCLUDED.next
RETURNING next - $2`,

	Progress: `SELECT ` + ProgressCols + `
FROM batches b JOIN promotions p ON p.id = b.promotion_id WHERE b.promotion_id = $1`,

	Backlog: `SELECT count(CASE WHEN b.state NOT IN ('parked', 'cancelled') THEN 1 END),
	count(CASE WHEN b.state = 'parked' THEN 1 END),
	CAST(COALESCE(sum(CASE WHEN b.state NOT IN ('parked', 'cancelled') THEN b.code_count - b.done END), 0) AS bigint)
FROM batches b JOIN promotions p ON p.id = b.promotion_id
WHERE b.done < b.code_count AND p.delete_requested_at IS NULL`,

	StatsTotals: `SELECT count(*) - count(rolled_back_at), count(rolled_back_at),
	count(DISTINCT CASE WHEN rolled_back_at IS NULL THEN code END)
FROM redemptions WHERE promotion_id = $1`,

	StatsOrders: `SELECT order_currency, count(*), CAST(COALESCE(sum(order_amount), 0) AS bigint), CAST(COALESCE(sum(discount), 0) AS bigint)
FROM redemptions WHERE promotion_id = $1 AND rolled_back_at IS NULL AND order_currency IS NOT NULL
GROUP BY order_currency ORDER BY order_currency`,

	StatsSegments: `SELECT s.segment, COALESCE(r.order_currency, ''), count(*),
	CAST(COALESCE(sum(r.order_amount), 0) AS bigint), CAST(COALESCE(sum(r.discount), 0) AS bigint)
FROM redemption_segments s JOIN redemptions r ON r.id = s.redemption_id
WHERE s.promotion_id = $1 AND r.rolled_back_at IS NULL
GROUP BY s.segment, r.order_currency ORDER BY s.segment, 2`,

	// Advance is CommitChunk's compare-and-set: a concurrent committer of the
	// chunk waits for the row lock, then re-checks done = $4 on the
	// committed row and matches nothing.
	Advance: `UPDATE batches SET done = done + $3,
	state = CASE WHEN done + $3 = code_count THEN 'done' ELSE state END,
	updated_at = now()
WHERE promotion_id = $1 AND batch_no = $2 AND done = $4 AND done + $3 <= code_count AND state <> 'cancelled'
RETURNING done`,

	CancelBatch: `UPDATE batches SET state = 'cancelled', updated_at = now()
WHERE promotion_id = $1 AND batch_no = $2 AND done < code_count AND state <> 'cancelled'`,

	SetBatchState: `UPDATE batches SET state = $3, last_error = $4, updated_at = now()
WHERE promotion_id = $1 AND batch_no = $2 AND done < code_count AND state <> 'cancelled'`,

	// ClaimPendingBatches and ClaimEvents: SKIP LOCKED passes over rows
	// another replica is claiming, the lease over rows it is publishing.
	ClaimPendingBatches: `UPDATE batches SET publish_lease_until = ` + LeaseEnd + `
WHERE (promotion_id, batch_no) IN (
	SELECT promotion_id, batch_no FROM batches
	WHERE published = 0 AND (publish_lease_until IS NULL OR publish_lease_until < now())
	ORDER BY promotion_id, batch_no LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING ` + BatchCols,

	ClaimEvents: `UPDATE events SET lease_until = ` + LeaseEnd + `
WHERE seq IN (
	SELECT seq FROM events
	WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < now())
	ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING seq, stream, event_key, payload`,

	// ClaimUncounted: likewise for rollers (re-checked under the lock).
	ClaimUncounted: `UPDATE events SET counted_at = $2
WHERE seq IN (
	SELECT seq FROM events WHERE counted_at IS NULL
	ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING seq, stream, payload, created_at`,

	MarkEventPublished: `UPDATE events SET published_at = now() WHERE seq = $1 AND published_at IS NULL`,

	Now: `SELECT now()`,

	// PromotionByKey: "IS NOT NULL" spells out the filter of SQL Server's
	// unique index, which its optimizer then matches.
	PromotionByKey: `SELECT ` + PromotionCols + `, request_hash, active FROM promotions
WHERE idempotency_key = $1 AND idempotency_key IS NOT NULL`,

	InsertPromotion: `INSERT INTO promotions (name, kind, code_count, format, vanity_code,
	max_usage_per_code, per_user_limit, starts_at, expires_at, counter_name, seq_start,
	idempotency_key, request_hash, created_at, key_fingerprint, eligibility)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
RETURNING id`,

	InsertCode: `INSERT INTO codes (code, promotion_id) VALUES ($1, $2)`,

	PromotionStatus: `SELECT ` + PromotionColsP + `, ` + StatusCols + `
FROM promotions p LEFT JOIN promotion_totals t ON t.promotion_id = p.id WHERE p.id = $1`,

	PromotionExists: `SELECT ` + flag(`EXISTS (SELECT 1 FROM promotions WHERE id = $1)`),

	ExportCodes: `SELECT code FROM codes WHERE promotion_id = $1`,

	LoadBatch: `SELECT ` + PromotionColsP + `,
	b.batch_no, b.seq_start, b.code_count, b.done, b.state, b.last_error, p.key_fingerprint
FROM promotions p LEFT JOIN batches b ON b.promotion_id = p.id AND b.batch_no = $2
WHERE p.id = $1`,

	BatchProgress: `SELECT done, code_count FROM batches WHERE promotion_id = $1 AND batch_no = $2`,

	// PromotionLive: a chunk's last statement, a plain read (it waits for
	// nothing).
	PromotionLive: `SELECT ` + flag(`cancelled_at IS NULL AND delete_requested_at IS NULL`) + ` FROM promotions WHERE id = $1`,

	BatchExists: `SELECT ` + flag(`EXISTS (SELECT 1 FROM batches WHERE promotion_id = $1 AND batch_no = $2)`),

	IncompleteBatches: `SELECT ` + BatchCols + ` FROM batches
WHERE promotion_id = $1 AND done < code_count AND state <> 'cancelled' ORDER BY batch_no`,

	AllIncompleteBatches: `SELECT ` + BatchCols + ` FROM batches
WHERE done < code_count AND state <> 'cancelled' ORDER BY promotion_id, batch_no`,

	GetCode: `SELECT c.code, c.promotion_id, c.used, p.max_usage_per_code
FROM codes c JOIN promotions p ON p.id = c.promotion_id WHERE c.code = $1`,

	// "published = 0": the partial index batches_unpublished's filter.
	PendingBatches: `SELECT ` + BatchCols + ` FROM batches WHERE published = 0
ORDER BY promotion_id, batch_no LIMIT $1`,

	OldestUnpublished: `SELECT created_at FROM promotions
WHERE id = (SELECT min(promotion_id) FROM batches WHERE published = 0)`,

	StatsTopUsers: `SELECT user_id, count(*) AS n FROM redemptions
WHERE promotion_id = $1 AND rolled_back_at IS NULL
GROUP BY user_id ORDER BY n DESC, user_id LIMIT $2`,

	RefusalsByReason: `SELECT reason, CAST(sum(n) AS bigint) FROM refusals WHERE promotion_id = $1
GROUP BY reason ORDER BY 2 DESC, 1`,

	// ClaimKey waits for a concurrent insert of the key, then inserts
	// nothing if that one committed.
	ClaimKey: `INSERT INTO idempotency_keys (idem_key, request_hash, created_at, redemption_id)
VALUES ($1, $2, $3, NULLIF($4, ''))
ON CONFLICT (idem_key) DO NOTHING`,

	StoredOutcome: `SELECT request_hash, COALESCE(refused, ''), COALESCE(redemption_id, '')
FROM idempotency_keys WHERE idem_key = $1`,

	SaveOutcome: `UPDATE idempotency_keys SET refused = NULLIF($2, ''), redemption_id = NULLIF($3, '')
WHERE idem_key = $1`,

	UnuseCode: `UPDATE codes SET used = used - 1 WHERE code = $1 AND used > 0`,

	InsertRedemption: InsertRedemption,

	InsertRedemptionSegment: `INSERT INTO redemption_segments (redemption_id, promotion_id, segment) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING`,

	InsertEvent: `INSERT INTO events (stream, event_key, payload, created_at) VALUES ($1, $2, $3, $4)`,

	CodeState: `SELECT ` + PromotionColsP + `, c.code, c.used, COALESCE(u.used, 0), p.active,
	` + flag(`c.revoked_at IS NOT NULL`) + `, ` + flag(`p.delete_requested_at IS NOT NULL`) + `,
	(SELECT count(*) FROM reservations r WHERE r.code = c.code AND r.promotion_id = c.promotion_id AND r.status = 'held' AND r.expires_at > $3),
	(SELECT count(*) FROM reservations r WHERE r.promotion_id = c.promotion_id AND r.user_id = $2
		AND r.status = 'held' AND r.expires_at > $3),
	COALESCE(c.user_id, '')
FROM codes c JOIN promotions p ON p.id = c.promotion_id
LEFT JOIN user_uses u ON u.promotion_id = c.promotion_id AND u.user_id = $2
WHERE c.code = $1`,

	// MarkRolledBack lets one rollback through: a second waits for the row
	// lock, re-checks rolled_back_at IS NULL and matches nothing.
	MarkRolledBack: `UPDATE redemptions SET rolled_back_at = $2, rollback_reason = $3
WHERE id = $1 AND rolled_back_at IS NULL
RETURNING ` + RedemptionCols,

	Redemption: `SELECT ` + RedemptionCols + ` FROM redemptions WHERE id = $1`,

	// ReleaseCode: only the redemption's promotion's row (after a purge the
	// string may be another promotion's code).
	ReleaseCode: `UPDATE codes SET used = used - 1 WHERE code = $1 AND promotion_id = $2 AND used > 0 RETURNING used`,

	RecordCodeRelease: `UPDATE redemptions SET rollback_code_release = $2 WHERE id = $1`,

	ReleaseAllowance: `UPDATE user_uses SET used = used - 1 WHERE promotion_id = $1 AND user_id = $2 AND used > 0`,

	// Audit pages: UUIDv7 ids are time-ordered; every id is >= ''.
	Redemptions: `SELECT ` + RedemptionCols + ` FROM redemptions
WHERE promotion_id = $1 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`,

	RedemptionsByUser: `SELECT ` + RedemptionCols + ` FROM redemptions
WHERE promotion_id = $1 AND user_id = $5 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`,

	RedemptionsByCode: `SELECT ` + RedemptionCols + ` FROM redemptions
WHERE code = $5 AND promotion_id = $1 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`,

	UserRedemptions: `SELECT ` + RedemptionCols + ` FROM redemptions
WHERE user_id = $1 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`,

	CodeSpaces: `SELECT id, kind, COALESCE(format, ''), COALESCE(vanity_code, '') FROM promotions
WHERE id > $1 ORDER BY id LIMIT $2`,

	IssuablePromotion: `SELECT kind, ` + flag(`delete_requested_at IS NOT NULL`) + ` FROM promotions WHERE id = $1`,

	IssuedCodes: `SELECT code FROM codes WHERE user_id = $1 AND issuance_id = $2 ORDER BY code`,

	SaveIssuanceOutcome: `UPDATE idempotency_keys SET issuance_id = $2 WHERE idem_key = $1`,

	StoredIssuanceOutcome: `SELECT request_hash, COALESCE(issuance_id, '') FROM idempotency_keys WHERE idem_key = $1`,

	// UserCodes: "c.user_id IS NOT NULL" spells out the filter of
	// codes_by_user, which SQL Server matches only so.
	UserCodes: `SELECT c.code, c.promotion_id, p.name, c.issued_at, c.used, p.max_usage_per_code,
	` + flag(`c.revoked_at IS NOT NULL`) + `, p.active, ` + flag(`p.delete_requested_at IS NOT NULL`) + `, p.starts_at, p.expires_at
FROM codes c JOIN promotions p ON p.id = c.promotion_id
WHERE c.user_id = $1 AND c.user_id IS NOT NULL ORDER BY c.issued_at DESC, c.code LIMIT $2`,

	// SetActive: a promotion whose deletion was requested stays off (the
	// statement path's CodeUsable reads only active).
	SetActive: `UPDATE promotions SET active = $2 WHERE id = $1 AND delete_requested_at IS NULL`,

	// PruneEvents keeps an uncounted event: it is still owed to the totals.
	PruneEvents: `DELETE FROM events WHERE seq IN (
	SELECT seq FROM events WHERE published_at < $1 AND counted_at IS NOT NULL ORDER BY seq LIMIT $2)`,

	CodeLoad: `SELECT c.used + (SELECT count(*) FROM reservations r
	WHERE r.code = c.code AND r.promotion_id = c.promotion_id AND r.status = 'held' AND r.expires_at > $2 AND r.id <> $3)
FROM codes c WHERE c.code = $1`,

	AllowanceLoad: `SELECT COALESCE((SELECT used FROM user_uses WHERE promotion_id = $1 AND user_id = $2), 0)
	+ (SELECT count(*) FROM reservations r WHERE r.promotion_id = $1 AND r.user_id = $2
		AND r.status = 'held' AND r.expires_at > $3 AND r.id <> $4)`,

	InsertReservation: `INSERT INTO reservations (id, promotion_id, code, user_id, status, created_at, expires_at, shopper)
VALUES ($1, $2, $3, $4, 'held', $5, $6, $7)`,

	ReservationShopper: `SELECT shopper FROM reservations WHERE id = $1`,

	Reservation: `SELECT ` + ReservationCols + ` FROM reservations WHERE id = $1`,

	// MarkConfirmed and MarkReleased: one settlement, as MarkRolledBack.
	MarkConfirmed: `UPDATE reservations SET status = 'confirmed', settled_at = $4, redemption_id = $2,
	order_id = NULLIF($3, '')
WHERE id = $1 AND status = 'held'`,

	MarkReleased: `UPDATE reservations SET status = 'released', settled_at = $2
WHERE id = $1 AND status = 'held'
RETURNING ` + ReservationCols,

	SaveReservationOutcome: `UPDATE idempotency_keys SET refused = NULLIF($2, ''), reservation_id = NULLIF($3, '')
WHERE idem_key = $1`,

	StoredReservationOutcome: `SELECT request_hash, COALESCE(refused, ''), COALESCE(reservation_id, '')
FROM idempotency_keys WHERE idem_key = $1`,

	SweepReservations: `DELETE FROM reservations WHERE id IN (
	SELECT id FROM reservations WHERE expires_at < $1 LIMIT $2)`,

	SweepIdempotencyKeys: `DELETE FROM idempotency_keys WHERE idem_key IN (
	SELECT idem_key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)`,

	RevokeCode: `UPDATE codes SET revoked_at = $2, revoke_reason = NULLIF($3, '')
WHERE code = $1 AND revoked_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM promotions p WHERE p.id = codes.promotion_id AND p.delete_requested_at IS NOT NULL)
RETURNING promotion_id`,

	Revocation: `SELECT promotion_id, revoked_at, COALESCE(revoke_reason, '') FROM codes WHERE code = $1`,

	InsertAudit: `INSERT INTO audit_log (id, at, actor, action, promotion_id, code, detail)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, ''))`,

	AuditLog: `SELECT id, at, actor, action, promotion_id, COALESCE(code, ''), COALESCE(detail, '')
FROM audit_log WHERE promotion_id = $1 AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $2`,

	PromotionState: qPromotionState,
	LockPromotion:  qPromotionState + ` FOR UPDATE`,

	// UpdatePromotion's WHERE is re-checked under the row lock: a racing
	// deletion commits first (no match) or waits.
	UpdatePromotion: `UPDATE promotions SET
	name = COALESCE($2, name),
	starts_at = CASE WHEN $3 THEN $4 ELSE starts_at END,
	expires_at = CASE WHEN $5 THEN $6 ELSE expires_at END,
	active = COALESCE($7, active),
	eligibility = CASE WHEN $8 THEN $9 ELSE eligibility END
WHERE id = $1 AND delete_requested_at IS NULL AND (
	(CASE WHEN $3 THEN $4 ELSE starts_at END) IS NULL
	OR (CASE WHEN $5 THEN $6 ELSE expires_at END) IS NULL
	OR (CASE WHEN $3 THEN $4 ELSE starts_at END) < (CASE WHEN $5 THEN $6 ELSE expires_at END))
RETURNING id, name, starts_at, expires_at, active, COALESCE(eligibility, '')`,

	// FlagCancelled locks only the promotion row, which no chunk locks
	// (docs/store.md, "Committing a chunk").
	FlagCancelled: `UPDATE promotions SET cancelled_at = $2
WHERE id = $1 AND kind = 'generated' AND cancelled_at IS NULL AND delete_requested_at IS NULL
	AND EXISTS (SELECT 1 FROM batches WHERE promotion_id = $1 AND done < code_count)`,

	GrowPromotion: `UPDATE promotions SET code_count = code_count + $2
WHERE id = $1 AND kind = 'generated'
RETURNING counter_name, code_count`,

	NextNumbers: `SELECT (SELECT COALESCE(max(batch_no), -1) + 1 FROM batches WHERE promotion_id = $1),
	(SELECT COALESCE(max(topup_no), 0) + 1 FROM topups WHERE promotion_id = $1)`,

	InsertTopUp: `INSERT INTO topups (promotion_id, topup_no, code_count, seq_start, first_batch_no, batch_count, created_at,
	idempotency_key, request_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, ''), NULLIF($9, ''))`,

	TopUps: `SELECT ` + TopUpCols + ` FROM topups WHERE promotion_id = $1 ORDER BY topup_no`,

	StoredTopUp: `SELECT ` + TopUpCols + `, request_hash FROM topups WHERE promotion_id = $1 AND idempotency_key = $2`,

	ExpiredPromotions: `SELECT id FROM promotions WHERE expires_at IS NOT NULL AND expires_at < $1 ORDER BY id`,

	PurgeCount: `SELECT (SELECT count(*) FROM codes WHERE promotion_id = $1),
	(SELECT count(*) FROM redemptions WHERE promotion_id = $1)`,

	RequestDeletion: `UPDATE promotions SET delete_requested_at = $2, active = 0
WHERE id = $1 AND delete_requested_at IS NULL`,

	FinishDeletion: `UPDATE promotions SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM codes WHERE promotion_id = $1)`,

	MarkPurge: `UPDATE promotions SET delete_requested_at = COALESCE(delete_requested_at, $3), active = 0
WHERE id = $1 AND expires_at IS NOT NULL AND expires_at < $2`,

	DeletionsPending: `SELECT id FROM promotions WHERE delete_requested_at IS NOT NULL AND deleted_at IS NULL ORDER BY id`,

	Deletion: `SELECT delete_requested_at, deleted_at FROM promotions WHERE id = $1`,

	// CodeReservations: the partial index reservations_held_by_code serves it.
	CodeReservations: `SELECT ` + ReservationCols + ` FROM reservations
WHERE code = $1 AND promotion_id = $2 AND status = 'held' AND expires_at > $3 ORDER BY expires_at LIMIT $4`,

	Purge: map[string]string{
		"user_uses":    `DELETE FROM user_uses WHERE promotion_id = $1 AND user_id IN (SELECT user_id FROM user_uses WHERE promotion_id = $1 LIMIT $2)`,
		"codes":        `DELETE FROM codes WHERE code IN (SELECT code FROM codes WHERE promotion_id = $1 LIMIT $2)`,
		"reservations": `DELETE FROM reservations WHERE id IN (SELECT id FROM reservations WHERE promotion_id = $1 LIMIT $2)`,
	},
}

var qPromotionState = `SELECT ` + flag(`delete_requested_at IS NOT NULL`) + `, ` + flag(`cancelled_at IS NOT NULL`) + `
FROM promotions WHERE id = $1`

// CodeUsable is UseCode's and LockCode's WHERE (PostgreSQL's and SQL
// Server's; SQLite's puts PromotionUsable in a scalar subquery): code $1
// (c) usable at $2 by user $3 under promotion p's limits. Every condition a
// refusal reason stands for is in CodeOwn or PromotionUsable, so that each
// dialect's statement takes a new one from here.
const CodeUsable = `c.code = $1 AND p.id = c.promotion_id
  AND c.used < p.max_usage_per_code
  AND ` + CodeOwn + `
  AND ` + PromotionUsable

// CodeOwn is what code c's own row says: not revoked, and (a personal code)
// issued to user $3.
const CodeOwn = `c.revoked_at IS NULL
  AND (c.user_id IS NULL OR c.user_id = $3)`

// PromotionUsable is promotion p taking uses at $2. A deletion is checked on
// its own, not only through active: a promotion being deleted takes no use
// even if a writer switched it back on.
const PromotionUsable = `p.active
  AND p.delete_requested_at IS NULL
  AND (p.starts_at IS NULL OR p.starts_at <= $2)
  AND (p.expires_at IS NULL OR p.expires_at > $2)`

// LeaseEnd is the end of a lease of $2 microseconds on the database's clock
// (PostgreSQL's terms: a dialect rewrites it with Rebind.Replace).
const LeaseEnd = `now() + $2 * interval '1 microsecond'`

// StatusCase is promo.PromotionStatus.Status in SQL, branch for branch,
// over promotion p and its progress b, for ListPromotions.
func StatusCase(p, b string) string {
	return strings.NewReplacer("p.", p+".", "b.", b+".").Replace(`CASE
	WHEN p.deleted_at IS NOT NULL THEN 'deleted'
	WHEN p.delete_requested_at IS NOT NULL THEN 'deleting'
	WHEN p.kind = 'vanity' OR b.generated >= p.code_count THEN 'completed'
	WHEN b.cancelled > 0 THEN 'cancelled'
	WHEN b.parked > 0 THEN 'failed'
	WHEN b.generated > 0 THEN 'generating'
	ELSE 'pending' END`)
}

var placeholder = regexp.MustCompile(`\$([0-9]+)`)

// flag marks a predicate a select list returns as a boolean (Rebind.Flag).
func flag(predicate string) string { return "\x01" + predicate + "\x02" }

var flagged = regexp.MustCompile("\x01([^\x02]*)\x02")

// Rebind is how a dialect rewrites the shared statements.
type Rebind struct {
	Prefix string // for the $ of placeholders ("?", "@p"; "$" keeps them)
	Now    string // for now(): the database's clock
	// Top writes a SELECT's final LIMIT $n as TOP ($n), and DELETE FROM t
	// WHERE k IN (SELECT k FROM t ... LIMIT $n) as DELETE TOP ($n) (SQL Server).
	Top bool
	// Flag writes a predicate (flag) as a boolean a select list can
	// return (nil: as it is).
	Flag    func(predicate string) string
	Replace []string // old, new, ...: words of the shared text the dialect writes otherwise
	// Output writes RETURNING as OUTPUT ... INTO @t, then a SELECT from @t
	// (SQL Server), typing each "table.column" returned (nil: as it is).
	Output map[string]string
}

// Compose returns a dialect's Statements: the portable ones rewritten as r
// says, each replaced by own's where own sets it, and own's Purge tables
// added.
func Compose(r Rebind, own Statements) Statements {
	if r.Flag == nil {
		r.Flag = func(p string) string { return p }
	}
	s := portable
	sv, ov := reflect.ValueOf(&s).Elem(), reflect.ValueOf(own)
	for i := range sv.NumField() {
		switch f := sv.Field(i); {
		case f.Kind() != reflect.String: // Purge, below
		case ov.Field(i).String() != "":
			f.SetString(ov.Field(i).String())
		default:
			f.SetString(r.rebind(f.String()))
		}
	}
	s.Purge = map[string]string{}
	for table, q := range portable.Purge {
		s.Purge[table] = r.rebind(q)
	}
	maps.Copy(s.Purge, own.Purge)
	return s
}

var (
	finalLimit    = regexp.MustCompile(`(?s)^SELECT (.*) LIMIT (\$[0-9]+)$`)
	limitedDelete = regexp.MustCompile(
		`^DELETE FROM (\w+) WHERE \w+ IN \(\s*SELECT \w+ FROM (\w+) WHERE (.*?)(?: ORDER BY \w+)? LIMIT (\$[0-9]+)\)$`)
	returning = regexp.MustCompile(`(?s)^(UPDATE|INSERT INTO) (\w+)(.*?)(\s)((?:WHERE|VALUES) .*)\sRETURNING (.*)$`)
)

// rebind writes the $n placeholders of q with r.Prefix instead of $, now() as
// r.Now, r.Replace's words, flagged predicates as r.Flag says, RETURNING as
// r.Output says and LIMIT as r.Top says.
func (r Rebind) rebind(q string) string {
	if m := returning.FindStringSubmatch(q); m != nil && r.Output != nil {
		q = r.output(m[1]+" "+m[2]+m[3], m[2], m[4], m[5], m[6])
	}
	q = strings.NewReplacer(append(r.Replace, "now()", r.Now)...).Replace(q)
	q = flagged.ReplaceAllStringFunc(q, func(m string) string { return r.Flag(m[1 : len(m)-1]) })
	if m := limitedDelete.FindStringSubmatch(q); r.Top && m != nil && m[1] == m[2] {
		q = "DELETE TOP (" + m[4] + ") FROM " + m[1] + " WHERE " + m[3]
	}
	if r.Top {
		q = finalLimit.ReplaceAllString(q, "SELECT TOP ($2) $1")
	}
	return placeholder.ReplaceAllStringFunc(q, func(p string) string { return r.Prefix + p[1:] })
}

// output writes "head sep rest RETURNING cols" (an UPDATE's or INSERT's, of
// table; rest starts at WHERE or VALUES) as r.Output says. OUTPUT ends a
// one-line head's line, else takes a line of its own.
func (r Rebind) output(head, table, sep, rest, cols string) string {
	key, sel := cols, "SELECT "+cols+" FROM @t;"
	if strings.Contains(cols, "(") { // not plain columns: selected by the rows' id
		key, sel = "id", "SELECT "+cols+" FROM "+table+" WHERE id IN (SELECT id FROM @t);"
	}
	names := strings.Split(key, ", ")
	decl, out := make([]string, len(names)), make([]string, len(names))
	for i, n := range names {
		typ, ok := r.Output[table+"."+n]
		if !ok {
			panic("sqlstore: Rebind.Output has no type for " + table + "." + n)
		}
		decl[i], out[i] = n+" "+typ, "inserted."+n
	}
	lead := " "
	if strings.Contains(head, "\n") {
		lead = "\n"
	}
	return "DECLARE @t TABLE (" + strings.Join(decl, ", ") + ");\n" + head + lead + "OUTPUT " + strings.Join(out, ", ") +
		" INTO @t" + sep + rest + ";\n" + sel
}
