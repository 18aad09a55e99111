package sqlstore

// Statements is a dialect's statement text for the core's algorithms. Each
// field says the arguments it takes, in order, and the columns it returns;
// promotionCols, batchCols, redemptionCols, reservationCols and topUpCols
// stand for the lists PromotionCols, BatchCols, ... (queries.go), the last
// ones with an empty text for a NULL one. Times are arguments through
// Dialect.Time and come back as time.Time or ISO 8601 text; batch numbers
// are int32; codes, redemption, reservation and audit ids, cursors over
// them, streams, actions and hashes go through Dialect.VarChar; an optional
// text ("" for none) is NULL. "(-> n)" marks a statement whose affected row
// count the core reads; "(row)" one whose row (or its absence) it reads.
type Statements struct {
	// Reserve (counter name, n) reserves n sequence numbers, creating the
	// counter at 0 if absent, and returns the first.
	Reserve string
	// PromotionByKey (idempotency key): promotionCols, request_hash, active.
	PromotionByKey string
	// InsertPromotion (name, kind, code_count, format, vanity_code,
	// max_usage_per_code, per_user_limit, starts_at, expires_at,
	// counter_name, seq_start, idempotency_key, request_hash, created_at,
	// key_fingerprint, eligibility) returns the id.
	InsertPromotion string
	// InsertBatches (promotion id, seq_start, batch size, code_count, batch
	// count, created_at) writes all batch rows in one statement;
	// InsertTopUpBatches takes the first batch number as a seventh.
	InsertBatches, InsertTopUpBatches string
	// InsertCode (code, promotion id) writes a vanity code.
	InsertCode string
	// PromotionStatus (id): promotionCols, active, delete_requested_at,
	// deleted_at, redemptions, codes_redeemed, rolled_back.
	PromotionStatus string
	// Progress (id): batches, generated codes, completed, retrying, parked,
	// cancelled.
	Progress string
	// PromotionExists (id) and BatchExists (promotion id, batch no): a
	// boolean.
	PromotionExists, BatchExists string
	// ExportCodes (id): code.
	ExportCodes string
	// PendingBatches (limit): batchCols of unpublished batches, oldest first.
	PendingBatches string
	// ClaimPendingBatches (limit, lease) leases unpublished batches for the
	// lease (Dialect.Lease) on the database's clock and returns their
	// batchCols.
	ClaimPendingBatches string
	// LoadBatch (promotion id, batch no): promotionCols, batch_no, seq_start,
	// code_count, done, state, last_error (NULL: no such batch),
	// key_fingerprint.
	LoadBatch string
	// Advance (promotion id, batch no, count, from) moves done from from to
	// from+count, or touches nothing, and returns the new done;
	// BatchProgress (promotion id, batch no): done, code_count.
	Advance, BatchProgress string
	// PromotionLive (promotion id): a boolean, false once the promotion's
	// cancel flag is set or its deletion requested; the last statement of a
	// chunk's transaction (a plain read that waits for nothing).
	PromotionLive string
	// CancelBatch (promotion id, batch no) marks an unfinished batch
	// cancelled (after its chunk was refused by PromotionLive);
	// SetBatchState (promotion id, batch no, state, last error) leaves a
	// finished or cancelled batch alone.
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
	// Backlog (): the open generation work, except that of promotions being
	// deleted: unfinished batches not parked nor cancelled, parked ones,
	// the codes still to write of the first.
	Backlog string
	// OldestUnpublished (): created_at of the oldest unpublished batch's
	// promotion.
	OldestUnpublished string
	// CodeSpaces (after id, limit): id, kind, format (''), vanity_code ('');
	// SetActive (id, active) (-> n).
	CodeSpaces, SetActive string

	// StatsTotals (id): redemptions, rolled back, codes redeemed;
	// StatsTopUsers (id, limit): user_id, redemptions.
	StatsTotals, StatsTopUsers string
	// StatsSeries (id, "hour" or "day", from, to): bucket start,
	// redemptions, rolled back since, rollbacks; oldest first, over [from,
	// to), a row for every bucket with activity or refusals.
	// StatsRefusalSeries (the same arguments): bucket start, reason, count.
	StatsSeries, StatsRefusalSeries string
	// StatsOrders (id): currency, redemptions, order value, discount of
	// the live redemptions that carried an order; StatsSegments (id):
	// segment, currency (''), redemptions, order value, discount.
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
	// idempotency record (-> n: 0, or a unique violation, when the key
	// exists). A redemption claims its key with its own id: the record is
	// complete if the redemption commits, and SaveOutcome runs only on a
	// refusal, which clears the id.
	ClaimKey string
	// StoredOutcome and StoredReservationOutcome (key): request_hash,
	// refused (''), redemption_id or reservation_id ('').
	StoredOutcome, StoredReservationOutcome string
	// SaveOutcome and SaveReservationOutcome (key, refused, redemption or
	// reservation id) complete the record.
	SaveOutcome, SaveReservationOutcome string
	// UseCode (code, now, user) adds a use if the code is not revoked, not
	// bound to another user, its promotion is active, inside its window, and
	// the code has a use left; LockCode (code, now, user) takes the row's
	// lock on the same conditions without adding one (row): promotion_id,
	// used, max_usage_per_code, per_user_limit, eligibility ('').
	UseCode, LockCode string
	// UnuseCode (code) takes a use back (never below 0).
	UnuseCode string
	// AddCodeUses (code, n) adds n uses while they stay within the code's
	// maximum (-> n): a combined redemption's uses, under the lock LockCode
	// took.
	AddCodeUses string
	// UseAllowance (promotion id, user, limit) adds a use to the user's
	// allowance row while below limit, creating it at 1; LockAllowance
	// locks it while below limit, creating it at 0 (row: used). A dialect
	// without an upsert sets the Insert statements (promotion id, user),
	// each inserting the row if absent (-> n), which the core runs when the
	// update matched no row; their unique violation (a concurrent first
	// use) sends it back to the update once.
	UseAllowance, LockAllowance, UseAllowanceInsert, LockAllowanceInsert string
	// CodeLoad (code, now, excluded reservation id): used plus live
	// reservations. AllowanceLoad (promotion id, user, now, excluded
	// reservation id): the user's used plus live reservations.
	CodeLoad, AllowanceLoad string
	// UseCodeLoad (code, now, user) and UseAllowanceLoad (promotion id,
	// user, limit, now), if set, are UseCode and UseAllowance returning as
	// well, as a last column, what CodeLoad and AllowanceLoad would read
	// next with no reservation excluded: one statement instead of two for a
	// redemption. Only for a database whose writes are serialised (SQLite,
	// one writer): there a subquery in the statement sees every committed
	// hold, where READ COMMITTED keeps the statement's first snapshot (see
	// take).
	UseCodeLoad, UseAllowanceLoad string
	// InsertRedemption (id, promotion id, code, user, order id, metadata,
	// redeemed_at, uses_left, idempotency key, client address, user agent,
	// order amount, order currency, discount, first order, segments,
	// country) writes the audit row; InsertRedemptionSegment (redemption id,
	// promotion id, segment) one of its segments;
	// InsertEvent (stream, key, payload, created_at) an outbox row.
	// RedemptionWithEvent, if set, writes both in one statement: the
	// redemption's arguments, then stream, key, payload.
	InsertRedemption, InsertEvent, RedemptionWithEvent, InsertRedemptionSegment string
	// RedeemOnce, if set, is a whole redemption in one statement run in
	// autocommit (one round trip): a server-side function or batch that
	// runs the steps of the core's redemption in the same lock order
	// (docs/store.md, "One round trip per redemption"). Arguments: id, code, user, order id, metadata, redeemed_at,
	// idempotency key ('' for none), request hash, stream, and the event's
	// payload around what only the database learns (EventParts: head,
	// body), client address (''), user agent (''). A code bound to another
	// user is refused not_your_code; a promotion with eligibility rules
	// aborts it (Dialect.StatementPath) and the core runs its statement
	// path; a request with shopper fields never takes it. Row: outcome
	// ("redeemed", "replay" for a key already recorded, or the refusal
	// reason), promotion id (0 when the code does not exist, or on a
	// replay), uses left.
	RedeemOnce string
	// RedeemBatchOnce, if set, is a combined redemption of one code
	// (RedeemBatch) in one statement run in autocommit, for a dialect with
	// Arrays: code, now, then one array per field of the requests in
	// arrival order (ids, users, order ids, metadata, redeemed_at, keys,
	// hashes), the stream, the events' heads and bodies (EventParts), the
	// client addresses and user agents (''). Rows:
	// index (1-based), outcome ("redeemed", "replay" or the refusal reason),
	// promotion id (0: none), uses left. No key appears twice. A code bound
	// to a user or a promotion with eligibility rules aborts it, having
	// written nothing (Dialect.StatementPath): the core then redeems the
	// requests one by one.
	RedeemBatchOnce string
	// RedeemGroupOnce, if set, is group commit in one statement run in
	// autocommit, for a dialect with Arrays (NewRedeemGroupOnce): RedeemOnce
	// for each of n redemptions of any codes, in array order, in one
	// transaction. One array per RedeemOnce argument (ids, codes, users,
	// order ids, metadata, redeemed_at, keys, hashes), the stream, then
	// arrays of heads, bodies, client addresses and user agents. Rows:
	// index (1-based), outcome, promotion id (0: none), uses left, as
	// RedeemOnce's. Any error (a deadlock, a promotion with rules) aborts
	// it whole, having written nothing.
	RedeemGroupOnce string
	// The reservation's, confirmation's and rollback's one-statement forms.
	OnceStatements
	// CodeState (code, user, now): promotionCols, code, used, the user's
	// used, active, revoked, deletion requested, live reservations of the
	// code, of the user in the promotion, the owner ('').
	CodeState string
	// MarkRolledBack (id, now, reason) marks a redemption rolled back if it
	// is not (row: redemptionCols); Redemption (id): redemptionCols.
	MarkRolledBack, Redemption string
	// ReleaseCode (code, promotion id) takes a use back from that row
	// (row: used); RecordCodeRelease (id, release) stores what it did;
	// ReleaseAllowance (promotion id, user) gives the user a use back.
	ReleaseCode, RecordCodeRelease, ReleaseAllowance string
	// The audit trail, newest first: Redemptions (promotion id, limit,
	// before id, from id), RedemptionsByUser and RedemptionsByCode (the
	// same, then the user or the code), UserRedemptions (user, limit,
	// before id, from id): redemptionCols. The limit Dialect.AllRows means
	// every row; a before id '' none.
	Redemptions, RedemptionsByUser, RedemptionsByCode, UserRedemptions string
	// ClaimEvents (limit, lease) leases unpublished events on the
	// database's clock: seq, stream, event_key, payload.
	ClaimEvents string
	// MarkEventPublished (seq), or (seqs) with Dialect.Arrays, stamps the
	// database's clock (the retention that prunes events counts from it);
	// PruneEvents (before, limit) (-> n).
	MarkEventPublished, PruneEvents string

	// InsertReservation (id, promotion id, code, user, created_at,
	// expires_at, shopper JSON or NULL); Reservation (id): reservationCols;
	// ReservationShopper (id) (-> shopper JSON or NULL), read by the
	// confirmation only.
	InsertReservation, Reservation, ReservationShopper string
	// MarkConfirmed (id, redemption id, order id, now) settles a held
	// reservation (-> n); MarkReleased (id, now) too (row: reservationCols).
	MarkConfirmed, MarkReleased string
	// SweepReservations and SweepIdempotencyKeys (before, limit) (-> n).
	SweepReservations, SweepIdempotencyKeys string
	// CodeReservations (code, promotion id, now, limit): reservationCols of
	// live ones, soonest to expire first.
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
	// expires_at, active; NULL: unchanged; set eligibility, eligibility)
	// applies a change to a promotion not being deleted whose resulting
	// window is valid (row: id, name, starts_at, expires_at, active,
	// eligibility ('')).
	UpdatePromotion string
	// PromotionState (id): deletion requested, cancelled; LockPromotion the
	// same, locking the row to the end of the transaction.
	PromotionState, LockPromotion string
	// FlagCancelled (id, now) sets the cancel flag of a generated promotion
	// with an unfinished batch, not cancelled nor being deleted (-> n).
	// CancelBatches (id, now) marks the unfinished batches no transaction
	// holds cancelled (-> n).
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
	// MarkPurge (id, before, now) marks a promotion whose window ended
	// before before for deletion (keeping an earlier request's time) and
	// switches it off (-> n; 0 when its window ends later, e.g. an admin
	// extended it since the purge listed it).
	MarkPurge string
	// Purge (promotion id, limit), by table ("codes", "user_uses",
	// "reservations": -> n; "redemptions": a row per redemption deleted,
	// whose idempotency records go with it). PurgeRedemptionKeys (the same
	// arguments), if set, deletes those records first in the same
	// transaction.
	Purge               map[string]string
	PurgeRedemptionKeys string

	// Personal codes. IssuablePromotion (id): kind, deletion requested.
	// IssueCodes (promotion id, user, issuance id, now, n) binds up to n
	// unassigned codes (not used, not revoked) to the user, skipping those
	// a concurrent issuance holds: code. IssuedCodes (user, issuance id):
	// code, in order. SaveIssuanceOutcome (key, issuance id);
	// StoredIssuanceOutcome (key): request_hash, issuance_id (''). UserCodes
	// (user, limit): code, promotion_id, name, issued_at, used,
	// max_usage_per_code, revoked, active, deletion requested, starts_at,
	// expires_at; newest issued first.
	IssuablePromotion, IssueCodes, IssuedCodes string
	// IssueCodesFrom (promotion id, user, issuance id, now, n, from, to),
	// PostgreSQL's instead of IssueCodes when set: the same, reading only
	// the heap pages [from, to) (a TID range): code, page. IssueCursor
	// (promotion id): the page where the promotion's last issuance began
	// taking codes (no row: none recorded). SetIssueCursor (promotion id,
	// page) records it without waiting for any lock (a hint: a concurrent
	// issuance that holds it keeps its own).
	IssueCodesFrom, IssueCursor, SetIssueCursor string
	SaveIssuanceOutcome, StoredIssuanceOutcome  string
	UserCodes                                   string
}
