package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// CodeState reads a code with its promotion and, when userID is set, that
// user's uses in the promotion. ENotFound when there is no such code.
func (s *Store) CodeState(ctx context.Context, code, userID string) (promo.CodeState, error) {
	return contract.ReadCodeState(ctx, redemptionTx{s.db}, code, userID)
}

// Redeem uses a code once for a user, in one transaction that enforces
// every limit with conditional statements (see redemption_queries.go) and
// writes the audit row, the outbox event and the idempotency record.
func (s *Store) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	return contract.RunRedeem(ctx, s.redemptionTx, req)
}

// Rollback gives a redemption's use back once; replayed is true when it had
// been rolled back before (and nothing was released now).
func (s *Store) Rollback(ctx context.Context, req promo.RollbackRequest) (promo.Redemption, bool, error) {
	return contract.RunRollback(ctx, s.redemptionTx, req)
}

// Redemptions returns one page of a promotion's audit trail, newest first.
func (s *Store) Redemptions(ctx context.Context, f promo.RedemptionFilter) ([]promo.Redemption, error) {
	return contract.CollectPage(f, func(limit int, fn func(promo.Redemption) error) error {
		return s.eachRedemption(ctx, f, limit, fn)
	})
}

// ExportRedemptions calls fn with every redemption that f selects, newest
// first, stepping through the rows (constant memory).
func (s *Store) ExportRedemptions(ctx context.Context, f promo.RedemptionFilter, fn func(promo.Redemption) error) error {
	return s.eachRedemption(ctx, f, -1, fn)
}

func (s *Store) eachRedemption(ctx context.Context, f promo.RedemptionFilter, limit int, fn func(promo.Redemption) error) error {
	sel, err := contract.SelectRedemptions(f)
	if err != nil {
		return err
	}
	if limit < 0 {
		limit = math.MaxInt32 // TOP needs a number: all rows
	}
	// The ids and codes are varchar: varchar parameters keep the seeks on
	// their indexes (an nvarchar one would convert every row).
	args := []any{f.PromotionID, limit, mssql.VarChar(f.After), mssql.VarChar(f.Since)}
	var q string
	switch sel {
	case contract.ByPromotion:
		q = qRedemptions
	case contract.ByPromotionUser:
		q, args = qRedemptionsByUser, append(args, f.UserID)
	case contract.ByPromotionCode:
		q, args = qRedemptionsByCode, append(args, mssql.VarChar(f.Code))
	case contract.ByUser:
		q, args[0] = qUserRedemptions, f.UserID
	}
	if sel != contract.ByUser {
		var exists bool
		if err := s.db.QueryRowContext(ctx, qPromotionExists, f.PromotionID).Scan(&exists); err != nil {
			return fmt.Errorf("look up promotion %d: %w", f.PromotionID, err)
		}
		if !exists {
			return contract.PromotionNotFound(f.PromotionID)
		}
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("list redemptions of %s: %w", contract.RedemptionsOf(f), err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRedemption(rows)
		if err != nil {
			return fmt.Errorf("list redemptions of %s: %w", contract.RedemptionsOf(f), err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list redemptions of %s: %w", contract.RedemptionsOf(f), err)
	}
	return nil
}

// ClaimEvents leases up to limit unpublished events for lease and returns
// them in outbox order.
func (s *Store) ClaimEvents(ctx context.Context, limit int, lease time.Duration) ([]promo.OutboxEvent, error) {
	var evs []promo.OutboxEvent
	now := time.Now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, qClaimEvents, limit, now.Add(lease).UTC(), now.UTC())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				ev      promo.OutboxEvent
				payload string
			)
			if err := rows.Scan(&ev.Seq, &ev.Stream, &ev.Key, &payload); err != nil {
				return err
			}
			ev.Payload = []byte(payload)
			evs = append(evs, ev)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", err)
	}
	slices.SortFunc(evs, func(a, b promo.OutboxEvent) int { return int(a.Seq - b.Seq) })
	return evs, nil
}

