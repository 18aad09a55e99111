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
	starts_at, expires_at, counter_name, seq_start, created_at`

	// statusCols are what a promotion's status needs beyond promotionCols
	// and its progress: the switch, the deletion, and the totals as of the
	// last rollup (p: promotions, t: promotion_totals LEFT JOINed; no row
	// means no redemption counted yet).
	statusCols = `p.active, p.delete_requested_at, p.deleted_at,
	COALESCE(t.redemptions, 0), COALESCE(t.codes_redeemed, 0), COALESCE(t.rolled_back, 0)`

	qPromotionExists = `SELECT EXISTS (SELECT 1 FROM promotions WHERE id = $1)`

	batchCols = `promotion_id, batch_no, seq_start, code_count, done, state, last_error`

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
)

var statements = sqlstore.Statements{
	Reserve: qReserve,

	PromotionByKey: `SELECT ` + promotionCols + `, request_hash, active FROM promotions WHERE idempotency_key = $1`,

	InsertPromotion: `INSERT INTO promotions (name, kind, code_count, format, vanity_code,
	max_usage_per_code, per_user_limit, starts_at, expires_at, counter_name, seq_start,
	idempotency_key, request_hash, created_at, key_fingerprint)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
RETURNING id`,

	// InsertBatches writes all batch rows of a promotion in one statement:
	// $3-sized slices of [$2, $2+$4), the last one smaller.
	InsertBatches: `INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT $1::bigint, g, $2::bigint + g::bigint * $3::bigint, LEAST($3::bigint, $4::bigint - g::bigint * $3::bigint), $6::timestamptz
FROM generate_series(0, $5::int - 1) AS g`,

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
	// until $2 to this publisher: SKIP LOCKED passes over rows another
	// replica is claiming right now, the lease over rows it claimed and is
	// publishing. RETURNING has no order: the caller sorts.
	ClaimPendingBatches: `UPDATE batches SET publish_lease_until = $2
WHERE (promotion_id, batch_no) IN (
	SELECT promotion_id, batch_no FROM batches
	WHERE NOT published AND (publish_lease_until IS NULL OR publish_lease_until < $3)
	ORDER BY promotion_id, batch_no LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING ` + batchCols,

	// LoadBatch tells a missing promotion (no row) from a missing batch
	// (NULL batch columns) in one round trip.
	LoadBatch: `SELECT p.id, p.name, p.kind, p.code_count, p.format, p.vanity_code, p.max_usage_per_code,
	p.per_user_limit, p.starts_at, p.expires_at, p.counter_name, p.seq_start, p.created_at,
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
	// filter (contract.ActiveFilter: 0 any, 1 active, 2 inactive). The lateral
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

	StatsTopUsers: `SELECT user_id, count(*) AS n FROM redemptions
WHERE promotion_id = $1 AND rolled_back_at IS NULL
GROUP BY user_id ORDER BY n DESC, user_id LIMIT $2`,

	ClaimUncounted: qClaimUncounted,
	AddTotals:      qAddTotals,

	AddRefusals: `INSERT INTO refusals AS r (promotion_id, reason, hour, n) VALUES ($1, $2, $3, $4)
ON CONFLICT (promotion_id, reason, hour) DO UPDATE SET n = r.n + EXCLUDED.n`,

	RefusalsByReason: `SELECT reason, sum(n)::bigint FROM refusals WHERE promotion_id = $1
GROUP BY reason ORDER BY 2 DESC, 1`,
}
