package postgres

import "github.com/promocodes/promocodes/pkg/store/internal/sqlstore"

// PostgreSQL's statements where they differ from sqlstore's shared ones.

const (

	// qEndFrozenCopies (Store.EndFrozenCopies) terminates this database and
	// user's sessions in a COPY FROM STDIN older than $1 ms that wait for
	// their client with a transaction open.
	qEndFrozenCopies = `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND usename = current_user AND pid <> pg_backend_pid()
	AND state = 'active' AND wait_event = 'ClientRead' AND backend_xid IS NOT NULL
	AND query ILIKE 'copy %from stdin%' AND query_start < now() - $1 * interval '1 millisecond'`

	qMarkPublished = `UPDATE batches SET published = true, publish_lease_until = NULL, updated_at = now()
FROM unnest($1::bigint[], $2::int[]) AS r(promotion_id, batch_no)
WHERE batches.promotion_id = r.promotion_id AND batches.batch_no = r.batch_no AND NOT batches.published`

	// INCLUDING DEFAULTS, not ALL: the staging table must not carry the
	// unique index, or the COPY into it would fail again.
	qCreateStaging = `CREATE TEMP TABLE codes_staging (LIKE codes INCLUDING DEFAULTS) ON COMMIT DROP`

	qInsertFromStaging = `INSERT INTO codes (code, promotion_id)
SELECT code, promotion_id FROM codes_staging ON CONFLICT (code) DO NOTHING`

	qInsertCodesArray = `INSERT INTO codes (code, promotion_id)
SELECT unnest($1::text[]), $2::bigint ON CONFLICT (code) DO NOTHING`
)

// codeUse is UseCode (set: used + 1) and LockCode (set: used): every limit
// of the code and its promotion in one WHERE, returning the rules as read.
func codeUse(set string) string {
	return `UPDATE codes c SET used = ` + set + `
FROM promotions p
WHERE ` + sqlstore.CodeUsable + `
RETURNING c.promotion_id, c.used, p.max_usage_per_code, p.per_user_limit, COALESCE(p.eligibility, '')`
}

// insertBatches writes all batch rows of a promotion in one statement:
// $3-sized slices of [$2, $2+$4), the last one smaller, numbered from first.
func insertBatches(first string) string {
	return `INSERT INTO batches (promotion_id, batch_no, seq_start, code_count, updated_at)
SELECT $1::bigint, ` + first + ` + g, $2::bigint + g::bigint * $3::bigint, LEAST($3::bigint, $4::bigint - g::bigint * $3::bigint), $6::timestamptz
FROM generate_series(0, $5::int - 1) AS g`
}