// MarkEventsPublished records that the broker acknowledged these events.
func (s *Store) MarkEventsPublished(ctx context.Context, seqs []int64) error {
	now := time.Now().UTC()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, seq := range seqs {
			if _, err := tx.ExecContext(ctx, qMarkEventPublished, seq, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %d events published: %w", len(seqs), err)
	}
	return nil
}

// CodeSpaces returns up to limit promotions with an id above afterID, with
// only what recognising their codes needs: kind, format, vanity code.
func (s *Store) CodeSpaces(ctx context.Context, afterID int64, limit int) ([]promo.Promotion, error) {
	rows, err := s.db.QueryContext(ctx, qCodeSpaces, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list code spaces: %w", err)
	}
	defer rows.Close()
	var ps []promo.Promotion
	for rows.Next() {
		var (
			p            promo.Promotion
			kind, format string
		)
		if err := rows.Scan(&p.ID, &kind, &format, &p.VanityCode); err != nil {
			return nil, fmt.Errorf("list code spaces: %w", err)
		}
		p.Kind = promo.Kind(kind)
		if err := contract.DecodeFormat(&p, format); err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list code spaces: %w", err)
	}
	return ps, nil
}

// querier is a transaction, or the pool for CodeState.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// redemptionTx binds the T-SQL statements to one transaction for
// contract.Redeem and contract.Rollback.
type redemptionTx struct{ q querier }

var _ contract.RedemptionTx = redemptionTx{}

func (t redemptionTx) ClaimKey(ctx context.Context, key, hash string, now time.Time) (bool, error) {
	_, err := t.q.ExecContext(ctx, qClaimKey, key, hash, now.UTC())
	if uniqueViolation(err) {
		return false, nil
	}
	return err == nil, err
}

func (t redemptionTx) StoredOutcome(ctx context.Context, key string) (hash, refused, id string, err error) {
	err = t.q.QueryRowContext(ctx, qStoredOutcome, key).Scan(&hash, &refused, &id)
	return hash, refused, id, err
}

func (t redemptionTx) SaveOutcome(ctx context.Context, key, refused, id string) error {
	_, err := t.q.ExecContext(ctx, qSaveOutcome, key, refused, id)
	return err
}

func (t redemptionTx) UseCode(ctx context.Context, code string, now time.Time) (contract.CodeUse, bool, error) {
	var u contract.CodeUse
	err := t.q.QueryRowContext(ctx, qUseCode, mssql.VarChar(code), now.UTC()).Scan(&u.PromotionID, &u.Used, &u.MaxUsage,
		&u.PerUserLimit)
	if errors.Is(err, sql.ErrNoRows) {
		return u, false, nil
	}
	return u, err == nil, err
}

func (t redemptionTx) UnuseCode(ctx context.Context, code string) error {
	_, err := t.q.ExecContext(ctx, qUnuseCode, mssql.VarChar(code))
	return err
}

func (t redemptionTx) UseAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error) {
	for attempt := 0; ; attempt++ {
		var used int
		err := t.q.QueryRowContext(ctx, qUseAllowanceUpdate, promotionID, userID, limit).Scan(&used)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, err
		}
		res, err := t.q.ExecContext(ctx, qUseAllowanceInsert, promotionID, userID)
		if uniqueViolation(err) && attempt == 0 {
			continue // a concurrent first use by this user committed the row: update it
		}
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		return n == 1, err // 0: the row exists and is at the limit
	}
}

func (t redemptionTx) InsertRedemption(ctx context.Context, r promo.Redemption, ev promo.OutboxEvent) error {
	if _, err := t.q.ExecContext(ctx, qInsertRedemption, mssql.VarChar(r.ID), r.PromotionID, mssql.VarChar(r.Code), r.UserID,
		nullString(r.OrderID), nullString(string(r.Metadata)), r.RedeemedAt.UTC(), r.UsesLeft, nullString(r.IdempotencyKey)); err != nil {
		return err
	}
	return t.InsertEvent(ctx, ev)
}

