package promotion

import (
	"context"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

// AdminStore is what the admin's changes of codes and the audit log need.
type AdminStore interface {
	RevokeCode(ctx context.Context, req promo.RevokeRequest) (promo.Revocation, bool, error)
	AuditLog(ctx context.Context, f promo.AuditFilter) ([]promo.AuditEntry, error)
}

// Displayer renders a promotion's canonical code the way its format shows
// it (separators, the admin's case for the prefix): the redemption
// service's code catalog, which the wiring passes to New.
type Displayer interface {
	Display(ctx context.Context, promotionID int64, canon string) string
}

// RevocationView and AuditView are a revocation and an audit entry as the
// API answers them (pkg/wire).
type (
	RevocationView = wire.Revocation
	AuditView      = wire.AuditEntry
)

// display is canon in display form (canon itself without a Displayer).
func (s *Service) display(ctx context.Context, promotionID int64, canon string) string {
	if s.displayer == nil {
		return canon
	}
	return s.displayer.Display(ctx, promotionID, canon)
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
	if !replayed {
		s.notifyEvents()
	}
	return RevocationView{Revocation: r, Code: s.display(ctx, r.PromotionID, r.Code),
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
			out[i].Code = s.display(ctx, a.PromotionID, a.Code)
		}
	}
	return out, nil
}
