package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// LifecycleTx is one dialect's statements of admin changes (revocation,
// promotion updates) and their audit log, bound to the open transaction;
// part of RedemptionTx.
type LifecycleTx interface {
	// RevokeCode marks code revoked if it is not; ok is false when it
	// matched no row (no such code, or revoked before).
	RevokeCode(ctx context.Context, code string, now time.Time, reason string) (promotionID int64, ok bool, err error)
	// Revocation reads a code's revocation; found is false when there is no
	// such code, RevokedAt nil when it is not revoked.
	Revocation(ctx context.Context, code string) (r promo.Revocation, revoked, found bool, err error)
	// InsertAudit writes an audit log row.
	InsertAudit(ctx context.Context, a promo.AuditEntry) error
	PromotionUpdater
	TopUpTx
	DeletionTx
}

// Revoke makes one code unusable from req.Now on, with an audit row and a
// code.revoked event in the same transaction. A conditional update lets one
// revocation through; revoking a revoked code answers it again (replayed),
// writing nothing. A code of a promotion whose deletion was requested is
// refused (promotion_deleted). Redemptions, reservations and confirmations refuse a
// revoked code in their own conditional statements (revoked_at IS NULL).
func Revoke(ctx context.Context, tx RedemptionTx, req promo.RevokeRequest) (promo.Revocation, bool, error) {
	now := req.Now.UTC().Truncate(time.Microsecond)
	pid, ok, err := tx.RevokeCode(ctx, req.Code, now, req.Reason)
	if err != nil {
		return promo.Revocation{}, false, fmt.Errorf("revoke code: %w", err)
	}
	if !ok {
		r, revoked, found, err := tx.Revocation(ctx, req.Code)
		switch {
		case err != nil:
			return r, false, fmt.Errorf("read revocation: %w", err)
		case !found:
			return r, false, CodeNotFound()
		}
		st, err := tx.PromotionState(ctx, r.PromotionID)
		switch {
		case err != nil:
			return r, false, fmt.Errorf("look up promotion: %w", err)
		case st.Deleting:
			return r, false, PromotionDeleted(r.PromotionID)
		case !revoked:
			return r, false, fmt.Errorf("code %s neither revoked nor revocable", req.Code)
		}
		return r, true, nil
	}
	rev := promo.Revocation{Code: req.Code, PromotionID: pid, RevokedAt: now, Reason: req.Reason}
	detail, err := json.Marshal(map[string]string{"reason": req.Reason})
	if err != nil {
		return rev, false, err
	}
	if err := audit(ctx, tx, promo.AuditEntry{ID: req.AuditID, At: now, Actor: req.Actor,
		Action: promo.ActionCodeRevoked, PromotionID: pid, Code: req.Code, Detail: detail}); err != nil {
		return rev, false, err
	}
	return rev, false, nil
}

// audit writes an audit row and its event on the redemptions topic.
func audit(ctx context.Context, tx RedemptionTx, a promo.AuditEntry) error {
	if err := tx.InsertAudit(ctx, a); err != nil {
		return fmt.Errorf("insert audit row: %w", err)
	}
	ev, err := promo.NewLifecycleEvent(a)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", a.Action, err)
	}
	if err := tx.InsertEvent(ctx, ev); err != nil {
		return fmt.Errorf("insert %s event: %w", a.Action, err)
	}
	return nil
}

