package redemption

import (
	"context"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

// AdminStore is what the admin changes of codes need.
type AdminStore interface {
	RevokeCode(ctx context.Context, req promo.RevokeRequest) (promo.Revocation, bool, error)
	AuditLog(ctx context.Context, f promo.AuditFilter) ([]promo.AuditEntry, error)
}

// RevocationView and AuditView are a revocation and an audit entry as the
// API answers them (pkg/wire).
type (
	RevocationView = wire.Revocation
	AuditView      = wire.AuditEntry
)

// Revoke makes one code unusable; actor is who asked (audited). A code
// revoked before is answered again (replayed) and keeps its first reason.
func (s *Service) Revoke(ctx context.Context, actor, raw, reason string) (RevocationView, bool, error) {
	canon, err := codes.Canonical(raw)
	if err != nil {
		return RevocationView{}, false, promo.Refusal(promo.ReasonCodeNotFound, "no such code")
	}
	r, replayed, err := s.store.RevokeCode(ctx, promo.RevokeRequest{Code: canon, Reason: reason, Actor: actor,
		Now: s.now().UTC(), AuditID: s.newID()})
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
