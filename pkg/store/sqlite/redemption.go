package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// CodeState reads a code with its promotion and, when userID is set, that
// user's uses in the promotion. ENotFound when there is no such code.
func (s *Store) CodeState(ctx context.Context, code, userID string) (promo.CodeState, error) {
	return contract.ReadCodeState(ctx, redemptionTx{s.r}, code, userID)
}

// Redeem uses a code once for a user, in one write transaction that enforces
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
	var q string
	var first any = f.PromotionID
	switch sel {
	case contract.ByPromotion:
		q = qRedemptions
	case contract.ByPromotionUser:
		q = qRedemptionsByUser
	case contract.ByPromotionCode:
		q = qRedemptionsByCode
	case contract.ByUser:
		q, first = qUserRedemptions, f.UserID
	}
	if sel != contract.ByUser {
		var exists bool
		if err := s.r.QueryRowContext(ctx, qPromotionExists, f.PromotionID).Scan(&exists); err != nil {
			return fmt.Errorf("look up promotion %d: %w", f.PromotionID, err)
		}
		if !exists {
			return contract.PromotionNotFound(f.PromotionID)
		}
	}
	rows, err := s.r.QueryContext(ctx, q, first, limit, f.After, f.Since, f.UserID+f.Code)
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, qClaimEvents, limit, formatTime(now.Add(lease)), formatTime(now))
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
	now := formatTime(time.Now())
	err := s.write(ctx, func(tx *sql.Tx) error {
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
	rows, err := s.r.QueryContext(ctx, qCodeSpaces, afterID, limit)
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

// querier is a write transaction, or the read pool for CodeState.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// redemptionTx binds the SQLite statements to one transaction for
// contract.Redeem and contract.Rollback.
type redemptionTx struct{ q querier }

var _ contract.RedemptionTx = redemptionTx{}

func (t redemptionTx) ClaimKey(ctx context.Context, key, hash string, now time.Time) (bool, error) {
	var one int
	err := t.q.QueryRowContext(ctx, qClaimKey, key, hash, formatTime(now)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
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
	err := t.q.QueryRowContext(ctx, qUseCode, code, formatTime(now)).Scan(&u.PromotionID, &u.Used, &u.MaxUsage,
		&u.PerUserLimit)
	if errors.Is(err, sql.ErrNoRows) {
		return u, false, nil
	}
	return u, err == nil, err
}

func (t redemptionTx) UnuseCode(ctx context.Context, code string) error {
	_, err := t.q.ExecContext(ctx, qUnuseCode, code)
	return err
}

func (t redemptionTx) UseAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error) {
	var used int
	err := t.q.QueryRowContext(ctx, qUseAllowance, promotionID, userID, limit).Scan(&used)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (t redemptionTx) InsertRedemption(ctx context.Context, r promo.Redemption, ev promo.OutboxEvent) error {
	if _, err := t.q.ExecContext(ctx, qInsertRedemption, r.ID, r.PromotionID, r.Code, r.UserID, nullString(r.OrderID),
		nullString(string(r.Metadata)), formatTime(r.RedeemedAt), r.UsesLeft, nullString(r.IdempotencyKey)); err != nil {
		return err
	}
	return t.InsertEvent(ctx, ev)
}

func (t redemptionTx) InsertEvent(ctx context.Context, ev promo.OutboxEvent) error {
	_, err := t.q.ExecContext(ctx, qInsertEvent, ev.Stream, ev.Key, string(ev.Payload), formatTime(time.Now()))
	return err
}

func (t redemptionTx) CodeState(ctx context.Context, code, userID string, now time.Time) (promo.CodeState, bool, error) {
	var st promo.CodeState
	p, err := scanPromotion(t.q.QueryRowContext(ctx, qCodeState, code, userID, formatTime(now)), &st.Code, &st.Used,
		&st.UserUsed, &st.Active, &st.Revoked, &st.Deleted, &st.Reserved, &st.UserReserved)
	if errors.Is(err, sql.ErrNoRows) {
		return st, false, nil
	}
	st.Promotion = p
	return st, err == nil, err
}

func (t redemptionTx) MarkRolledBack(ctx context.Context, id string, now time.Time, reason string) (promo.Redemption, bool, error) {
	r, err := scanRedemption(t.q.QueryRowContext(ctx, qMarkRolledBack, id, formatTime(now), nullString(reason)))
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (t redemptionTx) Redemption(ctx context.Context, id string) (promo.Redemption, bool, error) {
	r, err := scanRedemption(t.q.QueryRowContext(ctx, qRedemption, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (t redemptionTx) ReleaseCode(ctx context.Context, promotionID int64, code string) (int, bool, error) {
	var used int
	err := t.q.QueryRowContext(ctx, qReleaseCode, code, promotionID).Scan(&used)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return used, err == nil, err
}

func (t redemptionTx) RecordCodeRelease(ctx context.Context, id string, release promo.CodeRelease) error {
	_, err := t.q.ExecContext(ctx, qRecordCodeRelease, id, string(release))
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
		r                  promo.Redemption
		metadata, rolledAt sql.NullString
		redeemedAt         string
	)
	var release string
	err := row.Scan(&r.ID, &r.PromotionID, &r.Code, &r.UserID, &r.OrderID, &metadata, &redeemedAt, &r.UsesLeft,
		&rolledAt, &r.RollbackReason, &r.IdempotencyKey, &release)
	r.CodeRelease = promo.CodeRelease(release)
	if err != nil {
		return r, err
	}
	if metadata.Valid {
		r.Metadata = []byte(metadata.String)
	}
	if r.RedeemedAt, err = parseTime(redeemedAt); err != nil {
		return r, fmt.Errorf("redemption %s: redeemed_at: %w", r.ID, err)
	}
	if rolledAt.Valid {
		t, err := parseTime(rolledAt.String)
		if err != nil {
			return r, fmt.Errorf("redemption %s: rolled_back_at: %w", r.ID, err)
		}
		r.RolledBackAt = &t
	}
	return r, nil
}

// SetPromotionActive switches a promotion on or off. ENotFound when there is
// no such promotion.
func (s *Store) SetPromotionActive(ctx context.Context, id int64, active bool) error {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
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

// PruneEvents deletes up to limit outbox events published before before,
// and returns how many it deleted.
func (s *Store) PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, qPruneEvents, formatTime(before), limit)
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
	return s.write(ctx, func(tx *sql.Tx) error { return fn(redemptionTx{tx}) })
}
