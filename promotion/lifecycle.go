package promotion

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

// TopUpRequest asks for more codes in a generated promotion.
type TopUpRequest struct {
	PromotionID int64
	// CodeCount is how many codes to add (0 when the client sent no whole
	// number: refused like any count below 1).
	CodeCount      int64
	Actor          string // who asked (audited)
	IdempotencyKey string // with one, a retry answers the recorded top-up
}

// TopUp adds codes to a generated promotion, with its own batch rows, and
// returns the top-up and the promotion's status after it (its codeCount is
// the new total). With an Idempotency-Key the same key and codeCount answer
// the recorded top-up (replayed) and add nothing; another codeCount is
// EConflict.
func (s *Service) TopUp(ctx context.Context, req TopUpRequest) (promo.TopUp, promo.PromotionStatus, bool, error) {
	st, err := s.store.GetPromotion(ctx, req.PromotionID)
	if err != nil {
		return promo.TopUp{}, st, false, err
	}
	n := req.CodeCount
	switch {
	case n < 1:
		return promo.TopUp{}, st, false, promo.FieldErrorf("codeCount", "must be a whole number of at least 1")
	case n > s.cfg.MaxCodeCount:
		return promo.TopUp{}, st, false, promo.FieldErrorf("codeCount", "must be at most %d", s.cfg.MaxCodeCount)
	case st.Format == nil:
		return promo.TopUp{}, st, false, promo.Errorf(promo.EConflict, "promotion %d is a vanity code: it cannot be topped up", st.ID)
	}
	layout, err := codes.NewLayout(*st.Format)
	if err != nil {
		return promo.TopUp{}, st, false, promo.Errorf(promo.EConflict, "the promotion's format is no longer accepted: %v", err)
	}
	in := promo.TopUpRequest{PromotionID: st.ID, CodeCount: n, BatchSize: s.cfg.BatchCodeCount,
		SeqLimit: layout.SeqLimit(s.cfg.MaxDensity), Actor: req.Actor, IdempotencyKey: req.IdempotencyKey,
		Now: s.now().UTC(), AuditID: newID()}
	if req.IdempotencyKey != "" {
		sum := sha256.Sum256([]byte("topup\x00" + strconv.FormatInt(n, 10)))
		in.RequestHash = hex.EncodeToString(sum[:])
	}
	t, replayed, err := s.store.TopUp(ctx, in)
	if err != nil {
		return promo.TopUp{}, st, false, err
	}
	if !replayed {
		s.notifyEvents()
		s.notifyBatches()
	}
	after, err := s.store.GetPromotion(ctx, st.ID)
	return t, after, replayed, err
}

// TopUps lists a promotion's top-ups, oldest first.
func (s *Service) TopUps(ctx context.Context, id int64) ([]promo.TopUp, error) {
	return s.store.TopUps(ctx, id)
}

// Patch changes a promotion's settings; nil fields stay as they are.
type Patch struct {
	ID     int64
	Actor  string // who asked (audited)
	Name   *string
	Active *bool
	// StartsAt and ExpiresAt are the JSON values as sent: absent (nil)
	// leaves the bound, null clears it, else an RFC 3339 time.
	StartsAt  json.RawMessage
	ExpiresAt json.RawMessage
	// Eligibility replaces the promotion's eligibility rules when set
	// (SetEligibility); nil or empty removes them.
	SetEligibility bool
	Eligibility    *promo.Eligibility
}

// Update changes a promotion's name, window, active flag or eligibility
// rules; codes follow at once (every redemption reads the rules in the
// statement that takes its code's lock). A bad field is an EInvalid *promo.Error naming every field at fault.
func (s *Service) Update(ctx context.Context, p Patch) (promo.PromotionSettings, error) {
	u, err := checkPatch(p)
	if err != nil {
		return promo.PromotionSettings{}, err
	}
	u.Now, u.AuditID = s.now().UTC(), newID()
	ps, err := s.store.UpdatePromotion(ctx, u)
	if err != nil {
		return promo.PromotionSettings{}, err
	}
	s.notifyEvents()
	return ps, nil
}

