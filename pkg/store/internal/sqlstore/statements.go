package sqlstore

// Statements is a dialect's statement text for the core's algorithms. Each
// field says the arguments it takes, in order, and the columns it returns.
// promotionCols stands for id, name, kind, code_count, format, vanity_code,
// max_usage_per_code, per_user_limit, starts_at, expires_at, counter_name,
// seq_start, created_at; batchCols for promotion_id, batch_no, seq_start,
// code_count, done, state, last_error. Times are arguments through
// Dialect.Time and come back as time.Time or ISO 8601 text; batch numbers
// are int32, codes go through Dialect.VarChar.
type Statements struct {
	// Reserve (counter name, n) reserves n sequence numbers, creating the
	// counter at 0 if absent, and returns the first.
	Reserve string
	// PromotionByKey (idempotency key): promotionCols, request_hash, active.
	PromotionByKey string
	// InsertPromotion (name, kind, code_count, format, vanity_code,
	// max_usage_per_code, per_user_limit, starts_at, expires_at,
	// counter_name, seq_start, idempotency_key, request_hash, created_at,
	// key_fingerprint) returns the id.
	InsertPromotion string
	// InsertBatches (promotion id, seq_start, batch size, code_count, batch
	// count, created_at) writes all batch rows in one statement.
	InsertBatches string
	// InsertCode (code, promotion id) writes a vanity code.
	InsertCode string
	// PromotionStatus (id): promotionCols, active, delete_requested_at,
	// deleted_at, redemptions, codes_redeemed, rolled_back.
	PromotionStatus string
	// Progress (id): batches, generated codes, completed, retrying, parked,
	// cancelled.
	Progress string
	// PromotionExists (id): a boolean.
	PromotionExists string
	// ExportCodes (id): code.
	ExportCodes string
	// PendingBatches (limit): batchCols of unpublished batches, oldest first.
	PendingBatches string
	// ClaimPendingBatches (limit, lease until, now) leases unpublished
	// batches and returns their batchCols.
	ClaimPendingBatches string
	// LoadBatch (promotion id, batch no): promotionCols, batch_no, seq_start,
	// code_count, done, state, last_error (NULL: no such batch),
	// key_fingerprint.
	LoadBatch string
	// Advance (promotion id, batch no, count, from) moves done from from to
	// from+count, or touches nothing, and returns the new done.
	Advance string
	// BatchProgress (promotion id, batch no): done, code_count.
	BatchProgress string
	// PromotionLive (promotion id): a boolean, false once the promotion's
	// cancel flag is set or its deletion requested; the last statement of a
	// chunk's transaction (a plain read that waits for nothing).
	PromotionLive string
	// CancelBatch (promotion id, batch no) marks an unfinished batch
	// cancelled (after its chunk was refused by PromotionLive).
	CancelBatch string
	// SetBatchState (promotion id, batch no, state, last error) leaves a
	// finished or cancelled batch alone.
	SetBatchState string
	// BatchExists (promotion id, batch no): a boolean.
	BatchExists string
	// IncompleteBatches (promotion id) and AllIncompleteBatches (): batchCols
	// in order.
	IncompleteBatches, AllIncompleteBatches string
	// GetCode (code): code, promotion_id, used, max_usage_per_code.
	GetCode string
	// ListPromotions (before id, name fragment, status, limit, active filter):
	// promotionCols, the Progress columns, then PromotionStatus's tail.
	ListPromotions string
	// OldestUnpublished (): created_at of the oldest unpublished batch's
	// promotion.
	OldestUnpublished string
	// StatsTotals (id): redemptions, rolled back, codes redeemed.
	StatsTotals string
	// StatsSeries (id, "hour" or "day", from, to): bucket start,
	// redemptions, rolled back since, rollbacks; oldest first, over [from,
	// to), a row for every bucket with activity or refusals.
	// StatsRefusalSeries (the same arguments): bucket start, reason, count.
	StatsSeries, StatsRefusalSeries string
	// StatsTopUsers (id, limit): user_id, redemptions.
	StatsTopUsers string
	// ClaimUncounted (limit, now) marks events counted: seq, stream,
	// payload, created_at.
	ClaimUncounted string
	// AddTotals (promotion id, redemptions, codes redeemed, rolled back,
	// now), or see Dialect.AddTotalsArgs.
	AddTotals string
	// AddRefusals (promotion id, reason, hour, n).
	AddRefusals string
	// RefusalsByReason (promotion id): reason, count.
	RefusalsByReason string
}
