package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// What an admin's view of a code reads besides its state (CodeState): its
// live reservations and its revocation. Side by side with
// ../postgres/inspect.go and ../sqlserver/inspect.go.

// qCodeReservations: ?1 the code, ?2 its promotion, ?3 now, ?4 the limit.
const qCodeReservations = `SELECT ` + reservationCols + ` FROM reservations
WHERE code = ?1 AND promotion_id = ?2 AND status = 'held' AND expires_at > ?3 ORDER BY expires_at LIMIT ?4`

// CodeReservations returns the live reservations (held, not expired at
// now) of promotion promotionID's code (canonical), soonest to expire
// first, at most limit.
func (s *Store) CodeReservations(ctx context.Context, promotionID int64, code string, now time.Time, limit int) ([]promo.Reservation, error) {
	rows, err := s.r.QueryContext(ctx, qCodeReservations, code, promotionID, formatTime(now), limit)
	if err != nil {
		return nil, fmt.Errorf("reservations of code %s: %w", code, err)
	}
	defer rows.Close()
	out, err := contract.CollectRows(rows, func() (promo.Reservation, error) { return scanReservation(rows) })
	if err != nil {
		return nil, fmt.Errorf("reservations of code %s: %w", code, err)
	}
	return out, nil
}

// Revocation reads a code's (canonical) revocation: revoked is false for
// a code that is not revoked; ENotFound for no such code.
func (s *Store) Revocation(ctx context.Context, code string) (promo.Revocation, bool, error) {
	return contract.ReadRevocation(ctx, redemptionTx{s.r}, code)
}