// checkPatch turns a patch into the store's update, or why it is refused.
func checkPatch(p Patch) (promo.PromotionUpdate, error) {
	u := promo.PromotionUpdate{ID: p.ID, Name: p.Name, Active: p.Active, Actor: p.Actor}
	var fields []promo.FieldError
	if p.Name != nil {
		if err := promo.CheckText("name", *p.Name, MaxNameLen, true); err != nil {
			fields = append(fields, err.(*promo.Error).Fields...)
		}
	}
	for _, b := range []struct {
		field string
		raw   json.RawMessage
		set   *bool
		dst   **time.Time
	}{{"startsAt", p.StartsAt, &u.SetStartsAt, &u.StartsAt}, {"expiresAt", p.ExpiresAt, &u.SetExpiresAt, &u.ExpiresAt}} {
		if len(b.raw) == 0 {
			continue
		}
		*b.set = true
		if string(b.raw) == "null" {
			continue
		}
		var t time.Time
		if err := json.Unmarshal(b.raw, &t); err != nil {
			fields = append(fields, promo.FieldError{Field: b.field, Message: "must be an RFC 3339 time or null"})
			continue
		}
		t = t.UTC().Truncate(time.Microsecond)
		*b.dst = &t
	}
	if p.SetEligibility {
		var bad problems
		u.SetEligibility, u.Eligibility = true, checkEligibility(p.Eligibility, &bad)
		fields = append(fields, bad.fields...)
	}
	if len(fields) > 0 {
		return u, &promo.Error{Code: promo.EInvalid, Message: "invalid request", Fields: fields}
	}
	return u, nil
}

// Cancel stops a promotion's generation at the workers' next chunk and
// returns its status (cancelled; generatedCount the codes that exist);
// replayed when it was cancelled before.
func (s *Service) Cancel(ctx context.Context, actor string, id int64) (promo.PromotionStatus, bool, error) {
	replayed, err := s.store.CancelPromotion(ctx, promo.CancelRequest{PromotionID: id, Actor: actor,
		Now: s.now().UTC(), AuditID: newID()})
	if err != nil {
		return promo.PromotionStatus{}, false, err
	}
	if !replayed {
		s.notifyEvents()
	}
	st, err := s.store.GetPromotion(ctx, id)
	return st, replayed, err
}

// Deletion is where a promotion's deletion stands, as the API answers it
// (pkg/wire).
type Deletion = wire.Deletion

// Delete requests a promotion's deletion: it is switched off and its
// generation cancelled at once, and the finisher (Run) deletes its codes in
// bounded statements. Redemption records are kept. Replayed when it was
// requested before.
func (s *Service) Delete(ctx context.Context, actor string, id int64) (Deletion, bool, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	replayed, err := s.store.RequestDeletion(ctx, promo.AuditEntry{ID: newID(), At: now, Actor: actor,
		Action: promo.ActionDeleteRequested, PromotionID: id})
	if err != nil {
		return Deletion{}, false, err
	}
	if !replayed {
		s.notifyEvents()
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	v, err := s.DeletionStatus(ctx, id)
	return v, replayed, err
}

// DeletionStatus reads a promotion's deletion and how many codes are left.
func (s *Service) DeletionStatus(ctx context.Context, id int64) (Deletion, error) {
	d, err := s.store.Deletion(ctx, id)
	if err != nil {
		return Deletion{}, err
	}
	v := Deletion{Deletion: d}
	if d.RequestedAt != nil && d.DeletedAt == nil {
		if v.CodesLeft, _, err = s.store.PurgeCount(ctx, id); err != nil {
			return v, err
		}
	}
	return v, nil
}

// deletePending purges every promotion whose deletion was requested, in
// bounded statements, and marks it deleted. Several replicas may run it at
// once: the deletes are idempotent and the finish is conditional.
func (s *Service) deletePending(ctx context.Context) {
	ids, err := s.store.DeletionsPending(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("list pending deletions failed; will retry", zap.Error(err))
		}
		return
	}
	for _, id := range ids {
		var codes int64
		err := emptyPromotion(ctx, s.store, id, purgeOrder, deleteBatchRows, func(table string, n int64) {
			if table == "codes" {
				codes += n
			}
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("promotion deletion interrupted; will resume", zap.Int64("promotion_id", id), zap.Error(err))
			}
			return
		}
		detail, _ := json.Marshal(map[string]int64{"codes": codes})
		if err := s.store.FinishDeletion(ctx, promo.AuditEntry{ID: newID(), At: s.now().UTC().Truncate(time.Microsecond),
			Actor: "system:deleter", Action: promo.ActionPromotionDeleted, PromotionID: id, Detail: detail}); err != nil {
			s.log.Warn("finish promotion deletion failed; will retry", zap.Int64("promotion_id", id), zap.Error(err))
			continue
		}
		s.log.Info("promotion deleted", zap.Int64("promotion_id", id), zap.Int64("codes", codes))
		s.notifyEvents()
	}
}

// deleteBatchRows bounds one deletion statement, as the purge does.
const deleteBatchRows = 10_000