func (t redemptionTx) InsertEvent(ctx context.Context, ev promo.OutboxEvent) error {
	_, err := t.q.ExecContext(ctx, qInsertEvent, mssql.VarChar(ev.Stream), ev.Key, string(ev.Payload), time.Now().UTC())
	return err
}

func (t redemptionTx) CodeState(ctx context.Context, code, userID string, now time.Time) (promo.CodeState, bool, error) {
	var st promo.CodeState
	p, err := scanPromotion(t.q.QueryRowContext(ctx, qCodeState, mssql.VarChar(code), userID, now.UTC()), &st.Code,
		&st.Used, &st.UserUsed, &st.Active, &st.Revoked, &st.Reserved, &st.UserReserved)
	if errors.Is(err, sql.ErrNoRows) {
		return st, false, nil
	}
	st.Promotion = p
	return st, err == nil, err
}

func (t redemptionTx) MarkRolledBack(ctx context.Context, id string, now time.Time, reason string) (promo.Redemption, bool, error) {
	r, err := scanRedemption(t.q.QueryRowContext(ctx, qMarkRolledBack, mssql.VarChar(id), now.UTC(), nullString(reason)))
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (t redemptionTx) Redemption(ctx context.Context, id string) (promo.Redemption, bool, error) {
	r, err := scanRedemption(t.q.QueryRowContext(ctx, qRedemption, mssql.VarChar(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (t redemptionTx) ReleaseCode(ctx context.Context, promotionID int64, code string) (int, bool, error) {
	var used int
	err := t.q.QueryRowContext(ctx, qReleaseCode, mssql.VarChar(code), promotionID).Scan(&used)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return used, err == nil, err
}

func (t redemptionTx) RecordCodeRelease(ctx context.Context, id string, release promo.CodeRelease) error {
	_, err := t.q.ExecContext(ctx, qRecordCodeRelease, mssql.VarChar(id), mssql.VarChar(string(release)))
	return err
}

func (t redemptionTx) ReleaseAllowance(ctx context.Context, promotionID int64, userID string) error {
	_, err := t.q.ExecContext(ctx, qReleaseAllowance, promotionID, userID)
	return err
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanRedemption(row scanner) (promo.Redemption, error) {
	var (
		r        promo.Redemption
		metadata sql.NullString
		rolledAt sql.NullTime
		release  string
	)
	err := row.Scan(&r.ID, &r.PromotionID, &r.Code, &r.UserID, &r.OrderID, &metadata, &r.RedeemedAt, &r.UsesLeft,
		&rolledAt, &r.RollbackReason, &r.IdempotencyKey, &release)
	r.CodeRelease = promo.CodeRelease(release)
	if err != nil {
		return r, err
	}
	if metadata.Valid {
		r.Metadata = []byte(metadata.String)
	}
	r.RedeemedAt = r.RedeemedAt.UTC()
	if rolledAt.Valid {
		r.RolledBackAt = utcPtr(&rolledAt.Time)
	}
	return r, nil
}

// SetPromotionActive switches a promotion on or off. ENotFound when there is
// no such promotion.
func (s *Store) SetPromotionActive(ctx context.Context, id int64, active bool) error {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, qSetActive, id, active)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("set promotion %d active=%t: %w", id, active, err)
	}
	if n == 0 {
		return contract.PromotionNotFound(id)
	}
	return nil
}

// inTx runs fn in a READ COMMITTED transaction, committed when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, readCommitted)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// PruneEvents deletes up to limit outbox events published before before,
// and returns how many it deleted.
func (s *Store) PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, qPruneEvents, before.UTC(), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune published events: %w", err)
	}
	return n, nil
}

// redemptionTx runs fn in a write transaction bound to this store's statements.
func (s *Store) redemptionTx(ctx context.Context, fn func(contract.RedemptionTx) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return fn(redemptionTx{tx}) })
}
