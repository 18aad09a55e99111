package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// Reserve holds one use of a code for a user until req.Now+req.TTL, in one
// transaction that enforces every limit (see reservation_queries.go).
func (s *Store) Reserve(ctx context.Context, req promo.ReserveRequest) (promo.ReserveOutcome, error) {
	return contract.RunReserve(ctx, s.redemptionTx, req)
}

// Confirm turns a reservation into a redemption (contract.Confirm).
func (s *Store) Confirm(ctx context.Context, req promo.ConfirmRequest) (promo.ConfirmOutcome, error) {
	return contract.RunConfirm(ctx, s.redemptionTx, req)
}

// Release ends a held reservation; replayed when it had been released before.
func (s *Store) Release(ctx context.Context, id string, now time.Time) (promo.Reservation, bool, error) {
	return contract.RunRelease(ctx, s.redemptionTx, id, now)
}

// Reservation reads one reservation; ENotFound when there is none.
func (s *Store) Reservation(ctx context.Context, id string) (promo.Reservation, error) {
	return contract.ReadReservation(ctx, redemptionTx{s.pool}, id)
}

// SweepReservations deletes up to limit reservations that ended (expired,
// or were settled and expired) before before; it returns how many.
func (s *Store) SweepReservations(ctx context.Context, before time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, qSweepReservations, before.UTC(), limit)
	if err != nil {
		return 0, fmt.Errorf("sweep reservations: %w", err)
	}
	return tag.RowsAffected(), nil
}

func (t redemptionTx) LockCode(ctx context.Context, code string, now time.Time) (contract.CodeUse, bool, error) {
	var u contract.CodeUse
	err := t.q.QueryRow(ctx, qLockCode, code, now).Scan(&u.PromotionID, &u.Used, &u.MaxUsage, &u.PerUserLimit)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, false, nil
	}
	return u, err == nil, err
}

func (t redemptionTx) CodeLoad(ctx context.Context, code string, now time.Time, exclude string) (int, error) {
	var n int
	err := t.q.QueryRow(ctx, qCodeLoad, code, now, exclude).Scan(&n)
	return n, err
}

func (t redemptionTx) LockAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error) {
	var used int
	err := t.q.QueryRow(ctx, qLockAllowance, promotionID, userID, limit).Scan(&used)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (t redemptionTx) AllowanceLoad(ctx context.Context, promotionID int64, userID string, now time.Time, exclude string) (int, error) {
	var n int
	err := t.q.QueryRow(ctx, qAllowanceLoad, promotionID, userID, now, exclude).Scan(&n)
	return n, err
}

func (t redemptionTx) InsertReservation(ctx context.Context, r promo.Reservation) error {
	_, err := t.q.Exec(ctx, qInsertReservation, r.ID, r.PromotionID, r.Code, r.UserID, r.CreatedAt, r.ExpiresAt)
	return err
}

func (t redemptionTx) Reservation(ctx context.Context, id string) (promo.Reservation, bool, error) {
	r, err := scanReservation(t.q.QueryRow(ctx, qReservation, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (t redemptionTx) MarkConfirmed(ctx context.Context, id, redemptionID, orderID string, now time.Time) (bool, error) {
	tag, err := t.q.Exec(ctx, qMarkConfirmed, id, redemptionID, orderID, now)
	return err == nil && tag.RowsAffected() == 1, err
}

func (t redemptionTx) MarkReleased(ctx context.Context, id string, now time.Time) (promo.Reservation, bool, error) {
	r, err := scanReservation(t.q.QueryRow(ctx, qMarkReleased, id, now))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (t redemptionTx) SaveReservationOutcome(ctx context.Context, key, refused, id string) error {
	_, err := t.q.Exec(ctx, qSaveReservationOutcome, key, refused, id)
	return err
}

func (t redemptionTx) StoredReservationOutcome(ctx context.Context, key string) (hash, refused, id string, err error) {
	err = t.q.QueryRow(ctx, qStoredReservationOutcome, key).Scan(&hash, &refused, &id)
	return hash, refused, id, err
}

func scanReservation(row pgx.Row) (promo.Reservation, error) {
	var (
		r      promo.Reservation
		status string
	)
	err := row.Scan(&r.ID, &r.PromotionID, &r.Code, &r.UserID, &status, &r.CreatedAt, &r.ExpiresAt, &r.SettledAt,
		&r.RedemptionID, &r.OrderID)
	r.Status = promo.ReservationStatus(status)
	r.CreatedAt, r.ExpiresAt, r.SettledAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC(), utcPtr(r.SettledAt)
	return r, err
}
