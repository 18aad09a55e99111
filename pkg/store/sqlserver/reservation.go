package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

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
	return contract.ReadReservation(ctx, redemptionTx{s.db}, id)
}

// SweepReservations deletes up to limit reservations that ended before
// before; it returns how many.
func (s *Store) SweepReservations(ctx context.Context, before time.Time, limit int) (int64, error) {
	res, err := s.db.ExecContext(ctx, qSweepReservations, before.UTC(), limit)
	if err != nil {
		return 0, fmt.Errorf("sweep reservations: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sweep reservations: %w", err)
	}
	return n, nil
}

func (t redemptionTx) LockCode(ctx context.Context, code string, now time.Time) (contract.CodeUse, bool, error) {
	var u contract.CodeUse
	err := t.q.QueryRowContext(ctx, qLockCode, mssql.VarChar(code), now.UTC()).Scan(&u.PromotionID, &u.Used,
		&u.MaxUsage, &u.PerUserLimit)
	if errors.Is(err, sql.ErrNoRows) {
		return u, false, nil
	}
	return u, err == nil, err
}

func (t redemptionTx) CodeLoad(ctx context.Context, code string, now time.Time, exclude string) (int, error) {
	var n int
	err := t.q.QueryRowContext(ctx, qCodeLoad, mssql.VarChar(code), now.UTC(), mssql.VarChar(exclude)).Scan(&n)
	return n, err
}

func (t redemptionTx) LockAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error) {
	for attempt := 0; ; attempt++ {
		var used int
		err := t.q.QueryRowContext(ctx, qLockAllowanceUpdate, promotionID, userID, limit).Scan(&used)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, err
		}
		res, err := t.q.ExecContext(ctx, qLockAllowanceInsert, promotionID, userID)
		if uniqueViolation(err) && attempt == 0 {
			continue // a concurrent first reservation or use by this user committed the row: lock it
		}
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		return n == 1, err // 0: the row exists and is at the limit
	}
}

func (t redemptionTx) AllowanceLoad(ctx context.Context, promotionID int64, userID string, now time.Time, exclude string) (int, error) {
	var n int
	err := t.q.QueryRowContext(ctx, qAllowanceLoad, promotionID, userID, now.UTC(), mssql.VarChar(exclude)).Scan(&n)
	return n, err
}

func (t redemptionTx) InsertReservation(ctx context.Context, r promo.Reservation) error {
	_, err := t.q.ExecContext(ctx, qInsertReservation, mssql.VarChar(r.ID), r.PromotionID, mssql.VarChar(r.Code),
		r.UserID, r.CreatedAt.UTC(), r.ExpiresAt.UTC())
	return err
}

func (t redemptionTx) Reservation(ctx context.Context, id string) (promo.Reservation, bool, error) {
	r, err := scanReservation(t.q.QueryRowContext(ctx, qReservation, mssql.VarChar(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (t redemptionTx) MarkConfirmed(ctx context.Context, id, redemptionID, orderID string, now time.Time) (bool, error) {
	res, err := t.q.ExecContext(ctx, qMarkConfirmed, mssql.VarChar(id), mssql.VarChar(redemptionID), orderID, now.UTC())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t redemptionTx) MarkReleased(ctx context.Context, id string, now time.Time) (promo.Reservation, bool, error) {
	r, err := scanReservation(t.q.QueryRowContext(ctx, qMarkReleased, mssql.VarChar(id), now.UTC()))
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
		r      promo.Reservation
		status string
	)
	err := row.Scan(&r.ID, &r.PromotionID, &r.Code, &r.UserID, &status, &r.CreatedAt, &r.ExpiresAt, &r.SettledAt,
		&r.RedemptionID, &r.OrderID)
	r.Status = promo.ReservationStatus(status)
	r.CreatedAt, r.ExpiresAt, r.SettledAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC(), utcPtr(r.SettledAt)
	return r, err
}