var statements = sqlstore.Compose(sqlstore.Rebind{Prefix: "$", Now: "now()",
	Replace: []string{"published = 0", "NOT published", "active = 0", "active = false"}}, sqlstore.Statements{
	InsertBatches: insertBatches("0"),

	// ListPromotions: the lateral aggregate runs per promotion, so an
	// unfiltered page walks the primary key backwards and stops after $4 rows.
	ListPromotions: `SELECT ` + sqlstore.PromotionColsP + `,
	g.total, g.generated, g.completed, g.retrying, g.parked, g.cancelled, ` + sqlstore.StatusCols + `
FROM promotions p
CROSS JOIN LATERAL (SELECT ` + sqlstore.ProgressCols + `
	FROM batches b WHERE b.promotion_id = p.id) g
LEFT JOIN promotion_totals t ON t.promotion_id = p.id
WHERE ($1::bigint = 0 OR p.id < $1::bigint)
	AND ($2::text = '' OR strpos(lower(p.name), lower($2::text)) > 0)
	AND ($5::int = 0 OR p.active = ($5::int = 1))
	AND ($3::text = '' OR $3::text = ` + sqlstore.StatusCase("p", "g") + `)
ORDER BY p.id DESC LIMIT $4`,

	// Now: clock_timestamp(), not the transaction's start.
	Now: `SELECT clock_timestamp()`,

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

	StatsRefusalSeries: `SELECT date_trunc($2::text, hour AT TIME ZONE 'UTC') AS b, reason, sum(n)::bigint
FROM refusals WHERE promotion_id = $1 AND hour >= $3 AND hour < $4 GROUP BY 1, 2`,

	// UseCode and UseAllowance cannot over-redeem: an UPDATE (or DO UPDATE)
	// that waited for the row lock re-checks its WHERE on the committed row
	// (EvalPlanQual), so "used < max" holds on the latest count.
	UseCode: codeUse("c.used + 1"),

	AddCodeUses: `UPDATE codes c SET used = c.used + $2 FROM promotions p
WHERE c.code = $1 AND p.id = c.promotion_id AND c.used + $2 <= p.max_usage_per_code`,

	RedemptionWithEvent: `WITH r AS (` + sqlstore.InsertRedemption + `)
INSERT INTO events (stream, event_key, payload, created_at) VALUES ($18, $19, $20, $7)`,

	// Functions whose migrations say why they cannot over-redeem: 00012,
	// 00014, 00018.
	RedeemOnce: `SELECT o_outcome, COALESCE(o_promotion_id, 0), COALESCE(o_uses_left, 0)
FROM redeem_code($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,

	RedeemBatchOnce: `SELECT o_idx, o_outcome, COALESCE(o_promotion_id, 0), COALESCE(o_uses_left, 0)
FROM redeem_code_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,

	RedeemGroupOnce: `SELECT o_idx, o_outcome, COALESCE(o_promotion_id, 0), COALESCE(o_uses_left, 0)
FROM redeem_codes($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,

	MarkEventPublished: `UPDATE events SET published_at = now() WHERE seq = ANY($1) AND published_at IS NULL`,

	// IssueCodes: SKIP LOCKED passes over the codes another issuance is
	// taking, so concurrent issuances share no row and wait for none.
	IssueCodes: `UPDATE codes SET user_id = $2, issuance_id = $3, issued_at = $4
WHERE code IN (
	SELECT code FROM codes WHERE promotion_id = $1 AND user_id IS NULL AND used = 0 AND revoked_at IS NULL
	LIMIT $5 FOR UPDATE SKIP LOCKED)
RETURNING code`,

	// IssueCodesFrom: IssueCodes over the heap pages [$6, $7), a TID range
	// scan (docs/store.md, "Personal codes").
	IssueCodesFrom: `WITH pick AS (
	SELECT code, (ctid::text::point)[0]::bigint AS page FROM codes
	WHERE promotion_id = $1 AND user_id IS NULL AND used = 0 AND revoked_at IS NULL
	  AND ctid >= $6::text::tid AND ctid < $7::text::tid
	LIMIT $5 FOR UPDATE SKIP LOCKED)
UPDATE codes c SET user_id = $2, issuance_id = $3, issued_at = $4
FROM pick WHERE c.code = pick.code
RETURNING c.code, pick.page`,

	IssueCursor: `SELECT next_page FROM issue_cursors WHERE promotion_id = $1`,

	// SetIssueCursor waits for no row lock: SKIP LOCKED leaves a cursor
	// another issuance is setting as it is, and the insert of a first cursor
	// conflicts only with another such insert.
	SetIssueCursor: `WITH held AS (
	UPDATE issue_cursors SET next_page = $2
	WHERE promotion_id = (SELECT promotion_id FROM issue_cursors WHERE promotion_id = $1 FOR UPDATE SKIP LOCKED)
	RETURNING 1)
INSERT INTO issue_cursors (promotion_id, next_page)
SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM issue_cursors WHERE promotion_id = $1)
ON CONFLICT (promotion_id) DO NOTHING`,

	// AddTotals adds one delta per promotion (the arrays are in promotion
	// order, so two rollers lock totals rows in the same order).
	AddTotals: `INSERT INTO promotion_totals AS t (promotion_id, redemptions, codes_redeemed, rolled_back, updated_at)
SELECT d.id, d.r, d.c, d.b, $5 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) AS d(id, r, c, b)
ORDER BY d.id
ON CONFLICT (promotion_id) DO UPDATE SET redemptions = t.redemptions + EXCLUDED.redemptions,
	codes_redeemed = t.codes_redeemed + EXCLUDED.codes_redeemed,
	rolled_back = t.rolled_back + EXCLUDED.rolled_back, updated_at = EXCLUDED.updated_at`,

	// LockCode (used = used takes the row lock), then CodeLoad in a new
	// statement: why holds cannot over-allocate is told at sqlstore's take.
	LockCode: codeUse("c.used"),

	// CancelBatches: SKIP LOCKED passes over a chunk in flight's batch row
	// (the flag refuses that chunk and its worker marks the batch).
	CancelBatches: `UPDATE batches SET state = 'cancelled', updated_at = $2
WHERE (promotion_id, batch_no) IN (
	SELECT promotion_id, batch_no FROM batches
	WHERE promotion_id = $1 AND done < code_count AND state <> 'cancelled'
	FOR UPDATE SKIP LOCKED)`,

	InsertTopUpBatches: insertBatches("$7::int"),

	// ReserveOnce, ConfirmOnce and RollbackOnce: the functions of migration
	// 00015, which says why none of them can over-redeem or over-reserve at
	// READ COMMITTED.
	ReserveOnce: `SELECT o_outcome, COALESCE(o_promotion_id, 0) FROM reserve_code($1, $2, $3, $4, $5, $6, $7)`,

	ConfirmOnce: `SELECT o_outcome, COALESCE(o_promotion_id, 0), COALESCE(o_code, ''), COALESCE(o_user, ''),
	COALESCE(o_uses_left, 0)
FROM confirm_reservation($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,

	RollbackOnce: `SELECT f.o_outcome, ` + sqlstore.RedemptionCols + `
FROM rollback_redemption($1, $2, $3, $4, $5, $6, $7) f CROSS JOIN LATERAL (SELECT (f.o_r).*) r`,

	Purge: map[string]string{
		// With the redemptions, their idempotency records: a retry with a
		// purged key redeems anew instead of finding a redemption gone.
		"redemptions": `WITH d AS (
	DELETE FROM redemptions WHERE id IN (SELECT id FROM redemptions WHERE promotion_id = $1 LIMIT $2)
	RETURNING idempotency_key
), k AS (
	DELETE FROM idempotency_keys WHERE idem_key IN (SELECT idempotency_key FROM d WHERE idempotency_key IS NOT NULL)
)
SELECT 1 FROM d`,
	},
})
