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
	if err := contract.CheckReserveRequest(req); err != nil {
		return promo.ReserveOutcome{}, err
	}
	var out promo.ReserveOutcome
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = contract.Reserve(ctx, redemptionTx{tx}, req)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("reserve %q for %q: %w", req.Code, req.UserID, err)
	}
	return out, err
}

// Confirm turns a reservation into a redemption (contract.Confirm).
func (s *Store) Confirm(ctx context.Context, req promo.ConfirmRequest) (promo.ConfirmOutcome, error) {
	if err := contract.CheckConfirmRequest(req); err != nil {
		return promo.ConfirmOutcome{}, err
	}
	var out promo.ConfirmOutcome
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = contract.Confirm(ctx, redemptionTx{tx}, req)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("confirm reservation %q: %w", req.ReservationID, err)
	}
	return out, err
}

// Release ends a held reservation; replayed when it had been released before.
func (s *Store) Release(ctx context.Context, id string, now time.Time) (promo.Reservation, bool, error) {
	var (
		r        promo.Reservation
		replayed bool
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		r, replayed, err = contract.Release(ctx, redemptionTx{tx}, id, now)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("release reservation %q: %w", id, err)
	}
	return r, replayed, err
}

// Reservation reads one reservation; ENotFound when there is none.
func (s *Store) Reservation(ctx context.Context, id string) (promo.Reservation, error) {
	r, found, err := redemptionTx{s.pool}.Reservation(ctx, id)
	if err != nil {
		return r, fmt.Errorf("read reservation %q: %w", id, err)
	}
	if !found {
		return r, contract.ReservationNotFound(id)
	}
	return r, nil
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
