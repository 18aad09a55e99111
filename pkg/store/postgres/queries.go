package postgres

import "github.com/promocodes/promocodes/pkg/store/internal/sqlstore"

// The SQL of the PostgreSQL store that the shared core runs (see
// sqlstore.Statements for each statement's arguments), so that the dialects
// can be reviewed side by side (../sqlite/queries.go,
// ../sqlserver/queries.go). Parameters are $n.

const (
	// qReserve reserves n sequence numbers from a counter, creating it at 0 if
	// absent, and returns the first of them. The row lock it takes is held to
	// the end of the transaction, which serialises reservations per counter.
	qReserve = `INSERT INTO counters (name, next) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET next = counters.next + EXCLUDED.next
RETURNING next - $2`

	promotionCols = `id, name, kind, code_count, format, vanity_code, max_usage_per_code, per_user_limit,
	starts_at, expires_at, counter_name, seq_start, created_at, eligibility`

	// statusCols are what a promotion's status needs beyond promotionCols
	// and its progress: the switch, the deletion, and the totals as of the
	// last rollup (p: promotions, t: promotion_totals LEFT JOINed; no row
	// means no redemption counted yet).
	statusCols = `p.active, p.delete_requested_at, p.deleted_at,
	COALESCE(t.redemptions, 0), COALESCE(t.codes_redeemed, 0), COALESCE(t.rolled_back, 0)`

	qPromotionExists = `SELECT EXISTS (SELECT 1 FROM promotions WHERE id = $1)`

	batchCols = `promotion_id, batch_no, seq_start, code_count, done, state, last_error`

	// qEndFrozenCopies terminates the sessions of this database and user
	// that are in a COPY FROM STDIN started more than $1 ms ago and waiting
	// for their client (wait_event ClientRead) with a transaction open: a
	// COPY still receiving data is cancelled by statement_timeout, one whose
	// client stopped sending is not.
	qEndFrozenCopies = `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND usename = current_user AND pid <> pg_backend_pid()
	AND state = 'active' AND wait_event = 'ClientRead' AND backend_xid IS NOT NULL
	AND query ILIKE 'copy %from stdin%' AND query_start < now() - $1 * interval '1 millisecond'`

	qMarkPublished = `UPDATE batches SET published = true, publish_lease_until = NULL, updated_at = now()
FROM unnest($1::bigint[], $2::int[]) AS r(promotion_id, batch_no)
WHERE batches.promotion_id = r.promotion_id AND batches.batch_no = r.batch_no AND NOT batches.published`

	// Fallback path for a chunk that collided: stage, then insert what does
	// not conflict. INCLUDING DEFAULTS (not ALL): the staging table must not
	// carry the unique index, or the COPY into it would fail again.
	qCreateStaging = `CREATE TEMP TABLE codes_staging (LIKE codes INCLUDING DEFAULTS) ON COMMIT DROP`

	qInsertFromStaging = `INSERT INTO codes (code, promotion_id)
SELECT code, promotion_id FROM codes_staging ON CONFLICT (code) DO NOTHING`

	qInsertCodesArray = `INSERT INTO codes (code, promotion_id)
SELECT unnest($1::text[]), $2::bigint ON CONFLICT (code) DO NOTHING`

	redemptionCols = `id, promotion_id, code, user_id, COALESCE(order_id, ''), metadata, redeemed_at, uses_left,
	rolled_back_at, COALESCE(rollback_reason, ''), COALESCE(idempotency_key, ''), COALESCE(rollback_code_release, ''),
	COALESCE(client_addr, ''), COALESCE(user_agent, ''), order_amount, COALESCE(order_currency, ''), discount,
	first_order, COALESCE(segments, ''), COALESCE(country, '')`

	promotionColsP = `p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at, p.eligibility`

	reservationCols = `id, promotion_id, code, user_id, status, created_at, expires_at, settled_at,
	COALESCE(redemption_id, ''), COALESCE(order_id, '')`

	qPromotionState = `SELECT delete_requested_at IS NOT NULL, cancelled_at IS NOT NULL FROM promotions WHERE id = $1`

	topUpCols = `topup_no, code_count, seq_start, first_batch_no, batch_count, created_at`
)

// codeUse is UseCode (set: one use more) and LockCode (set: the same
// uses): every limit of the code and its promotion in one WHERE, a bound
// code's owner ($3) among them; it returns the promotion's eligibility rules
// as this statement read them, which the core checks before it commits.
func codeUse(set string) string {
	return `UPDATE codes c SET used = ` + set + `
FROM promotions p
WHERE c.code = $1 AND p.id = c.promotion_id
  AND c.used < p.max_usage_per_code
  AND c.revoked_at IS NULL
  AND (c.user_id IS NULL OR c.user_id = $3)
  AND p.active
  AND (p.starts_at IS NULL OR p.starts_at <= $2)
  AND (p.expires_at IS NULL OR p.expires_at > $2)
RETURNING c.promotion_id, c.used, p.max_usage_per_code, p.per_user_limit, COALESCE(p.eligibility, '')`
}

