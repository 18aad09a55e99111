package redemption

import (
	"context"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

// InspectStore is what an admin's view of a code reads besides its state:
// its live reservations and its revocation.
type InspectStore interface {
	CodeReservations(ctx context.Context, promotionID int64, code string, now time.Time, limit int) ([]promo.Reservation, error)
	Revocation(ctx context.Context, code string) (promo.Revocation, bool, error)
}

// MaxCodeReservations bounds the live reservations a code's detail lists
// (a code with more has them counted in ReservedUses).
const MaxCodeReservations = 100

// CodeDetail is a code as an admin sees it (pkg/wire).
type CodeDetail = wire.CodeDetail

// CodeDetail looks a typed code up for an admin. Like Validate it
// recognises the code offline first and counts a failed look-up against
// client.
func (s *Service) CodeDetail(ctx context.Context, client Client, raw string) (CodeDetail, error) {
	canon, adm, err := s.recognise(ctx, client, raw)
	defer s.settle(adm)
	if err != nil {
		return CodeDetail{}, err
	}
	st, err := s.store.CodeState(ctx, canon, "")
	if promo.Is(err, promo.ENotFound) {
		return CodeDetail{}, failed(adm, promo.Refusal(promo.ReasonCodeNotFound, "no such code"))
	}
	if err != nil {
		return CodeDetail{}, err
	}
	d := CodeDetail{CodeView: s.codeView(ctx, st, "", nil), Used: st.Used, PromotionID: st.Promotion.IDString(),
		Reservations: []ReservationView{}, Owner: st.Owner}
	if st.Revoked {
		r, _, err := s.store.Revocation(ctx, canon)
		if err != nil {
			return CodeDetail{}, err
		}
		at := r.RevokedAt
		d.RevokedAt, d.RevokeReason = &at, r.Reason
	}
	rs, err := s.store.CodeReservations(ctx, st.Promotion.ID, canon, s.now(), MaxCodeReservations)
	if err != nil {
		return CodeDetail{}, err
	}
	for _, r := range rs {
		d.Reservations = append(d.Reservations, s.reservationView(ctx, r))
	}
	return d, nil
}

// Canonical is a typed code's canonical form, for the audit trail's code
// filter; a malformed code or a typo (check character) is invalid_code, and
// counted as a failed look-up against client.
func (s *Service) Canonical(ctx context.Context, client Client, raw string) (string, error) {
	canon, adm, err := s.recognise(ctx, client, raw)
	s.settle(adm)
	return canon, err
}
