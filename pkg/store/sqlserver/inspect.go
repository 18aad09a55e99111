package sqlserver

import (
	"context"
	"fmt"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// What an admin's view of a code reads besides its state (CodeState): its
// live reservations and its revocation. Side by side with
// ../sqlite/inspect.go and ../postgres/inspect.go.

// qCodeReservations: @p1 the code, @p2 its promotion, @p3 now, @p4 the
// limit (the filtered index reservations_held_by_code serves it).
const qCodeReservations = `SELECT TOP (@p4) ` + reservationCols + ` FROM reservations
WHERE code = @p1 AND promotion_id = @p2 AND status = 'held' AND expires_at > @p3 ORDER BY expires_at`

// CodeReservations returns the live reservations (held, not expired at
// now) of promotion promotionID's code (canonical), soonest to expire
// first, at most limit.
func (s *Store) CodeReservations(ctx context.Context, promotionID int64, code string, now time.Time, limit int) ([]promo.Reservation, error) {
	rows, err := s.db.QueryContext(ctx, qCodeReservations, mssql.VarChar(code), promotionID, now.UTC(), limit)
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
	return contract.ReadRevocation(ctx, redemptionTx{s.db}, code)
}
