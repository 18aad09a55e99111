package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Admin changes: each is one conditional statement (two racing admins
// cannot both apply it) with its audit row and event, in one transaction.

// RevokeCode makes a code unusable from req.Now on (the use statements
// check it). Revoking again answers replayed, writing nothing; a code of a
// promotion being deleted is refused (promotion_deleted).
func (s *Core[T]) RevokeCode(ctx context.Context, req promo.RevokeRequest) (promo.Revocation, bool, error) {
	return validRun(ctx, s, req, stmts[T].revoke, "revoke code %q", req.Code)
}

func (x stmts[T]) revoke(ctx context.Context, req promo.RevokeRequest) (promo.Revocation, bool, error) {
	now := req.Now.UTC().Truncate(time.Microsecond)
	var pid int64
	ok, err := x.row(ctx, x.d.RevokeCode, []any{x.d.VarChar(req.Code), x.d.Time(now), req.Reason}, &pid)
	if err != nil {
		return promo.Revocation{}, false, fmt.Errorf("revoke code: %w", err)
	}
	if !ok {
		r, revoked, err := x.revocation(ctx, req.Code)
		if err == nil {
			_, err = x.lookUp(ctx, r.PromotionID)
		}
		if err == nil && !revoked {
			err = fmt.Errorf("code %s neither revoked nor revocable", req.Code)
		}
		return r, err == nil, err
	}
	rev := promo.Revocation{Code: req.Code, PromotionID: pid, RevokedAt: now, Reason: req.Reason}
	return rev, false, x.audit(ctx, promo.AuditEntry{ID: req.AuditID, At: now, Actor: req.Actor,
		Action: promo.ActionCodeRevoked, PromotionID: pid, Code: req.Code}, map[string]string{"reason": req.Reason})
}

// revocation is Revocation.
func (x stmts[T]) revocation(ctx context.Context, code string) (promo.Revocation, bool, error) {
	r := promo.Revocation{Code: code}
	var at *time.Time
	err := x.q.QueryRow(ctx, x.d.Revocation, x.d.VarChar(code)).Scan(&r.PromotionID, NullTime(&at), &r.Reason)
	if err := lookedUp(err, codeNotFound(), "read revocation of code %s", code); err != nil || at == nil {
		return r, false, err
	}
	r.RevokedAt = *at
	return r, true, nil
}

// Revocation reads a code's (canonical) revocation: revoked is false for a
// code that is not revoked; ENotFound for no such code.
func (s *Core[T]) Revocation(ctx context.Context, code string) (promo.Revocation, bool, error) {
	return s.on(s.r).revocation(ctx, code)
}

// AuditLog returns one page of a promotion's audit log, newest first.
func (s *Core[T]) AuditLog(ctx context.Context, f promo.AuditFilter) ([]promo.AuditEntry, error) {
	if err := s.promotionExists(ctx, f.PromotionID); err != nil {
		return nil, err
	}
	out, err := collect(ctx, s.r, s.d.AuditLog, []any{f.PromotionID, pageLimit(f.Limit), s.d.VarChar(f.After)},
		func(r Row, a *promo.AuditEntry) error {
			var detail string
			err := r.Scan(&a.ID, Time(&a.At), &a.Actor, &a.Action, &a.PromotionID, &a.Code, &detail)
			if detail != "" {
				a.Detail = []byte(detail)
			}
			return err
		})
	return out, wrap(err, "read audit log of promotion %d", f.PromotionID)
}

// UpdatePromotion changes a promotion's name, window, flag or rules; the
// event's change lists the fields set. Codes follow at once (the use
// statements read them).
func (s *Core[T]) UpdatePromotion(ctx context.Context, u promo.PromotionUpdate) (promo.PromotionSettings, error) {
	return validRun1(ctx, s, u, stmts[T].updatePromotion, "update promotion %d", u.ID)
}

func (x stmts[T]) updatePromotion(ctx context.Context, u promo.PromotionUpdate) (promo.PromotionSettings, error) {
	var (
		ps          promo.PromotionSettings
		name, on    any // NULL: unchanged
		eligibility string
		change      = map[string]any{} // the fields set, for the audit row
	)
	if u.Name != nil {
		name, change["name"] = *u.Name, *u.Name
	}
	if u.Active != nil {
		on, change["active"] = *u.Active, *u.Active
	}
	if u.SetStartsAt {
		change["startsAt"] = u.StartsAt
	}
	if u.SetExpiresAt {
		change["expiresAt"] = u.ExpiresAt
	}
	ok, err := x.row(ctx, x.d.UpdatePromotion, []any{u.ID, name, u.SetStartsAt, x.d.nullTime(u.StartsAt), u.SetExpiresAt,
		x.d.nullTime(u.ExpiresAt), on, u.SetEligibility, promo.EncodeEligibility(u.Eligibility)},
		&ps.ID, &ps.Name, NullTime(&ps.StartsAt), NullTime(&ps.ExpiresAt), &ps.Active, &eligibility)
	if err != nil {
		return ps, fmt.Errorf("update promotion: %w", err)
	}
	if ps.Eligibility, err = promo.DecodeEligibility(eligibility); err != nil {
		return ps, err
	}
	if !ok {
		if _, err := x.lookUp(ctx, u.ID); err != nil {
			return ps, err
		}
		return ps, promo.FieldErrorf("expiresAt", "must be after startsAt")
	}
	if u.SetEligibility {
		change["eligibility"] = ps.Eligibility
	}
	return ps, x.audit(ctx, promo.AuditEntry{ID: u.AuditID, At: u.Now.UTC().Truncate(time.Microsecond), Actor: u.Actor,
		Action: promo.ActionPromotionUpdated, PromotionID: u.ID}, change)
}

// SetPromotionActive switches a promotion on or off (ENotFound: none;
// promotion_deleted once its deletion was requested, as UpdatePromotion).
func (s *Core[T]) SetPromotionActive(ctx context.Context, id int64, active bool) error {
	n, err := s.count(ctx, fmt.Sprintf("set promotion %d active=%t", id, active), s.d.SetActive, id, active)
	if err == nil && n == 0 {
		_, err = s.on(s.w).lookUp(ctx, id)
	}
	return err
}

// CancelPromotion stops a generating promotion: its cancelled flag, read by
// every chunk's commit gate, takes effect at once (docs/store.md,
// "Committing a chunk"); unfinished batches no chunk holds are marked too
// (a held one by its worker when the gate refuses the chunk). Again:
// replayed; completed or vanity: EConflict; deleted: refused.
func (s *Core[T]) CancelPromotion(ctx context.Context, req promo.CancelRequest) (bool, error) {
	return validRun1(ctx, s, req, stmts[T].cancel, "cancel promotion %d", req.PromotionID)
}

func (x stmts[T]) cancel(ctx context.Context, req promo.CancelRequest) (bool, error) {
	now := req.Now.UTC().Truncate(time.Microsecond)
	ok, err := x.one(ctx, x.d.FlagCancelled, req.PromotionID, x.d.Time(now))
	if err != nil {
		return false, fmt.Errorf("flag promotion cancelled: %w", err)
	}
	if !ok {
		st, err := x.lookUp(ctx, req.PromotionID)
		if err != nil || st.Cancelled {
			return err == nil, err
		}
		return false, promo.Errorf(promo.EConflict, "promotion %d has finished generating: nothing to cancel "+
			"(deactivate it with PATCH {\"active\": false})", req.PromotionID)
	}
	n, err := x.q.Exec(ctx, x.d.CancelBatches, req.PromotionID, x.d.Time(now))
	if err != nil {
		return false, fmt.Errorf("cancel batches: %w", err)
	}
	return false, x.audit(ctx, promo.AuditEntry{ID: req.AuditID, At: now, Actor: req.Actor,
		Action: promo.ActionPromotionCancelled, PromotionID: req.PromotionID}, map[string]int64{"batchesCancelled": n})
}

// TopUp adds codes to a generated promotion in one transaction: its total
// grows, a range is reserved from its counter (ECapacity past req.SeqLimit,
// writing nothing) and new unpublished batch rows follow the existing ones,
// generated like a creation's. A cancelled or deleted promotion is refused.
//
// The same Idempotency-Key again answers the recorded top-up (replayed),
// whatever the promotion's state now, under the promotion row's lock (to
// the end of the transaction: retries serialise, a deletion or cancel
// waits); another request with it is idempotency_conflict.
func (s *Core[T]) TopUp(ctx context.Context, req promo.TopUpRequest) (promo.TopUp, bool, error) {
	return validRun(ctx, s, req, stmts[T].topUp, "top up promotion %d", req.PromotionID)
}

func (x stmts[T]) topUp(ctx context.Context, req promo.TopUpRequest) (promo.TopUp, bool, error) {
	st, err := x.promotionState(ctx, x.d.LockPromotion, req.PromotionID)
	if err != nil {
		return promo.TopUp{}, false, fmt.Errorf("lock promotion: %w", err)
	}
	if !st.Found {
		return promo.TopUp{}, false, promotionNotFound(req.PromotionID)
	}
	if req.IdempotencyKey != "" {
		var hash string
		t, err := scanTopUp(x.q.QueryRow(ctx, x.d.StoredTopUp, req.PromotionID, req.IdempotencyKey), &hash)
		switch {
		case noRows(err):
		case err != nil:
			return promo.TopUp{}, false, fmt.Errorf("read top-up by idempotency key: %w", err)
		case hash != req.RequestHash:
			return promo.TopUp{}, false, idempotencyConflict()
		default:
			return t, true, nil
		}
	}
	switch {
	case st.Deleting:
		return promo.TopUp{}, false, promotionDeleted(req.PromotionID)
	case st.Cancelled:
		return promo.TopUp{}, false, promo.Errorf(promo.EConflict, "promotion %d was cancelled: create a new one", req.PromotionID)
	}
	var (
		counter string
		total   int64
	)
	ok, err := x.row(ctx, x.d.GrowPromotion, []any{req.PromotionID, req.CodeCount}, &counter, &total)
	if err != nil {
		return promo.TopUp{}, false, fmt.Errorf("grow promotion: %w", err)
	}
	if !ok {
		return promo.TopUp{}, false, promo.Errorf(promo.EConflict, "promotion %d is a vanity code: it cannot be topped up",
			req.PromotionID)
	}
	start, err := reserveSeq(ctx, x.q, x.d.Reserve, counter, req.CodeCount)
	if err != nil {
		return promo.TopUp{}, false, err
	}
	if err := checkReservation(start, req.CodeCount, req.SeqLimit); err != nil {
		return promo.TopUp{}, false, err
	}
	t := promo.TopUp{CodeCount: req.CodeCount, SeqStart: uint64(start), BatchCount: promo.BatchCount(req.CodeCount, req.BatchSize),
		CreatedAt: req.Now.UTC().Truncate(time.Microsecond)}
	if _, err := x.row(ctx, x.d.NextNumbers, []any{req.PromotionID}, &t.FirstBatchNo, &t.No); err != nil {
		return promo.TopUp{}, false, fmt.Errorf("number the top-up: %w", err)
	}
	created := x.d.Time(t.CreatedAt)
	if err := x.exec(ctx, x.d.InsertTopUpBatches, req.PromotionID, start, req.BatchSize, t.CodeCount, t.BatchCount,
		created, t.FirstBatchNo); err != nil {
		return promo.TopUp{}, false, fmt.Errorf("insert %d batches: %w", t.BatchCount, err)
	}
	if err := x.exec(ctx, x.d.InsertTopUp, req.PromotionID, t.No, t.CodeCount, start, t.FirstBatchNo, t.BatchCount,
		created, req.IdempotencyKey, x.d.VarChar(req.RequestHash)); err != nil {
		return promo.TopUp{}, false, fmt.Errorf("insert top-up: %w", err)
	}
	return t, false, x.audit(ctx, promo.AuditEntry{ID: req.AuditID, At: t.CreatedAt, Actor: req.Actor,
		Action: promo.ActionPromotionToppedUp, PromotionID: req.PromotionID},
		map[string]int64{"codeCount": req.CodeCount, "total": total})
}

// TopUps lists a promotion's top-ups, oldest first (on the read pool: status
// reads call it on every poll).
func (s *Core[T]) TopUps(ctx context.Context, id int64) ([]promo.TopUp, error) {
	out, err := collect(ctx, s.r, s.d.TopUps, []any{id}, func(r Row, t *promo.TopUp) (err error) {
		*t, err = scanTopUp(r)
		return err
	})
	return out, wrap(err, "list top-ups of promotion %d", id)
}

// ExpiredPromotions lists the promotions that ended before before.
func (s *Core[T]) ExpiredPromotions(ctx context.Context, before time.Time) ([]int64, error) {
	return s.ids(ctx, "list expired promotions", s.d.ExpiredPromotions, s.d.Time(before))
}

// DeletionsPending lists promotions whose deletion was requested and not
// finished.
func (s *Core[T]) DeletionsPending(ctx context.Context) ([]int64, error) {
	return s.ids(ctx, "list pending deletions", s.d.DeletionsPending)
}

func (s *Core[T]) ids(ctx context.Context, what, query string, args ...any) ([]int64, error) {
	ids, err := collect(ctx, s.r, query, args, func(r Row, id *int64) error { return r.Scan(id) })
	return ids, wrap(err, "%s", what)
}

// PurgeCount counts a promotion's codes and redemptions.
func (s *Core[T]) PurgeCount(ctx context.Context, id int64) (codes, redemptions int64, err error) {
	err = s.r.QueryRow(ctx, s.d.PurgeCount, id).Scan(&codes, &redemptions)
	return codes, redemptions, wrap(err, "count rows of promotion %d", id)
}

// PurgeRows deletes up to limit of a promotion's rows from table (with
// redemptions, their idempotency records) in one short transaction, so
// that other redemptions never wait long behind a purge: how many.
func (s *Core[T]) PurgeRows(ctx context.Context, table string, id int64, limit int) (int64, error) {
	q, ok := s.d.Purge[table]
	if !ok {
		return 0, fmt.Errorf("purge: table %q is not purgeable", table)
	}
	purge := func(x stmts[T]) (n int64, err error) {
		if table != "redemptions" {
			return x.q.Exec(ctx, q, id, limit)
		}
		if x.d.PurgeRedemptionKeys != "" {
			if err := x.exec(ctx, x.d.PurgeRedemptionKeys, id, limit); err != nil {
				return 0, fmt.Errorf("their idempotency records: %w", err)
			}
		}
		err = each(ctx, x.q, q, []any{id, limit}, func(Row) error { n++; return nil })
		return n, err
	}
	var (
		n   int64
		err error
	)
	if table == "redemptions" && s.d.PurgeRedemptionKeys != "" {
		n, err = run1(ctx, s, purge)
	} else {
		n, err = purge(s.on(s.w)) // one statement: no transaction around it
	}
	if err != nil {
		return 0, fmt.Errorf("purge %s of promotion %d: %w", table, id, err)
	}
	return n, nil
}

// MarkPurge marks a promotion that ended before before for deletion, as
// RequestDeletion does, before a purge deletes anything: no admin can then
// extend, switch on or top it up while its allowances go (its users could
// redeem again), and a purge cut short is finished by the background
// deleter. False, marking nothing, if the window now ends later.
func (s *Core[T]) MarkPurge(ctx context.Context, id int64, before, now time.Time) (bool, error) {
	marked, err := run1(ctx, s, func(x stmts[T]) (bool, error) {
		at := x.d.Time(now.UTC().Truncate(time.Microsecond))
		ok, err := x.one(ctx, x.d.MarkPurge, id, x.d.Time(before), at)
		if err != nil || !ok {
			return false, wrap(err, "mark for purge")
		}
		if err := x.exec(ctx, x.d.CancelBatches, id, at); err != nil {
			return false, fmt.Errorf("cancel batches: %w", err)
		}
		return true, nil
	})
	return marked, wrap(err, "mark promotion %d for purge", id)
}

// RecordPurge writes a purge's audit row a and its event, and marks the
// promotion deleted when none of its codes is left (FinishDeletion's mark,
// without its audit row).
func (s *Core[T]) RecordPurge(ctx context.Context, a promo.AuditEntry) error {
	return s.finishDeletion(ctx, a, true)
}

// RequestDeletion switches a promotion off and marks it, finally (its codes
// answer promotion_deleted, changes are refused, no chunk commits after it:
// the commit gate reads the mark); the background purger deletes its rows.
// A second request answers replayed.
func (s *Core[T]) RequestDeletion(ctx context.Context, a promo.AuditEntry) (bool, error) {
	return run1(ctx, s, func(x stmts[T]) (bool, error) {
		ok, err := x.one(ctx, x.d.RequestDeletion, a.PromotionID, x.d.Time(a.At))
		if err != nil {
			return false, fmt.Errorf("request deletion: %w", err)
		}
		if !ok {
			st, err := x.promotionState(ctx, x.d.PromotionState, a.PromotionID)
			if err == nil && !st.Found {
				err = promotionNotFound(a.PromotionID)
			}
			return err == nil, wrap(err, "look up promotion")
		}
		// Batches no chunk holds are marked at once; a chunk in flight is
		// refused by the mark when it commits, and its worker marks its batch.
		if err := x.exec(ctx, x.d.CancelBatches, a.PromotionID, x.d.Time(a.At)); err != nil {
			return false, fmt.Errorf("cancel batches: %w", err)
		}
		return false, x.audit(ctx, a, nil)
	})
}

// FinishDeletion marks the promotion deleted once none of its codes is left
// and audits it, once (replicas may race; a chunk that read it live just
// before the request may commit after: the next pass deletes its codes).
func (s *Core[T]) FinishDeletion(ctx context.Context, a promo.AuditEntry) error {
	return s.finishDeletion(ctx, a, false)
}

// finishDeletion marks the promotion deleted if none of its codes is left
// and writes a, if it marked it or always.
func (s *Core[T]) finishDeletion(ctx context.Context, a promo.AuditEntry, always bool) error {
	return s.inTx(ctx, func(tx T) error {
		x := s.on(tx)
		ok, err := x.one(ctx, x.d.FinishDeletion, a.PromotionID, x.d.Time(a.At))
		if err != nil {
			return fmt.Errorf("mark deleted: %w", err)
		}
		if !ok && !always {
			return nil
		}
		return x.audit(ctx, a, nil)
	})
}

// Deletion reads where a promotion's deletion stands.
func (s *Core[T]) Deletion(ctx context.Context, id int64) (promo.Deletion, error) {
	var d promo.Deletion
	err := s.r.QueryRow(ctx, s.d.Deletion, id).Scan(NullTime(&d.RequestedAt), NullTime(&d.DeletedAt))
	return d, lookedUp(err, promotionNotFound(id), "read deletion of promotion %d", id)
}
