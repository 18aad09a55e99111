package sqlstore

// Statements is a dialect's statement text. A field with shared text
// (queries.go's portable) is documented by it: its $n are the arguments in
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
