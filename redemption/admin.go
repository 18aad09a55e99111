package redemption

import (
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// AdminStore is what the admin changes of codes and promotions need.
type AdminStore interface {
	RevokeCode(ctx context.Context, req promo.RevokeRequest) (promo.Revocation, bool, error)
	AuditLog(ctx context.Context, f promo.AuditFilter) ([]promo.AuditEntry, error)
	UpdatePromotion(ctx context.Context, u promo.PromotionUpdate) (promo.PromotionSettings, error)
	CancelPromotion(ctx context.Context, req promo.CancelRequest) (bool, error)
	TopUp(ctx context.Context, req promo.TopUpRequest) (promo.TopUp, bool, error)
	TopUps(ctx context.Context, id int64) ([]promo.TopUp, error)
	RequestDeletion(ctx context.Context, a promo.AuditEntry) (bool, error)
	FinishDeletion(ctx context.Context, a promo.AuditEntry) error
	DeletionsPending(ctx context.Context) ([]int64, error)
	Deletion(ctx context.Context, id int64) (promo.Deletion, error)
	PurgeStore
}

// RevocationView is a revocation as the API answers it.
type RevocationView struct {
	promo.Revocation
	Code        string `json:"code"` // display form
	PromotionID string `json:"promotionId"`
}

// AuditView is an audit entry as the API answers it.
type AuditView struct {
	promo.AuditEntry
	Code        string `json:"code,omitempty"` // display form
	PromotionID string `json:"promotionId"`
}

// Revoke makes one code unusable; actor is who asked (audited). A code
// revoked before is answered again (replayed) and keeps its first reason.
func (s *Service) Revoke(ctx context.Context, actor, raw, reason string) (RevocationView, bool, error) {
	canon, err := codes.Canonical(raw)
	if err != nil {
		return RevocationView{}, false, promo.Refusal(promo.ReasonCodeNotFound, "no such code")
	}
	r, replayed, err := s.store.RevokeCode(ctx, promo.RevokeRequest{Code: canon, Reason: reason, Actor: actor,
		Now: s.now().UTC(), AuditID: newID()})
	if err != nil {
		return RevocationView{}, false, err
	}
	if !replayed && s.notify != nil {
		s.notify()
	}
	return RevocationView{Revocation: r, Code: s.catalog.display(ctx, r.PromotionID, r.Code),
		PromotionID: promo.FormatID(r.PromotionID)}, replayed, nil
}

// AuditLog returns a page of a promotion's audit log, newest first.
func (s *Service) AuditLog(ctx context.Context, f promo.AuditFilter) ([]AuditView, error) {
	log, err := s.store.AuditLog(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]AuditView, len(log))
	for i, a := range log {
		out[i] = AuditView{AuditEntry: a, PromotionID: promo.FormatID(a.PromotionID)}
		if a.Code != "" {
			out[i].Code = s.catalog.display(ctx, a.PromotionID, a.Code)
		}
	}
	return out, nil
}

// PromotionView is a promotion's settings as PATCH answers them.
type PromotionView struct {
	promo.PromotionSettings
	ID string `json:"id"`
}

// UpdatePromotion changes a promotion's name, window or active flag; actor is
// who asked (audited). Codes follow at once.
func (s *Service) UpdatePromotion(ctx context.Context, u promo.PromotionUpdate) (PromotionView, error) {
	u.Now, u.AuditID = s.now().UTC(), newID()
	ps, err := s.store.UpdatePromotion(ctx, u)
	if err != nil {
		return PromotionView{}, err
	}
	if s.notify != nil {
		s.notify()
	}
	return PromotionView{PromotionSettings: ps, ID: promo.FormatID(ps.ID)}, nil
}

// CancelPromotion stops a promotion's generation at the workers' next chunk;
// replayed when it was cancelled before.
func (s *Service) CancelPromotion(ctx context.Context, actor string, id int64) (bool, error) {
	replayed, err := s.store.CancelPromotion(ctx, promo.CancelRequest{PromotionID: id, Actor: actor,
		Now: s.now().UTC(), AuditID: newID()})
	if err == nil && !replayed && s.notify != nil {
		s.notify()
	}
	return replayed, err
}

// TopUp adds codes to a generated promotion; actor is who asked (audited).
// With an Idempotency-Key (req.IdempotencyKey and RequestHash) a retry
// answers the recorded top-up (replayed) and adds nothing.
func (s *Service) TopUp(ctx context.Context, req promo.TopUpRequest) (promo.TopUp, bool, error) {
	req.Now, req.AuditID = s.now().UTC(), newID()
	t, replayed, err := s.store.TopUp(ctx, req)
	if err == nil && !replayed && s.notify != nil {
		s.notify()
	}
	return t, replayed, err
}

// TopUps lists a promotion's top-ups, oldest first.
func (s *Service) TopUps(ctx context.Context, id int64) ([]promo.TopUp, error) {
	return s.store.TopUps(ctx, id)
}

// DeletionView is where a promotion's deletion stands.
type DeletionView struct {
	promo.Deletion
	CodesLeft int64 `json:"codesLeft"`
}

// DeletePromotion requests a promotion's deletion: it is switched off and its
// generation cancelled at once, and the background purger (Run) deletes its
// codes in bounded statements. Redemption records are kept.
func (s *Service) DeletePromotion(ctx context.Context, actor string, id int64) (DeletionView, bool, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	replayed, err := s.store.RequestDeletion(ctx, promo.AuditEntry{ID: newID(), At: now, Actor: actor,
		Action: promo.ActionDeleteRequested, PromotionID: id})
	if err != nil {
		return DeletionView{}, false, err
	}
	if !replayed && s.notify != nil {
		s.notify()
	}
	if s.kick != nil {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	v, err := s.DeletionStatus(ctx, id)
	return v, replayed, err
}

// DeletionStatus reads a promotion's deletion and how many codes are left.
func (s *Service) DeletionStatus(ctx context.Context, id int64) (DeletionView, error) {
	d, err := s.store.Deletion(ctx, id)
	if err != nil {
		return DeletionView{}, err
	}
	v := DeletionView{Deletion: d}
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
		if s.notify != nil {
			s.notify()
		}
	}
}

// deleteBatchRows bounds one deletion statement, as the purge does.
const deleteBatchRows = 10_000
