package sqlstore

// Statements is a dialect's statement text. Each field gives its arguments,
// in order, and the columns it returns; promotionCols, batchCols, ... stand
// for PromotionCols, BatchCols, ... (queries.go), ” for a NULL text. Times go
// through Dialect.Time, batch numbers are int32, ids, codes, streams and
// hashes go through Dialect.VarChar, an optional text "" is NULL. "(-> n)":
// the core reads the affected row count; "(row)": the row or its absence.
type Statements struct {
	// Reserve (counter, n) reserves n numbers (a new counter starts at 0):
	// the first.
	Reserve string
	// PromotionByKey (idempotency key): promotionCols, request_hash, active.
	PromotionByKey string
	// InsertPromotion (its columns, in the order of queries.go's): the id.
	InsertPromotion string
	// InsertBatches (promotion id, seq_start, batch size, code_count, batch
	// count, created_at) writes every batch row; InsertTopUpBatches takes
	// the first batch number too.
	InsertBatches, InsertTopUpBatches string
	// InsertCode (code, promotion id) writes a vanity code.
	InsertCode string
	// PromotionStatus (id): promotionCols, active, delete_requested_at,
	// deleted_at, redemptions, codes_redeemed, rolled_back.
	PromotionStatus string
	// Progress (id): batches, generated codes, completed, retrying, parked,
	// cancelled.
	Progress string
	// PromotionExists (id), BatchExists (promotion id, batch no): a boolean.
	PromotionExists, BatchExists string
	// ExportCodes (id): code.
	ExportCodes string
	// PendingBatches (limit): batchCols of unpublished batches, oldest first.
	PendingBatches string
	// ClaimPendingBatches (limit, lease) leases them on the database's
	// clock (Dialect.Lease): batchCols.
	ClaimPendingBatches string
	// LoadBatch (promotion id, batch no): promotionCols, batch_no, seq_start,
	// code_count, done, state, last_error (NULL: no such batch),
	// key_fingerprint.
	LoadBatch string
	// Advance (promotion id, batch no, count, from) moves done from from to
	// from+count, or touches nothing, and returns the new done;
	// BatchProgress (promotion id, batch no): done, code_count.
	Advance, BatchProgress string
	// PromotionLive (promotion id): false once cancelled or being deleted;
	// a chunk's last statement (a plain read: it waits for nothing).
	PromotionLive string
	// CancelBatch (promotion id, batch no) cancels an unfinished batch;
	// SetBatchState (promotion id, batch no, state, last error) leaves a
	// finished or cancelled one alone.
	CancelBatch, SetBatchState string
	// IncompleteBatches (promotion id) and AllIncompleteBatches (): batchCols
	// in order.
	IncompleteBatches, AllIncompleteBatches string
	// GetCode (code): code, promotion_id, used, max_usage_per_code.
	GetCode string
	// ListPromotions (before id, name fragment, status, limit, active filter):
	// promotionCols, the Progress columns, then PromotionStatus's tail.
	ListPromotions string
	// Now (): the database's clock at the call.
	Now string
	// Backlog (): of promotions not being deleted, the unfinished batches
	// neither parked nor cancelled, the parked ones, the first's codes left.
	Backlog string
	// OldestUnpublished (): the oldest unpublished batch's promotion's
	// created_at.
	OldestUnpublished string
	// CodeSpaces (after id, limit): id, kind, format (''), vanity_code ('');
	// SetActive (id, active) (-> n).
	CodeSpaces, SetActive string

	// StatsTotals (id): redemptions, rolled back, codes redeemed;
	// StatsTopUsers (id, limit): user_id, redemptions.
	StatsTotals, StatsTopUsers string
	// StatsSeries (id, "hour" or "day", from, to): bucket, redemptions,
	// rolled back since, rollbacks, oldest first, a row per bucket of [from,
	// to) with activity or refusals; StatsRefusalSeries (the same): bucket,
	// reason, count.
	StatsSeries, StatsRefusalSeries string
	// StatsOrders (id): currency, redemptions, order value, discount (live
	// redemptions with an order); StatsSegments (id): segment, then the same.
	StatsOrders, StatsSegments string
	// ClaimUncounted (limit, now) marks events counted: seq, stream,
	// payload, created_at.
	ClaimUncounted string
	// AddTotals (promotion id, redemptions, codes redeemed, rolled back,
	// now), once per promotion (or once with arrays: Dialect.Arrays).
	AddTotals string
	// AddRefusals (promotion id, reason, hour, n); RefusalsByReason
	// (promotion id): reason, count.
	AddRefusals, RefusalsByReason string

	// ClaimKey (key, request hash, now, redemption id or '') inserts an
	// idempotency record (-> n: 0, or a unique violation, if the key exists).
	// A redemption claims with its own id, so SaveOutcome runs only on a
	// refusal (which clears it).
	ClaimKey string
	// StoredOutcome and StoredReservationOutcome (key): request_hash,
	// refused (''), redemption_id or reservation_id ('').
	StoredOutcome, StoredReservationOutcome string
	// SaveOutcome and SaveReservationOutcome (key, refused, redemption or
	// reservation id) complete the record.
	SaveOutcome, SaveReservationOutcome string
	// UseCode (code, now, user) adds a use to a code not revoked, not bound
	// to another user, with a use left, of an active promotion in its
	// window; LockCode locks the row on the same conditions, adding none
	// (row): promotion_id, used, max_usage_per_code, per_user_limit,
	// eligibility ('').
	UseCode, LockCode string
	// UnuseCode (code) takes a use back (never below 0).
	UnuseCode string
	// AddCodeUses (code, n) adds n uses within the maximum (-> n).
	AddCodeUses string
	// UseAllowance (promotion id, user, limit) adds a use below limit
	// (a new row starts at 1); LockAllowance locks the row below limit (a
	// new one at 0) (row: used). Without an upsert, the Insert statements
	// (promotion id, user) insert an absent row (-> n) after the update
	// matched none; a unique violation sends the core back to the update.
	UseAllowance, LockAllowance, UseAllowanceInsert, LockAllowanceInsert string
	// CodeLoad (code, now, excluded reservation id) and AllowanceLoad
	// (promotion id, user, now, excluded id): used plus live reservations.
	CodeLoad, AllowanceLoad string
	// UseCodeLoad (code, now, user) and UseAllowanceLoad (promotion id,
	// user, limit, now), if set, are UseCode and UseAllowance returning the
	// load too (a last column). Only where writes are serialised (SQLite):
	// under READ COMMITTED the subquery would miss holds (see take).
	UseCodeLoad, UseAllowanceLoad string
	// InsertRedemption (its columns, in the order of queries.go's) writes
	// the audit row, InsertRedemptionSegment (redemption id, promotion id,
	// segment) a segment, InsertEvent (stream, key, payload, created_at) an
	// outbox row; RedemptionWithEvent, if set, both (then stream, key,
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
	// The reservation's, confirmation's and rollback's one-statement forms.
	OnceStatements
	// CodeState (code, user, now): what stmts.CodeState scans.
	CodeState string
	// MarkRolledBack (id, now, reason) marks a redemption rolled back if it
	// is not (row: redemptionCols); Redemption (id): redemptionCols.
	MarkRolledBack, Redemption string
	// ReleaseCode (code, promotion id) takes a use back (row: used);
	// RecordCodeRelease (id, release); ReleaseAllowance (promotion id, user).
	ReleaseCode, RecordCodeRelease, ReleaseAllowance string
	// The audit trail, newest first: Redemptions (promotion id, limit,
	// before id (''), from id), ByUser and ByCode (then user or code),
	// UserRedemptions (user, ...): redemptionCols. Limit Dialect.AllRows:
	// all.
	Redemptions, RedemptionsByUser, RedemptionsByCode, UserRedemptions string
	// ClaimEvents (limit, lease) leases unpublished events on the
	// database's clock: seq, stream, event_key, payload.
	ClaimEvents string
	// MarkEventPublished (seq, or seqs with Arrays) stamps the database's
	// clock, which pruning counts from; PruneEvents (before, limit) (-> n).
	MarkEventPublished, PruneEvents string

	// InsertReservation (id, promotion id, code, user, created_at,
	// expires_at, shopper JSON or NULL); Reservation (id): reservationCols;
	// ReservationShopper (id): the shopper JSON or NULL.
	InsertReservation, Reservation, ReservationShopper string
	// MarkConfirmed (id, redemption id, order id, now) settles a held
	// reservation (-> n); MarkReleased (id, now) too (row: reservationCols).
	MarkConfirmed, MarkReleased string
	// SweepReservations and SweepIdempotencyKeys (before, limit) (-> n).
	SweepReservations, SweepIdempotencyKeys string
	// CodeReservations (code, promotion id, now, limit): live ones'
	// reservationCols, soonest to expire first.
	CodeReservations string

	// RevokeCode (code, now, reason) revokes a code of a promotion not being
	// deleted (row: promotion_id); Revocation (code): promotion_id,
	// revoked_at, revoke_reason ('').
	RevokeCode, Revocation string
	// InsertAudit (id, at, actor, action, promotion id, code, detail);
	// AuditLog (promotion id, limit, before id): id, at, actor, action,
	// promotion_id, code (''), detail ('').
	InsertAudit, AuditLog string
	// UpdatePromotion (id, name, set starts_at, starts_at, set expires_at,
	// expires_at, active (NULL: unchanged), set eligibility, eligibility)
	// changes a promotion not being deleted if its window stays valid (row:
	// id, name, starts_at, expires_at, active, eligibility ('')).
	UpdatePromotion string
	// PromotionState (id): deletion requested, cancelled; LockPromotion the
	// same, locking the row to the end of the transaction.
	PromotionState, LockPromotion string
	// FlagCancelled (id, now) flags a generated promotion with an unfinished
	// batch, not cancelled nor being deleted (-> n); CancelBatches (id, now)
	// cancels the unfinished batches no transaction holds (-> n).
	FlagCancelled, CancelBatches string
	// GrowPromotion (id, n) adds n to a generated promotion's code_count
	// (row: counter_name, code_count); NextNumbers (id): the next batch
	// number and top-up number.
	GrowPromotion, NextNumbers string
	// InsertTopUp (promotion id, topup_no, code_count, seq_start,
	// first_batch_no, batch_count, created_at, idempotency key, request
	// hash); TopUps (id): topUpCols, oldest first; StoredTopUp (id, key):
	// topUpCols, request_hash.
	InsertTopUp, TopUps, StoredTopUp string
	// ExpiredPromotions (before) and DeletionsPending (): ids in order.
	ExpiredPromotions, DeletionsPending string
	// PurgeCount (id): codes, redemptions.
	PurgeCount string
	// RequestDeletion (id, now) marks a promotion for deletion and switches
	// it off (-> n); FinishDeletion (id, now) marks it deleted once no code
	// is left (-> n); Deletion (id): delete_requested_at, deleted_at.
	RequestDeletion, FinishDeletion, Deletion string
	// MarkPurge (id, before, now) does RequestDeletion's (keeping an
	// earlier request's time) if the window ended before before (-> n).
	MarkPurge string
	// Purge (promotion id, limit) by table (-> n; "redemptions": a row per
	// redemption deleted, its idempotency record with it, or first by
	// PurgeRedemptionKeys, if set, in the same transaction).
	Purge               map[string]string
	PurgeRedemptionKeys string

	// Personal codes. IssuablePromotion (id): kind, deleting. IssueCodes
	// (promotion id, user, issuance id, now, n) binds up to n unassigned
	// codes (unused, not revoked) a concurrent issuance does not hold: code.
	// IssuedCodes (user, issuance id): code. SaveIssuanceOutcome (key,
	// issuance id); StoredIssuanceOutcome (key): request_hash, issuance_id.
	// UserCodes (user, limit): its columns, newest issued first.
	IssuablePromotion, IssueCodes, IssuedCodes string
	// IssueCodesFrom (IssueCodes', then pages from, to), if set, reads only
	// the heap pages [from, to): code, page. IssueCursor (promotion id): the
	// page the last issuance began at (a hint); SetIssueCursor (promotion
	// id, page) records it waiting for no lock.
	IssueCodesFrom, IssueCursor, SetIssueCursor string
	SaveIssuanceOutcome, StoredIssuanceOutcome  string
	UserCodes                                   string
}