// insertBatches writes all batch rows of a promotion in one statement:
// $3-sized slices of [$2, $2+$4), the last one smaller, numbered from first.
func insertBatches(first string) string {
	return `INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT $1::bigint, ` + first + ` + g, $2::bigint + g::bigint * $3::bigint, LEAST($3::bigint, $4::bigint - g::bigint * $3::bigint), $6::timestamptz
FROM generate_series(0, $5::int - 1) AS g`
}

var statements = sqlstore.Statements{
	Reserve: qReserve,

	PromotionByKey: `SELECT ` + promotionCols + `, request_hash, active FROM promotions WHERE idempotency_key = $1`,

	InsertPromotion: `INSERT INTO promotions (name, kind, code_count, format, vanity_code,
	max_usage_per_code, per_user_limit, starts_at, expires_at, counter_name, seq_start,
	idempotency_key, request_hash, created_at, key_fingerprint, eligibility)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
RETURNING id`,

	InsertBatches: insertBatches("0"),

	InsertCode: `INSERT INTO codes (code, promotion_id) VALUES ($1, $2)`,

	PromotionStatus: `SELECT ` + promotionColsP + `, ` + statusCols + `
FROM promotions p LEFT JOIN promotion_totals t ON t.promotion_id = p.id WHERE p.id = $1`,

	// Progress: a batch counts as cancelled when its promotion is flagged
	// cancelled, also while a chunk in flight still holds it unmarked.
	Progress: `SELECT count(*),
	COALESCE(sum(b.done), 0)::bigint,
	count(*) FILTER (WHERE b.done = b.code_count),
	count(*) FILTER (WHERE b.state = 'retrying' AND b.done < b.code_count),
	count(*) FILTER (WHERE b.state = 'parked' AND b.done < b.code_count),
	count(*) FILTER (WHERE (b.state = 'cancelled' OR p.cancelled_at IS NOT NULL) AND b.done < b.code_count)
FROM batches b JOIN promotions p ON p.id = b.promotion_id WHERE b.promotion_id = $1`,

	PromotionExists: qPromotionExists,

	ExportCodes: `SELECT code FROM codes WHERE promotion_id = $1`,

	PendingBatches: `SELECT ` + batchCols + ` FROM batches WHERE NOT published
ORDER BY promotion_id, batch_no LIMIT $1`,

	// ClaimPendingBatches leases up to $1 of the oldest unpublished batches
	// for $2 microseconds to this publisher: SKIP LOCKED passes over rows
	// another replica is claiming right now, the lease over rows it claimed
	// and is publishing. The lease is on the database's clock (now()), so
	// replicas whose clocks disagree still agree on it. RETURNING has no
	// order: the caller sorts.
	ClaimPendingBatches: `UPDATE batches SET publish_lease_until = now() + $2 * interval '1 microsecond'
WHERE (promotion_id, batch_no) IN (
	SELECT promotion_id, batch_no FROM batches
	WHERE NOT published AND (publish_lease_until IS NULL OR publish_lease_until < now())
	ORDER BY promotion_id, batch_no LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING ` + batchCols,

	// LoadBatch tells a missing promotion (no row) from a missing batch
	// (NULL batch columns) in one round trip.
	LoadBatch: `SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at, p.eligibility,
	b.batch_no, b.seq_start, b.code_count, b.done, b.state, b.last_error, p.key_fingerprint
FROM promotions p LEFT JOIN batches b ON b.promotion_id = p.id AND b.batch_no = $2
WHERE p.id = $1`,

	// Advance is the compare-and-set at the heart of CommitChunk: it moves
	// done from $4 to $4+$3 or touches nothing. Under READ COMMITTED a
	// concurrent committer of the same chunk blocks on the row lock, then
	// re-checks done = $4 against the committed row and finds 0 rows.
	Advance: `UPDATE batches SET done = done + $3,
	state = CASE WHEN done + $3 = code_count THEN 'done' ELSE state END,
	updated_at = now()
WHERE promotion_id = $1 AND batch_no = $2 AND done = $4 AND done + $3 <= code_count AND state <> 'cancelled'
RETURNING done`,

	BatchProgress: `SELECT done, code_count FROM batches WHERE promotion_id = $1 AND batch_no = $2`,

	// PromotionLive is the last statement of every chunk's transaction: a
	// chunk commits only if its promotion was neither cancelled nor its
	// deletion requested (a plain read: it waits for nothing, and nothing
	// waits for it).
	PromotionLive: `SELECT cancelled_at IS NULL AND delete_requested_at IS NULL FROM promotions WHERE id = $1`,

	// CancelBatch marks one batch cancelled after its chunk was refused by
	// PromotionLive (the cancel skipped it while the chunk held it).
	CancelBatch: `UPDATE batches SET state = 'cancelled', updated_at = now()
WHERE promotion_id = $1 AND batch_no = $2 AND done < code_count AND state <> 'cancelled'`,

	// SetBatchState never touches a finished batch: done is final.
	SetBatchState: `UPDATE batches SET state = $3, last_error = $4, updated_at = now()
WHERE promotion_id = $1 AND batch_no = $2 AND done < code_count AND state <> 'cancelled'`,

	BatchExists: `SELECT EXISTS (SELECT 1 FROM batches WHERE promotion_id = $1 AND batch_no = $2)`,

	IncompleteBatches: `SELECT ` + batchCols + ` FROM batches
WHERE promotion_id = $1 AND done < code_count AND state <> 'cancelled' ORDER BY batch_no`,

	AllIncompleteBatches: `SELECT ` + batchCols + ` FROM batches
WHERE done < code_count AND state <> 'cancelled' ORDER BY promotion_id, batch_no`,

	GetCode: `SELECT c.code, c.promotion_id, c.used, p.max_usage_per_code
FROM codes c JOIN promotions p ON p.id = c.promotion_id WHERE c.code = $1`,

	// ListPromotions is a page of promotions with their progress, newest first:
	// $1 the cursor (ids below it; 0 = from the newest), $2 a name fragment
	// (empty = any), $3 a status (empty = any), $4 the page size, $5 the active
	// filter (0 any, 1 active, 2 inactive). The lateral
	// aggregate runs per promotion, so an unfiltered page walks the primary key
	// backwards and stops after $4 rows; the totals are one primary-key look-up
	// per row. The status CASE is promo.PromotionStatus.Status in SQL, branch
	// for branch: the deletion first, then the generation (a vanity promotion
	// is complete).
	ListPromotions: `SELECT ` + promotionColsP + `,
	b.total, b.generated, b.completed, b.retrying, b.parked, b.cancelled, ` + statusCols + `
FROM promotions p
CROSS JOIN LATERAL (
	SELECT count(*)::int AS total,
		COALESCE(sum(done), 0)::bigint AS generated,
		(count(*) FILTER (WHERE done = code_count))::int AS completed,
		(count(*) FILTER (WHERE state = 'retrying' AND done < code_count))::int AS retrying,
		(count(*) FILTER (WHERE state = 'parked' AND done < code_count))::int AS parked,
		(count(*) FILTER (WHERE (state = 'cancelled' OR p.cancelled_at IS NOT NULL) AND done < code_count))::int AS cancelled
	FROM batches WHERE promotion_id = p.id
) b
LEFT JOIN promotion_totals t ON t.promotion_id = p.id
WHERE ($1::bigint = 0 OR p.id < $1::bigint)
	AND ($2::text = '' OR strpos(lower(p.name), lower($2::text)) > 0)
	AND ($5::int = 0 OR p.active = ($5::int = 1))
	AND ($3::text = '' OR $3::text = CASE
		WHEN p.deleted_at IS NOT NULL THEN 'deleted'
		WHEN p.delete_requested_at IS NOT NULL THEN 'deleting'
		WHEN p.kind = 'vanity' OR b.generated >= p.code_count THEN 'completed'
		WHEN b.cancelled > 0 THEN 'cancelled'
		WHEN b.parked > 0 THEN 'failed'
		WHEN b.generated > 0 THEN 'generating'
		ELSE 'pending' END)
ORDER BY p.id DESC LIMIT $4`,

	// OldestUnpublished is the creation time of the promotion of the oldest
	// unpublished batch (ids grow with time).
	// Now is the database's clock at the call.
	Now: `SELECT clock_timestamp()`,

	// Backlog: batches with codes still to write, except those of
	// promotions whose deletion was requested.
	Backlog: `SELECT
	count(*) FILTER (WHERE b.state NOT IN ('parked', 'cancelled')),
	count(*) FILTER (WHERE b.state = 'parked'),
	COALESCE(sum(b.code_count - b.done) FILTER (WHERE b.state NOT IN ('parked', 'cancelled')), 0)::bigint
FROM batches b JOIN promotions p ON p.id = b.promotion_id
WHERE b.done < b.code_count AND p.delete_requested_at IS NULL`,

	OldestUnpublished: `SELECT created_at FROM promotions
WHERE id = (SELECT min(promotion_id) FROM batches WHERE NOT published)`,

	// Redemption analytics of one promotion ($1), from the audit trail.
	StatsTotals: `SELECT count(*) FILTER (WHERE rolled_back_at IS NULL), count(rolled_back_at),
	count(DISTINCT code) FILTER (WHERE rolled_back_at IS NULL)
FROM redemptions WHERE promotion_id = $1`,

	// StatsSeries is the time series over [$3, $4) in buckets of $2 (hour
	// or day, UTC): redemptions made (and how many of those were rolled back
	// since), rollbacks made, and a row for every bucket with refusals
	// (StatsRefusalSeries counts them by reason). The window is bounded, so
	// is the answer.
	StatsSeries: `SELECT b, sum(n)::bigint, sum(rb)::bigint, sum(rbk)::bigint FROM (
	SELECT date_trunc($2::text, redeemed_at AT TIME ZONE 'UTC') AS b, count(*) AS n, count(rolled_back_at) AS rb, 0 AS rbk
	FROM redemptions WHERE promotion_id = $1 AND redeemed_at >= $3 AND redeemed_at < $4 GROUP BY 1
	UNION ALL
	SELECT date_trunc($2::text, rolled_back_at AT TIME ZONE 'UTC'), 0, 0, count(*)
	FROM redemptions WHERE promotion_id = $1 AND rolled_back_at >= $3 AND rolled_back_at < $4 GROUP BY 1
	UNION ALL
	SELECT date_trunc($2::text, hour AT TIME ZONE 'UTC'), 0, 0, 0
	FROM refusals WHERE promotion_id = $1 AND hour >= $3 AND hour < $4 GROUP BY 1
) e GROUP BY b ORDER BY b`,

	// StatsRefusalSeries is the series' refusals by reason.
	StatsRefusalSeries: `SELECT date_trunc($2::text, hour AT TIME ZONE 'UTC') AS b, reason, sum(n)::bigint
FROM refusals WHERE promotion_id = $1 AND hour >= $3 AND hour < $4 GROUP BY 1, 2`,

	// StatsOrders: order value and discount of the live redemptions that
	// carried an order, per currency (amounts in 1/10,000 of a unit).
	StatsOrders: `SELECT order_currency, count(*), COALESCE(sum(order_amount), 0)::bigint, COALESCE(sum(discount), 0)::bigint
FROM redemptions WHERE promotion_id = $1 AND rolled_back_at IS NULL AND order_currency IS NOT NULL
GROUP BY order_currency ORDER BY order_currency`,

	// StatsSegments: the same by segment (and currency, '' for none).
	StatsSegments: `SELECT s.segment, COALESCE(r.order_currency, ''), count(*),
	COALESCE(sum(r.order_amount), 0)::bigint, COALESCE(sum(r.discount), 0)::bigint
FROM redemption_segments s JOIN redemptions r ON r.id = s.redemption_id
WHERE s.promotion_id = $1 AND r.rolled_back_at IS NULL
GROUP BY s.segment, r.order_currency ORDER BY s.segment, 2`,

	StatsTopUsers: `SELECT user_id, count(*) AS n FROM redemptions
WHERE promotion_id = $1 AND rolled_back_at IS NULL
GROUP BY user_id ORDER BY n DESC, user_id LIMIT $2`,

	AddRefusals: `INSERT INTO refusals AS r (promotion_id, reason, hour, n) VALUES ($1, $2, $3, $4)
ON CONFLICT (promotion_id, reason, hour) DO UPDATE SET n = r.n + EXCLUDED.n`,

	RefusalsByReason: `SELECT reason, sum(n)::bigint FROM refusals WHERE promotion_id = $1
GROUP BY reason ORDER BY 2 DESC, 1`,

	// Redemption, rollback, the audit trail and the event outbox.
	//
	// Why PostgreSQL cannot over-redeem: UseCode and UseAllowance are single
	// conditional statements. Under READ COMMITTED an UPDATE (or the DO UPDATE of
	// an upsert) that finds its row locked by another transaction waits, then
	// re-evaluates its WHERE clause against the row as that transaction committed
	// it (EvalPlanQual). So "used < max" is checked on the latest committed count
	// while the row lock is held, and two transactions can never both move a
	// count from max-1 to max. No read-check-write in Go, no table locks.

	// ClaimKey waits for a concurrent transaction inserting the same key,
	// then inserts nothing (0 rows) if that one committed.
	ClaimKey: `INSERT INTO idempotency_keys (idem_key, request_hash, created_at) VALUES ($1, $2, $3)
ON CONFLICT (idem_key) DO NOTHING`,

	StoredOutcome: `SELECT request_hash, COALESCE(refused, ''), COALESCE(redemption_id, '')
FROM idempotency_keys WHERE idem_key = $1`,

	SaveOutcome: `UPDATE idempotency_keys SET refused = NULLIF($2, ''), redemption_id = NULLIF($3, '')
WHERE idem_key = $1`,

	UseCode: codeUse("c.used + 1"),

	// AddCodeUses takes a combined redemption's n uses at once, within the
	// maximum (re-checked on the row this transaction has locked).
	AddCodeUses: `UPDATE codes c SET used = c.used + $2 FROM promotions p
WHERE c.code = $1 AND p.id = c.promotion_id AND c.used + $2 <= p.max_usage_per_code`,

	UnuseCode: `UPDATE codes SET used = used - 1 WHERE code = $1 AND used > 0`,

	// UseAllowance creates the user's row at 1, or adds 1 while below the
	// limit; RETURNING gives no row when the limit is reached.
	UseAllowance: `INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES ($1, $2, 1)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used + 1 WHERE u.used < $3
RETURNING u.used`,

	// RedemptionWithEvent writes the audit row and its outbox event in one
	// statement.
	RedemptionWithEvent: `WITH r AS (
	INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at, uses_left, idempotency_key,
		client_addr, user_agent, order_amount, order_currency, discount, first_order, segments, country)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
)
INSERT INTO events (stream, event_key, payload, created_at) VALUES ($18, $19, $20, $7)`,

	InsertRedemptionSegment: `INSERT INTO redemption_segments (redemption_id, promotion_id, segment) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING`,

	// RedeemOnce is the whole redemption in one round trip: the function
	// redeem_code (migration 00012, which says why it cannot over-redeem)
	// runs the core's steps in the database, in autocommit.
	RedeemOnce: `SELECT o_outcome, COALESCE(o_promotion_id, 0), COALESCE(o_uses_left, 0)
FROM redeem_code($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,

	// RedeemBatchOnce is a combined redemption of one code in one round
	// trip: redeem_code_batch (migration 00014, which says why it cannot
	// over-redeem).
	RedeemBatchOnce: `SELECT o_idx, o_outcome, COALESCE(o_promotion_id, 0), COALESCE(o_uses_left, 0)
FROM redeem_code_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,

	InsertEvent: `INSERT INTO events (stream, event_key, payload, created_at) VALUES ($1, $2, $3, $4)`,

	// CodeState: $3 is now, for the live reservations.
	CodeState: `SELECT ` + promotionColsP + `, c.code, c.used, COALESCE(u.used, 0), p.active,
	c.revoked_at IS NOT NULL, p.delete_requested_at IS NOT NULL,
	(SELECT count(*) FROM reservations r WHERE r.code = c.code AND r.promotion_id = c.promotion_id AND r.status = 'held' AND r.expires_at > $3),
	(SELECT count(*) FROM reservations r WHERE r.promotion_id = c.promotion_id AND r.user_id = $2
		AND r.status = 'held' AND r.expires_at > $3),
	COALESCE(c.user_id, '')
FROM codes c JOIN promotions p ON p.id = c.promotion_id
LEFT JOIN user_uses u ON u.promotion_id = c.promotion_id AND u.user_id = $2
WHERE c.code = $1`,

	// MarkRolledBack lets exactly one rollback of a redemption through:
	// a second one waits for the first's row lock, re-checks
	// rolled_back_at IS NULL and matches nothing.
	MarkRolledBack: `UPDATE redemptions SET rolled_back_at = $2, rollback_reason = $3
WHERE id = $1 AND rolled_back_at IS NULL
RETURNING ` + redemptionCols,

	Redemption: `SELECT ` + redemptionCols + ` FROM redemptions WHERE id = $1`,

	// ReleaseCode gives the use back to the code row of the redemption's
	// promotion only: after a deletion or purge the same string may be
	// another promotion's code, which this must not touch.
	ReleaseCode: `UPDATE codes SET used = used - 1 WHERE code = $1 AND promotion_id = $2 AND used > 0 RETURNING used`,

	RecordCodeRelease: `UPDATE redemptions SET rollback_code_release = $2 WHERE id = $1`,

	ReleaseAllowance: `UPDATE user_uses SET used = used - 1 WHERE promotion_id = $1 AND user_id = $2 AND used > 0`,

	// Audit pages, newest first (ids are UUIDv7, time-ordered), one per
	// selection: $1 the promotion (or the user, across
	// promotions), $2 the limit (NULL: none), $3 the cursor ('' for the
	// first page), $4 the range's lowest id ('' for none: every id is >= ''),
	// $5 the user or the code.
	Redemptions: `SELECT ` + redemptionCols + ` FROM redemptions
WHERE promotion_id = $1 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`,

	RedemptionsByUser: `SELECT ` + redemptionCols + ` FROM redemptions
WHERE promotion_id = $1 AND user_id = $5 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`,

	RedemptionsByCode: `SELECT ` + redemptionCols + ` FROM redemptions
WHERE code = $5 AND promotion_id = $1 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`,

	UserRedemptions: `SELECT ` + redemptionCols + ` FROM redemptions
WHERE user_id = $1 AND ($3 = '' OR id < $3) AND id >= $4 ORDER BY id DESC LIMIT $2`,

	// ClaimEvents leases the oldest unpublished events to this publisher
	// for $2 microseconds of the database's clock; SKIP LOCKED and the lease
	// keep another replica's publisher off them.
	ClaimEvents: `UPDATE events SET lease_until = now() + $2 * interval '1 microsecond'
WHERE seq IN (
	SELECT seq FROM events
	WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < now())
	ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING seq, stream, event_key, payload`,

	// MarkEventPublished stamps the database's clock: the retention that
	// prunes published events counts from it.
	MarkEventPublished: `UPDATE events SET published_at = now() WHERE seq = ANY($1) AND published_at IS NULL`,

	// CodeSpaces lists what validation needs to recognise codes offline:
	// the format of each generated promotion and each vanity code.
	CodeSpaces: `SELECT id, kind, COALESCE(format, ''), COALESCE(vanity_code, '') FROM promotions
WHERE id > $1 ORDER BY id LIMIT $2`,

	// Personal codes. IssueCodes hands out up to $5 unassigned codes of
	// promotion $1 to user $2: SKIP LOCKED passes over the codes another
	// issuance is taking right now, so concurrent issuances share no row
	// and wait for none (no counter row: no hot row). A code already used,
	// revoked or bound is never handed out. The promotion's codes are found
	// through its BRIN range (no index entry per generated code).
	IssuablePromotion: `SELECT kind, delete_requested_at IS NOT NULL FROM promotions WHERE id = $1`,

	IssueCodes: `UPDATE codes SET user_id = $2, issuance_id = $3, issued_at = $4
WHERE code IN (
	SELECT code FROM codes WHERE promotion_id = $1 AND user_id IS NULL AND used = 0 AND revoked_at IS NULL
	LIMIT $5 FOR UPDATE SKIP LOCKED)
RETURNING code`,

	// IssueCodesFrom is IssueCodes over the heap pages [$6, $7) only (a TID
	// range scan): an issuance starts at the page where the last one began
	// taking codes instead of reading past every code issued before it, and
	// looks through the whole promotion ([0, 2^32)) only when those pages
	// run short. The page of each code taken is returned for the cursor.
	IssueCodesFrom: `WITH pick AS (
	SELECT code, (ctid::text::point)[0]::bigint AS page FROM codes
	WHERE promotion_id = $1 AND user_id IS NULL AND used = 0 AND revoked_at IS NULL
	  AND ctid >= $6::text::tid AND ctid < $7::text::tid
	LIMIT $5 FOR UPDATE SKIP LOCKED)
UPDATE codes c SET user_id = $2, issuance_id = $3, issued_at = $4
FROM pick WHERE c.code = pick.code
RETURNING c.code, pick.page`,

	IssueCursor: `SELECT next_page FROM issue_cursors WHERE promotion_id = $1`,

	// SetIssueCursor runs on its own after the issuance committed and waits
	// for no row lock: SKIP LOCKED leaves a cursor another issuance is
	// setting as it is (no hot row), and the insert of a first cursor
	// conflicts only with another such one-statement insert.
	SetIssueCursor: `WITH held AS (
	UPDATE issue_cursors SET next_page = $2
	WHERE promotion_id = (SELECT promotion_id FROM issue_cursors WHERE promotion_id = $1 FOR UPDATE SKIP LOCKED)
	RETURNING 1)
INSERT INTO issue_cursors (promotion_id, next_page)
SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM issue_cursors WHERE promotion_id = $1)
ON CONFLICT (promotion_id) DO NOTHING`,

	IssuedCodes: `SELECT code FROM codes WHERE user_id = $1 AND issuance_id = $2 ORDER BY code`,

	SaveIssuanceOutcome: `UPDATE idempotency_keys SET issuance_id = $2 WHERE idem_key = $1`,

	StoredIssuanceOutcome: `SELECT request_hash, COALESCE(issuance_id, '') FROM idempotency_keys WHERE idem_key = $1`,

	// UserCodes: a user's codes, newest issued first, with what their state
	// needs (the partial index codes_by_user serves it).
	UserCodes: `SELECT c.code, c.promotion_id, p.name, c.issued_at, c.used, p.max_usage_per_code,
	c.revoked_at IS NOT NULL, p.active, p.delete_requested_at IS NOT NULL, p.starts_at, p.expires_at
FROM codes c JOIN promotions p ON p.id = c.promotion_id
WHERE c.user_id = $1 ORDER BY c.issued_at DESC, c.code LIMIT $2`,

	SetActive: `UPDATE promotions SET active = $2 WHERE id = $1`,

	// PruneEvents deletes up to $2 events published before $1 and counted
	// by the totals rollup (an uncounted one is still owed to the totals).
	PruneEvents: `DELETE FROM events WHERE seq IN (
	SELECT seq FROM events WHERE published_at < $1 AND counted_at IS NOT NULL ORDER BY seq LIMIT $2)`,

	// ClaimUncounted marks up to $1 of the oldest uncounted events counted
	// at $2 and returns them; the caller adds them to promotion_totals in
	// the same transaction. SKIP LOCKED passes over rows another roller is
	// counting right now; a row that roller committed meanwhile is
	// re-checked against counted_at IS NULL under its lock and left out.
	// The partial index events_uncounted serves the scan.
	ClaimUncounted: `UPDATE events SET counted_at = $2
WHERE seq IN (
	SELECT seq FROM events WHERE counted_at IS NULL
	ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING seq, stream, payload, created_at`,

	// AddTotals adds one delta per promotion (the arrays are in promotion
	// order, so two rollers lock totals rows in the same order).
	AddTotals: `INSERT INTO promotion_totals AS t (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
SELECT d.id, d.r, d.c, d.b, $5 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) AS d(id, r, c, b)
ORDER BY d.id
ON CONFLICT (promotion_id) DO UPDATE SET redemptions = t.redemptions + EXCLUDED.redemptions,
	codes_redeemed = t.codes_redeemed + EXCLUDED.codes_redeemed,
	rolled_back = t.rolled_back + EXCLUDED.rolled_back, updated_at = EXCLUDED.updated_at`,

	// Reservations; the holds are counted by CodeLoad and AllowanceLoad,
	// which every redemption runs too.
	//
	// Why PostgreSQL cannot over-allocate with reservations: a reserver takes the
	// code row's lock first (LockCode, a conditional UPDATE that re-checks its
	// WHERE on the latest row version after waiting, like UseCode) and only
	// then counts uses plus live holds (CodeLoad). CodeLoad is a new statement,
	// so under READ COMMITTED it reads a new snapshot, taken after the lock was
	// granted: it sees every reservation and use committed by the lock's earlier
	// holders, and nobody adds one to this code until this transaction ends
	// (every reserver, redeemer and confirmer locks the code row first). The
	// count is not folded into the UPDATE's WHERE on purpose: a subquery there
	// would keep the statement's first snapshot through the EvalPlanQual
	// re-check and could let two reservers into the last use. Same for the user's
	// allowance row (LockAllowance, then AllowanceLoad).

	LockCode: codeUse("c.used"), // used = used takes the row lock

	// CodeLoad: committed uses plus live holds; $3 is a reservation being
	// confirmed ('' for none), whose own hold is not counted.
	CodeLoad: `SELECT c.used + (SELECT count(*) FROM reservations r
	WHERE r.code = c.code AND r.promotion_id = c.promotion_id AND r.status = 'held' AND r.expires_at > $2 AND r.id <> $3)
FROM codes c WHERE c.code = $1`,

	// LockAllowance creates the user's row at 0 uses, or locks it while
	// below the limit.
	LockAllowance: `INSERT INTO user_uses AS u (promotion_id, user_id, used) VALUES ($1, $2, 0)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used WHERE u.used < $3
RETURNING u.used`,

	AllowanceLoad: `SELECT COALESCE((SELECT used FROM user_uses WHERE promotion_id = $1 AND user_id = $2), 0)
	+ (SELECT count(*) FROM reservations r WHERE r.promotion_id = $1 AND r.user_id = $2
		AND r.status = 'held' AND r.expires_at > $3 AND r.id <> $4)`,

	InsertReservation: `INSERT INTO reservations (id, promotion_id, code, user_id, status, created_at, expires_at, shopper)
VALUES ($1, $2, $3, $4, 'held', $5, $6, $7)`,

	ReservationShopper: `SELECT shopper FROM reservations WHERE id = $1`,

	Reservation: `SELECT ` + reservationCols + ` FROM reservations WHERE id = $1`,

	// MarkConfirmed and MarkReleased let one settlement through: a second
	// one waits for the first's row lock, re-checks status = 'held' and
	// matches nothing.
	MarkConfirmed: `UPDATE reservations SET status = 'confirmed', settled_at = $4, redemption_id = $2,
	order_id = NULLIF($3, '')
WHERE id = $1 AND status = 'held'`,

	MarkReleased: `UPDATE reservations SET status = 'released', settled_at = $2
WHERE id = $1 AND status = 'held'
RETURNING ` + reservationCols,

	SaveReservationOutcome: `UPDATE idempotency_keys SET refused = NULLIF($2, ''), reservation_id = NULLIF($3, '')
WHERE idem_key = $1`,

	StoredReservationOutcome: `SELECT request_hash, COALESCE(refused, ''), COALESCE(reservation_id, '')
FROM idempotency_keys WHERE idem_key = $1`,

	// SweepReservations deletes up to $2 rows that ended before $1.
	SweepReservations: `DELETE FROM reservations WHERE id IN (
	SELECT id FROM reservations WHERE expires_at < $1 LIMIT $2)`,

	// Admin changes (revocation, promotion updates, cancel, top-ups,
	// deletion) and their audit log: each change is one conditional
	// statement, so two racing admins cannot both apply it.

	// RevokeCode: a code of a promotion whose deletion was requested is
	// not revoked (the promotion takes no change).
	RevokeCode: `UPDATE codes c SET revoked_at = $2, revoke_reason = NULLIF($3, '')
WHERE c.code = $1 AND c.revoked_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM promotions p WHERE p.id = c.promotion_id AND p.delete_requested_at IS NOT NULL)
RETURNING c.promotion_id`,

	Revocation: `SELECT promotion_id, revoked_at, COALESCE(revoke_reason, '') FROM codes WHERE code = $1`,

	InsertAudit: `INSERT INTO audit_log (id, at, actor, action, promotion_id, code, detail)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, ''))`,

	// AuditLog pages a promotion's audit log, newest first; $3 is the
	// cursor ('' for the first page).
	AuditLog: `SELECT id, at, actor, action, promotion_id, COALESCE(code, ''), COALESCE(detail, '')
FROM audit_log WHERE promotion_id = $1 AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $2`,

	// UpdatePromotion: $2 name or NULL; $3/$5 whether starts_at/expires_at
	// are set, to $4/$6 (NULL clears); $7 active or NULL. The WHERE refuses a
	// resulting window that is empty, and a promotion whose deletion was
	// requested (re-checked under the row lock: a racing DELETE either
	// commits first and this matches nothing, or waits and switches it off).
	UpdatePromotion: `UPDATE promotions SET
	name = COALESCE($2::text, name),
	starts_at = CASE WHEN $3::boolean THEN $4::timestamptz ELSE starts_at END,
	expires_at = CASE WHEN $5::boolean THEN $6::timestamptz ELSE expires_at END,
	active = COALESCE($7::boolean, active),
	eligibility = CASE WHEN $8::boolean THEN $9::text ELSE eligibility END
WHERE id = $1 AND delete_requested_at IS NULL AND (
	(CASE WHEN $3::boolean THEN $4::timestamptz ELSE starts_at END) IS NULL
	OR (CASE WHEN $5::boolean THEN $6::timestamptz ELSE expires_at END) IS NULL
	OR (CASE WHEN $3::boolean THEN $4::timestamptz ELSE starts_at END)
		< (CASE WHEN $5::boolean THEN $6::timestamptz ELSE expires_at END))
RETURNING id, name, starts_at, expires_at, active, COALESCE(eligibility, '')`,

	PromotionState: qPromotionState,

	LockPromotion: qPromotionState + ` FOR UPDATE`,

	// FlagCancelled sets the flag every chunk reads before it commits. It
	// locks only the promotion row, which workers never lock, so a worker
	// frozen mid-chunk (holding its batch row) cannot make it wait.
	FlagCancelled: `UPDATE promotions SET cancelled_at = $2
WHERE id = $1 AND kind = 'generated' AND cancelled_at IS NULL AND delete_requested_at IS NULL
	AND EXISTS (SELECT 1 FROM batches WHERE promotion_id = $1 AND done < code_count)`,

	// CancelBatches marks the unfinished batches that no transaction holds
	// (SKIP LOCKED: a chunk in flight holds its batch row; the flag refuses
	// that chunk and its worker marks the batch).
	CancelBatches: `UPDATE batches SET state = 'cancelled', updated_at = $2
WHERE (promotion_id, batch_no) IN (
	SELECT promotion_id, batch_no FROM batches
	WHERE promotion_id = $1 AND done < code_count AND state <> 'cancelled'
	FOR UPDATE SKIP LOCKED)`,

	GrowPromotion: `UPDATE promotions SET code_count = code_count + $2
WHERE id = $1 AND kind = 'generated'
RETURNING counter_name, code_count`,

	NextNumbers: `SELECT (SELECT COALESCE(max(batch_no), -1) + 1 FROM batches WHERE promotion_id = $1),
	(SELECT COALESCE(max(topup_no), 0) + 1 FROM topups WHERE promotion_id = $1)`,

	InsertTopUpBatches: insertBatches("$7::int"),

	InsertTopUp: `INSERT INTO topups (promotion_id, topup_no, code_count, seq_start, first_batch_no, batch_count, created_at,
	idempotency_key, request_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, ''), NULLIF($9, ''))`,

	TopUps: `SELECT ` + topUpCols + ` FROM topups WHERE promotion_id = $1 ORDER BY topup_no`,

	StoredTopUp: `SELECT ` + topUpCols + `, request_hash FROM topups WHERE promotion_id = $1 AND idempotency_key = $2`,

	ExpiredPromotions: `SELECT id FROM promotions WHERE expires_at IS NOT NULL AND expires_at < $1 ORDER BY id`,

	PurgeCount: `SELECT (SELECT count(*) FROM codes WHERE promotion_id = $1),
	(SELECT count(*) FROM redemptions WHERE promotion_id = $1)`,

	RequestDeletion: `UPDATE promotions SET delete_requested_at = $2, active = false
WHERE id = $1 AND delete_requested_at IS NULL`,

	// FinishDeletion: only once no code is left (a chunk that read the
	// promotion live just before the deletion may commit just after it;
	// the next pass deletes its codes, then finishes).
	FinishDeletion: `UPDATE promotions SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM codes WHERE promotion_id = $1)`,

	// MarkPurge: the window is re-checked under the row lock, so an admin's
	// PATCH that extends it either lands first (nothing marked) or after
	// (refused: promotion_deleted).
	MarkPurge: `UPDATE promotions SET delete_requested_at = COALESCE(delete_requested_at, $3), active = false
WHERE id = $1 AND expires_at IS NOT NULL AND expires_at < $2`,

	DeletionsPending: `SELECT id FROM promotions WHERE delete_requested_at IS NOT NULL AND deleted_at IS NULL ORDER BY id`,

	Deletion: `SELECT delete_requested_at, deleted_at FROM promotions WHERE id = $1`,

	// CodeReservations: $1 the code, $2 its promotion, $3 now, $4 the limit
	// (the partial index reservations_held_by_code serves it).
	CodeReservations: `SELECT ` + reservationCols + ` FROM reservations
WHERE code = $1 AND promotion_id = $2 AND status = 'held' AND expires_at > $3 ORDER BY expires_at LIMIT $4`,

	// Purge deletes up to $2 rows of one promotion from a table, one bounded
	// statement at a time, so that redemptions of other promotions never
	// wait long behind a purge.
	Purge: map[string]string{
		"codes":        `DELETE FROM codes WHERE code IN (SELECT code FROM codes WHERE promotion_id = $1 LIMIT $2)`,
		"user_uses":    `DELETE FROM user_uses WHERE (promotion_id, user_id) IN (SELECT promotion_id, user_id FROM user_uses WHERE promotion_id = $1 LIMIT $2)`,
		"reservations": `DELETE FROM reservations WHERE id IN (SELECT id FROM reservations WHERE promotion_id = $1 LIMIT $2)`,
		// The redemptions' idempotency records go in the same statement: a
		// retry with a purged redemption's key finds no record (and redeems
		// anew, or is refused like any request) instead of a record naming a
		// redemption that is gone.
		"redemptions": `WITH d AS (
	DELETE FROM redemptions WHERE id IN (SELECT id FROM redemptions WHERE promotion_id = $1 LIMIT $2)
	RETURNING idempotency_key
), k AS (
	DELETE FROM idempotency_keys WHERE idem_key IN (SELECT idempotency_key FROM d WHERE idempotency_key IS NOT NULL)
)
SELECT 1 FROM d`,
	},
}
