package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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
	return contract.ReadReservation(ctx, redemptionTx{s.r}, id)
}

// SweepReservations deletes up to limit reservations that ended before
// before; it returns how many.
func (s *Store) SweepReservations(ctx context.Context, before time.Time, limit int) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, qSweepReservations, formatTime(before), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sweep reservations: %w", err)
	}
	return n, nil
}

func (t redemptionTx) LockCode(ctx context.Context, code string, now time.Time) (contract.CodeUse, bool, error) {
	var u contract.CodeUse
	err := t.q.QueryRowContext(ctx, qLockCode, code, formatTime(now)).Scan(&u.PromotionID, &u.Used, &u.MaxUsage,
		&u.PerUserLimit)
	if errors.Is(err, sql.ErrNoRows) {
		return u, false, nil
	}
	return u, err == nil, err
}

func (t redemptionTx) CodeLoad(ctx context.Context, code string, now time.Time, exclude string) (int, error) {
	var n int
	err := t.q.QueryRowContext(ctx, qCodeLoad, code, formatTime(now), exclude).Scan(&n)
	return n, err
}

func (t redemptionTx) LockAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error) {
	var used int
	err := t.q.QueryRowContext(ctx, qLockAllowance, promotionID, userID, limit).Scan(&used)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (t redemptionTx) AllowanceLoad(ctx context.Context, promotionID int64, userID string, now time.Time, exclude string) (int, error) {
	var n int
	err := t.q.QueryRowContext(ctx, qAllowanceLoad, promotionID, userID, formatTime(now), exclude).Scan(&n)
	return n, err
}

func (t redemptionTx) InsertReservation(ctx context.Context, r promo.Reservation) error {
	_, err := t.q.ExecContext(ctx, qInsertReservation, r.ID, r.PromotionID, r.Code, r.UserID, formatTime(r.CreatedAt),
		formatTime(r.ExpiresAt))
	return err
}

func (t redemptionTx) Reservation(ctx context.Context, id string) (promo.Reservation, bool, error) {
	r, err := scanReservation(t.q.QueryRowContext(ctx, qReservation, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (t redemptionTx) MarkConfirmed(ctx context.Context, id, redemptionID, orderID string, now time.Time) (bool, error) {
	res, err := t.q.ExecContext(ctx, qMarkConfirmed, id, redemptionID, orderID, formatTime(now))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t redemptionTx) MarkReleased(ctx context.Context, id string, now time.Time) (promo.Reservation, bool, error) {
	r, err := scanReservation(t.q.QueryRowContext(ctx, qMarkReleased, id, formatTime(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (t redemptionTx) SaveReservationOutcome(ctx context.Context, key, refused, id string) error {
	_, err := t.q.ExecContext(ctx, qSaveReservationOutcome, key, refused, id)
	return err
}

func (t redemptionTx) StoredReservationOutcome(ctx context.Context, key string) (hash, refused, id string, err error) {
	err = t.q.QueryRowContext(ctx, qStoredReservationOutcome, key).Scan(&hash, &refused, &id)
	return hash, refused, id, err
}

func scanReservation(row scanner) (promo.Reservation, error) {
	var (
		r               promo.Reservation
		status, created string
		expires         string
		settled         sql.NullString
	)
	err := row.Scan(&r.ID, &r.PromotionID, &r.Code, &r.UserID, &status, &created, &expires, &settled,
		&r.RedemptionID, &r.OrderID)
	if err != nil {
		return r, err
	}
	r.Status = promo.ReservationStatus(status)
	if r.CreatedAt, err = parseTime(created); err != nil {
		return r, fmt.Errorf("reservation %s: created_at: %w", r.ID, err)
	}
	if r.ExpiresAt, err = parseTime(expires); err != nil {
		return r, fmt.Errorf("reservation %s: expires_at: %w", r.ID, err)
	}
	if settled.Valid {
		t, err := parseTime(settled.String)
		if err != nil {
			return r, fmt.Errorf("reservation %s: settled_at: %w", r.ID, err)
		}
		r.SettledAt = &t
	}
	return r, nil
}
