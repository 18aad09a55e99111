package redemption

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

// PersonalStore is what personal codes need from the database.
type PersonalStore interface {
	Issue(ctx context.Context, req promo.IssueRequest) (promo.IssueOutcome, error)
	UserCodes(ctx context.Context, userID string, now time.Time, limit int) ([]promo.UserCode, error)
}

// IssueInput is an issuance request as the API decoded it.
type IssueInput struct {
	PromotionID    int64
	UserID         string
	Count          int // 0: one code
	IdempotencyKey string
	Actor          string // who asked (the audit row's actor)
}

// IssuanceView is an issuance as the API answers it (pkg/wire).
type IssuanceView = wire.Issuance

// Issue hands out the next unassigned codes of a generated promotion to a
// user, bound to them (see the store's Issue). pool_exhausted when fewer are
// left than asked for.
func (s *Service) Issue(ctx context.Context, in IssueInput) (IssuanceView, bool, error) {
	start := time.Now()
	if in.Count == 0 {
		in.Count = 1
	}
	req := promo.IssueRequest{ID: s.newID(), EventID: s.newID(), PromotionID: in.PromotionID, UserID: in.UserID,
		Count: in.Count, Actor: in.Actor, Now: s.now().UTC(), IdempotencyKey: in.IdempotencyKey}
	if in.IdempotencyKey != "" {
		h := sha256.New()
		for _, part := range []string{"issue", promo.FormatID(in.PromotionID), in.UserID, fmt.Sprint(in.Count)} {
			fmt.Fprintf(h, "%d:%s;", len(part), part)
		}
		req.RequestHash = hex.EncodeToString(h.Sum(nil))
	}
	var out promo.IssueOutcome
	err := s.gate.run(ctx, func(ctx context.Context) (err error) {
		out, err = s.store.Issue(ctx, req)
		return err
	})
	result := "issued"
	switch {
	case err != nil:
		result = resultOf(err)
	case out.Replayed:
		result = "replayed"
	}
	s.metrics.issuances.WithLabelValues(result).Inc()
	s.metrics.seconds.WithLabelValues("issue").Observe(time.Since(start).Seconds())
	if err != nil {
		return IssuanceView{}, false, err
	}
	if !out.Replayed && s.notify != nil {
		s.notify()
	}
	v := IssuanceView{Issuance: out.Issuance, PromotionID: promo.FormatID(in.PromotionID)}
	v.Codes = make([]string, len(out.Issuance.Codes))
	for i, c := range out.Issuance.Codes {
		v.Codes[i] = s.catalog.display(ctx, in.PromotionID, c)
	}
	return v, out.Replayed, nil
}

// UserCodes lists the codes bound to a user, newest issued first, with
// their state now, codes in display form.
func (s *Service) UserCodes(ctx context.Context, userID string, limit int) ([]promo.UserCode, error) {
	cs, err := s.store.UserCodes(ctx, userID, s.now().UTC(), limit)
	if err != nil {
		return nil, err
	}
	for i := range cs {
		id, _ := promo.ParseID(cs[i].PromotionID)
		cs[i].Code = s.catalog.display(ctx, id, cs[i].Code)
	}
	return cs, nil
}