// RunRevoke is a store's RevokeCode: Revoke in one transaction.
func RunRevoke(ctx context.Context, inTx TxFunc, req promo.RevokeRequest) (promo.Revocation, bool, error) {
	switch {
	case req.Code == "":
		return promo.Revocation{}, false, promo.FieldErrorf("code", "is required")
	case req.AuditID == "" || req.Actor == "" || req.Now.IsZero():
		return promo.Revocation{}, false, promo.Errorf(promo.EInvalid, "audit id, actor and time are required")
	}
	var (
		r        promo.Revocation
		replayed bool
	)
	err := inTx(ctx, func(tx RedemptionTx) error {
		var err error
		r, replayed, err = Revoke(ctx, tx, req)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("revoke code %q: %w", req.Code, err)
	}
	return r, replayed, err
}

// PromotionUpdater is the statement of a promotion update; part of
// LifecycleTx.
type PromotionUpdater interface {
	// UpdatePromotion applies u in one conditional statement that also
	// requires the resulting window to be valid (startsAt < expiresAt when
	// both are set) and no deletion requested; ok is false when it matched
	// no row.
	UpdatePromotion(ctx context.Context, u promo.PromotionUpdate) (s promo.PromotionSettings, ok bool, err error)
	// PromotionState reads a promotion's lifecycle flags (a plain read).
	PromotionState(ctx context.Context, id int64) (PromotionState, error)
	// FlagCancelled sets the promotion's cancelled flag if, in one
	// conditional statement, it is a generated promotion with an unfinished
	// batch, not cancelled and no deletion requested; false when it matched
	// no row. Workers read the flag before committing each chunk, so no
	// chunk commits after it; it waits for no worker.
	FlagCancelled(ctx context.Context, promotionID int64, now time.Time) (bool, error)
	// CancelBatches marks the promotion's unfinished batches cancelled,
	// skipping rows another transaction holds (a chunk in flight: the
	// flag refuses it, and its worker marks its batch): it never waits
	// for a worker. It returns how many it marked.
	CancelBatches(ctx context.Context, promotionID int64, now time.Time) (int64, error)
}

// PromotionState is a promotion's lifecycle flags.
type PromotionState struct {
	Found     bool
	Deleting  bool // deletion requested (final)
	Cancelled bool // generation cancelled (final)
}

// PromotionDeleted is the refusal of any change to a promotion whose
// deletion was requested.
func PromotionDeleted(id int64) error {
	return promo.Refusal(promo.ReasonPromotionDeleted,
		"promotion %d is deleted (its deletion was requested): it takes no change", id)
}

// UpdatePromotion changes a promotion's name, window or active flag, with an
// audit row and a promotion.updated event whose change lists the fields set.
// Codes follow at once: every redemption and reservation reads the
// promotion's flag and window in its own conditional statement.
func UpdatePromotion(ctx context.Context, tx RedemptionTx, u promo.PromotionUpdate) (promo.PromotionSettings, error) {
	s, ok, err := tx.UpdatePromotion(ctx, u)
	if err != nil {
		return s, fmt.Errorf("update promotion: %w", err)
	}
	if !ok {
		st, err := tx.PromotionState(ctx, u.ID)
		switch {
		case err != nil:
			return s, fmt.Errorf("look up promotion: %w", err)
		case !st.Found:
			return s, PromotionNotFound(u.ID)
		case st.Deleting:
			return s, PromotionDeleted(u.ID)
		}
		return s, promo.FieldErrorf("expiresAt", "must be after startsAt")
	}
	change := map[string]any{}
	if u.Name != nil {
		change["name"] = *u.Name
	}
	if u.SetStartsAt {
		change["startsAt"] = u.StartsAt
	}
	if u.SetExpiresAt {
		change["expiresAt"] = u.ExpiresAt
	}
	if u.Active != nil {
		change["active"] = *u.Active
	}
	detail, err := json.Marshal(change)
	if err != nil {
		return s, err
	}
	err = audit(ctx, tx, promo.AuditEntry{ID: u.AuditID, At: u.Now.UTC().Truncate(time.Microsecond), Actor: u.Actor,
		Action: promo.ActionPromotionUpdated, PromotionID: u.ID, Detail: detail})
	return s, err
}

// RunUpdatePromotion is a store's UpdatePromotion: the request checked, then
// UpdatePromotion in one transaction.
func RunUpdatePromotion(ctx context.Context, inTx TxFunc, u promo.PromotionUpdate) (promo.PromotionSettings, error) {
	switch {
	case u.Name == nil && !u.SetStartsAt && !u.SetExpiresAt && u.Active == nil:
		return promo.PromotionSettings{}, promo.Errorf(promo.EInvalid, "nothing to change: set name, startsAt, expiresAt or active")
	case u.Name != nil && *u.Name == "":
		return promo.PromotionSettings{}, promo.FieldErrorf("name", "must not be empty")
	case u.AuditID == "" || u.Actor == "" || u.Now.IsZero():
		return promo.PromotionSettings{}, promo.Errorf(promo.EInvalid, "audit id, actor and time are required")
	}
	var s promo.PromotionSettings
	err := inTx(ctx, func(tx RedemptionTx) error {
		var err error
		s, err = UpdatePromotion(ctx, tx, u)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("update promotion %d: %w", u.ID, err)
	}
	return s, err
}

// Cancel stops a promotion that is still generating. It sets the
// promotion's cancelled flag (one conditional statement on the promotion
// row, which no worker locks), so it takes effect at once whatever a worker
// holds: every chunk reads the flag in its own transaction just before
// committing and is refused once it is set. The unfinished batches are marked
// cancelled too, except those a chunk in flight holds (their worker marks
// them when the flag refuses its chunk), so reconcile and the shovel leave
// them alone; the status reports "cancelled" with the exact number of codes
// that exist (progress advances in the same transaction as each chunk's
// codes). Cancelling again answers replayed; a completed (or vanity)
// promotion has nothing to cancel: EConflict; a deleted one is refused.
func Cancel(ctx context.Context, tx RedemptionTx, req promo.CancelRequest) (bool, error) {
	now := req.Now.UTC().Truncate(time.Microsecond)
	ok, err := tx.FlagCancelled(ctx, req.PromotionID, now)
	if err != nil {
		return false, fmt.Errorf("flag promotion cancelled: %w", err)
	}
	if !ok {
		st, err := tx.PromotionState(ctx, req.PromotionID)
		switch {
		case err != nil:
			return false, fmt.Errorf("look up promotion: %w", err)
		case !st.Found:
			return false, PromotionNotFound(req.PromotionID)
		case st.Deleting:
			return false, PromotionDeleted(req.PromotionID)
		case st.Cancelled:
			return true, nil
		}
		return false, promo.Errorf(promo.EConflict, "promotion %d has finished generating: nothing to cancel "+
			"(deactivate it with PATCH {\"active\": false})", req.PromotionID)
	}
	n, err := tx.CancelBatches(ctx, req.PromotionID, now)
	if err != nil {
		return false, fmt.Errorf("cancel batches: %w", err)
	}
	detail, err := json.Marshal(map[string]int64{"batchesCancelled": n})
	if err != nil {
		return false, err
	}
	return false, audit(ctx, tx, promo.AuditEntry{ID: req.AuditID, At: now, Actor: req.Actor,
		Action: promo.ActionPromotionCancelled, PromotionID: req.PromotionID, Detail: detail})
}

// RunCancel is a store's CancelPromotion: Cancel in one transaction.
func RunCancel(ctx context.Context, inTx TxFunc, req promo.CancelRequest) (bool, error) {
	if req.AuditID == "" || req.Actor == "" || req.Now.IsZero() {
		return false, promo.Errorf(promo.EInvalid, "audit id, actor and time are required")
	}
	var replayed bool
	err := inTx(ctx, func(tx RedemptionTx) error {
		var err error
		replayed, err = Cancel(ctx, tx, req)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("cancel promotion %d: %w", req.PromotionID, err)
	}
	return replayed, err
}

// TopUpTx is the statements of a top-up; part of LifecycleTx.
type TopUpTx interface {
	// LockPromotion takes the promotion row's lock (held to the end of the
	// transaction: it serialises top-ups, and a deletion or cancel waits
	// for it, never the other way round) and reads its flags.
	LockPromotion(ctx context.Context, id int64) (PromotionState, error)
	// StoredTopUp reads the promotion's top-up recorded with an
	// Idempotency-Key, and its request hash; found is false when none.
	StoredTopUp(ctx context.Context, id int64, key string) (t promo.TopUp, hash string, found bool, err error)
	// GrowPromotion adds n to a generated promotion's code_count and
	// returns its counter name and new total; ok is false when no generated
	// promotion matched.
	GrowPromotion(ctx context.Context, id, n int64) (counter string, total int64, ok bool, err error)
	// ReserveSeq reserves n sequence numbers from counter; it returns the
	// first.
	ReserveSeq(ctx context.Context, counter string, n int64) (int64, error)
	// NextNumbers returns the promotion's next batch number and top-up
	// number.
	NextNumbers(ctx context.Context, id int64) (batchNo, topUpNo int, err error)
	// InsertTopUp writes the top-up row (with its idempotency key and
	// request hash, "" for none) and its batch rows.
	InsertTopUp(ctx context.Context, id int64, t promo.TopUp, batchSize int64, key, hash string) error
	// TopUps lists a promotion's top-ups, oldest first.
	TopUps(ctx context.Context, id int64) ([]promo.TopUp, error)
}

// TopUp adds codes to a generated promotion in one transaction: the
// promotion's total grows, a new range is reserved from its counter and
// checked against the format's capacity (ECapacity, writing nothing, past
// req.SeqLimit), and new batch rows (numbered after the existing ones) are
// written unpublished, so the batch outbox sends their events and workers
// generate them exactly like a creation's. A cancelled promotion is refused,
// a deleted one too (promotion_deleted).
//
// With an Idempotency-Key the top-up is recorded with the key and the
// request's hash; the same key again (under the promotion row's lock, so
// concurrent retries serialise) answers the recorded top-up (replayed = true,
// nothing added), whatever the promotion's state now; another request with
// the key is idempotency_conflict.
func TopUp(ctx context.Context, tx RedemptionTx, req promo.TopUpRequest) (promo.TopUp, bool, error) {
	st, err := tx.LockPromotion(ctx, req.PromotionID)
	if err != nil {
		return promo.TopUp{}, false, fmt.Errorf("lock promotion: %w", err)
	}
	if !st.Found {
		return promo.TopUp{}, false, PromotionNotFound(req.PromotionID)
	}
	if req.IdempotencyKey != "" {
		t, hash, found, err := tx.StoredTopUp(ctx, req.PromotionID, req.IdempotencyKey)
		switch {
		case err != nil:
			return promo.TopUp{}, false, fmt.Errorf("read top-up by idempotency key: %w", err)
		case found && hash != req.RequestHash:
			return promo.TopUp{}, false, IdempotencyConflict()
		case found:
			return t, true, nil
		}
	}
	switch {
	case st.Deleting:
		return promo.TopUp{}, false, PromotionDeleted(req.PromotionID)
	case st.Cancelled:
		return promo.TopUp{}, false, promo.Errorf(promo.EConflict, "promotion %d was cancelled: create a new one", req.PromotionID)
	}
	t, err := topUp(ctx, tx, req)
	return t, false, err
}

func topUp(ctx context.Context, tx RedemptionTx, req promo.TopUpRequest) (promo.TopUp, error) {
	counter, total, ok, err := tx.GrowPromotion(ctx, req.PromotionID, req.CodeCount)
	if err != nil {
		return promo.TopUp{}, fmt.Errorf("grow promotion: %w", err)
	}
	if !ok {
		return promo.TopUp{}, promo.Errorf(promo.EConflict, "promotion %d is a vanity code: it cannot be topped up",
			req.PromotionID)
	}
	start, err := tx.ReserveSeq(ctx, counter, req.CodeCount)
	if err != nil {
		return promo.TopUp{}, fmt.Errorf("reserve %d from counter %q: %w", req.CodeCount, counter, err)
	}
	if err := CheckReservation(start, req.CodeCount, req.SeqLimit); err != nil {
		return promo.TopUp{}, err
	}
	batchNo, no, err := tx.NextNumbers(ctx, req.PromotionID)
	if err != nil {
		return promo.TopUp{}, fmt.Errorf("number the top-up: %w", err)
	}
	now := req.Now.UTC().Truncate(time.Microsecond)
	t := promo.TopUp{No: no, CodeCount: req.CodeCount, SeqStart: uint64(start), FirstBatchNo: batchNo,
		BatchCount: BatchCount(req.CodeCount, req.BatchSize), CreatedAt: now}
	if err := tx.InsertTopUp(ctx, req.PromotionID, t, req.BatchSize, req.IdempotencyKey, req.RequestHash); err != nil {
		return promo.TopUp{}, fmt.Errorf("insert top-up: %w", err)
	}
	detail, err := json.Marshal(map[string]int64{"codeCount": req.CodeCount, "total": total})
	if err != nil {
		return promo.TopUp{}, err
	}
	return t, audit(ctx, tx, promo.AuditEntry{ID: req.AuditID, At: now, Actor: req.Actor,
		Action: promo.ActionPromotionToppedUp, PromotionID: req.PromotionID, Detail: detail})
}

// RunTopUp is a store's TopUp: the request checked, then TopUp in one
// transaction; replayed is true when an Idempotency-Key answered a recorded
// top-up.
func RunTopUp(ctx context.Context, inTx TxFunc, req promo.TopUpRequest) (promo.TopUp, bool, error) {
	switch {
	case req.CodeCount < 1:
		return promo.TopUp{}, false, promo.FieldErrorf("codeCount", "must be at least 1")
	case req.BatchSize < 1:
		return promo.TopUp{}, false, promo.Errorf(promo.EInvalid, "batch size must be at least 1")
	case req.AuditID == "" || req.Actor == "" || req.Now.IsZero():
		return promo.TopUp{}, false, promo.Errorf(promo.EInvalid, "audit id, actor and time are required")
	case req.IdempotencyKey != "" && req.RequestHash == "":
		return promo.TopUp{}, false, promo.Errorf(promo.EInvalid, "an idempotency key needs a request hash")
	}
	var (
		t        promo.TopUp
		replayed bool
	)
	err := inTx(ctx, func(tx RedemptionTx) error {
		var err error
		t, replayed, err = TopUp(ctx, tx, req)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("top up promotion %d: %w", req.PromotionID, err)
	}
	return t, replayed, err
}

// CheckPurgeTable refuses a table a purge may not touch.
func CheckPurgeTable(table string) error {
	switch table {
	case "codes", "user_uses", "reservations", "redemptions":
		return nil
	}
	return fmt.Errorf("purge: table %q is not purgeable", table)
}

// RunRecordPurge writes a purge's audit row and event in one transaction.
func RunRecordPurge(ctx context.Context, inTx TxFunc, a promo.AuditEntry) error {
	return inTx(ctx, func(tx RedemptionTx) error { return audit(ctx, tx, a) })
}

// DeletionTx is the statements of a promotion's deletion; part of
// LifecycleTx.
type DeletionTx interface {
	// RequestDeletion marks the promotion for deletion and switches it off,
	// if it is not marked (one statement on the promotion row, which no
	// worker locks); ok is false when it matched no row.
	RequestDeletion(ctx context.Context, id int64, now time.Time) (bool, error)
	// FinishDeletion marks a promotion deleted, once, if none of its codes
	// is left (false otherwise: a later pass deletes them and finishes).
	FinishDeletion(ctx context.Context, id int64, now time.Time) (bool, error)
}

// RequestDeletion starts deleting a promotion: it is switched off and marked
// at once (its codes answer promotion_deleted, every change is refused, and
// no chunk commits after it: workers read the mark before each commit), and
// the API's background purger deletes its rows in bounded statements. A
// second request answers replayed. The mark is final: nothing clears it.
func RequestDeletion(ctx context.Context, tx RedemptionTx, a promo.AuditEntry) (bool, error) {
	ok, err := tx.RequestDeletion(ctx, a.PromotionID, a.At)
	if err != nil {
		return false, fmt.Errorf("request deletion: %w", err)
	}
	if !ok {
		st, err := tx.PromotionState(ctx, a.PromotionID)
		if err != nil {
			return false, fmt.Errorf("look up promotion: %w", err)
		}
		if !st.Found {
			return false, PromotionNotFound(a.PromotionID)
		}
		return true, nil
	}
	// Batches no chunk holds are marked at once; a chunk in flight is
	// refused by the mark when it commits, and its worker marks its batch.
	if _, err := tx.CancelBatches(ctx, a.PromotionID, a.At); err != nil {
		return false, fmt.Errorf("cancel batches: %w", err)
	}
	return false, audit(ctx, tx, a)
}

// RunRequestDeletion is a store's RequestDeletion in one transaction.
func RunRequestDeletion(ctx context.Context, inTx TxFunc, a promo.AuditEntry) (bool, error) {
	var replayed bool
	err := inTx(ctx, func(tx RedemptionTx) error {
		var err error
		replayed, err = RequestDeletion(ctx, tx, a)
		return err
	})
	return replayed, err
}

// RunFinishDeletion marks the promotion deleted and audits it, once (several
// API replicas may finish the same deletion).
func RunFinishDeletion(ctx context.Context, inTx TxFunc, a promo.AuditEntry) error {
	return inTx(ctx, func(tx RedemptionTx) error {
		ok, err := tx.FinishDeletion(ctx, a.PromotionID, a.At)
		if err != nil || !ok {
			return err
		}
		return audit(ctx, tx, a)
	})
}

// ListTopUps is a store's TopUps: a plain read through q (the read pool, not
// a write transaction: status reads call it on every poll).
func ListTopUps(ctx context.Context, q RedemptionTx, id int64) ([]promo.TopUp, error) {
	out, err := q.TopUps(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("list top-ups of promotion %d: %w", id, err)
	}
	return out, nil
}
