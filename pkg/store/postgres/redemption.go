package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// CodeState reads a code with its promotion and, when userID is set, that
// user's uses in the promotion. ENotFound when there is no such code.
func (s *Store) CodeState(ctx context.Context, code, userID string) (promo.CodeState, error) {
	return contract.ReadCodeState(ctx, redemptionTx{s.pool}, code, userID)
}

// Redeem uses a code once for a user, in one transaction that enforces every
// limit with conditional statements (see redemption_queries.go) and writes
// the audit row, the outbox event and the idempotency record.
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
	var lim any = limit
	if limit < 0 {
		lim = nil // LIMIT NULL: all rows
	}
	args := []any{f.PromotionID, lim, f.After, f.Since}
	var q string
	switch sel {
	case contract.ByPromotion:
		q = qRedemptions
	case contract.ByPromotionUser:
		q, args = qRedemptionsByUser, append(args, f.UserID)
	case contract.ByPromotionCode:
		q, args = qRedemptionsByCode, append(args, f.Code)
	case contract.ByUser:
		q, args[0] = qUserRedemptions, f.UserID
	}
	if sel != contract.ByUser {
		if err := s.promotionExists(ctx, f.PromotionID); err != nil {
			return err
		}
	}
	rows, err := s.pool.Query(ctx, q, args...)
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

func (s *Store) promotionExists(ctx context.Context, id int64) error {
	var ok bool
	if err := s.pool.QueryRow(ctx, qPromotionExists, id).Scan(&ok); err != nil {
		return fmt.Errorf("look up promotion %d: %w", id, err)
	}
	if !ok {
		return contract.PromotionNotFound(id)
	}
	return nil
}

// ClaimEvents leases up to limit unpublished events for lease and returns
// them in outbox order. Another publisher skips them until the lease ends.
func (s *Store) ClaimEvents(ctx context.Context, limit int, lease time.Duration) ([]promo.OutboxEvent, error) {
	now := time.Now().UTC()
	rows, err := s.pool.Query(ctx, qClaimEvents, limit, now.Add(lease), now)
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (promo.OutboxEvent, error) {
		var (
			ev      promo.OutboxEvent
			payload string
		)
		err := row.Scan(&ev.Seq, &ev.Stream, &ev.Key, &payload)
		ev.Payload = []byte(payload)
		return ev, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", err)
	}
	slices.SortFunc(evs, func(a, b promo.OutboxEvent) int { return int(a.Seq - b.Seq) })
	return evs, nil
}

// MarkEventsPublished records that the broker acknowledged these events.
func (s *Store) MarkEventsPublished(ctx context.Context, seqs []int64) error {
	if _, err := s.pool.Exec(ctx, qMarkEventsPublished, seqs, time.Now().UTC()); err != nil {
		return fmt.Errorf("mark %d events published: %w", len(seqs), err)
	}
	return nil
}

// CodeSpaces returns up to limit promotions with an id above afterID, with
// only what recognising their codes needs: kind, format, vanity code.
func (s *Store) CodeSpaces(ctx context.Context, afterID int64, limit int) ([]promo.Promotion, error) {
	rows, err := s.pool.Query(ctx, qCodeSpaces, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list code spaces: %w", err)
	}
	ps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (promo.Promotion, error) {
		var (
			p            promo.Promotion
			kind, format string
		)
		if err := row.Scan(&p.ID, &kind, &format, &p.VanityCode); err != nil {
			return p, err
		}
		p.Kind = promo.Kind(kind)
		return p, contract.DecodeFormat(&p, format)
	})
	if err != nil {
		return nil, fmt.Errorf("list code spaces: %w", err)
	}
	return ps, nil
}

// querier is what redemptionTx needs: a transaction, or the pool for reads.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// redemptionTx binds the PostgreSQL statements to one transaction for
// contract.Redeem and contract.Rollback.
type redemptionTx struct{ q querier }

var _ contract.RedemptionTx = redemptionTx{}

func (t redemptionTx) ClaimKey(ctx context.Context, key, hash string, now time.Time) (bool, error) {
	var ok bool
	err := t.q.QueryRow(ctx, qClaimKey, key, hash, now).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (t redemptionTx) StoredOutcome(ctx context.Context, key string) (hash, refused, id string, err error) {
	err = t.q.QueryRow(ctx, qStoredOutcome, key).Scan(&hash, &refused, &id)
	return hash, refused, id, err
}

func (t redemptionTx) SaveOutcome(ctx context.Context, key, refused, id string) error {
	_, err := t.q.Exec(ctx, qSaveOutcome, key, refused, id)
	return err
}

func (t redemptionTx) UseCode(ctx context.Context, code string, now time.Time) (contract.CodeUse, bool, error) {
	var u contract.CodeUse
	err := t.q.QueryRow(ctx, qUseCode, code, now).Scan(&u.PromotionID, &u.Used, &u.MaxUsage, &u.PerUserLimit)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, false, nil
	}
	return u, err == nil, err
}

func (t redemptionTx) UnuseCode(ctx context.Context, code string) error {
	_, err := t.q.Exec(ctx, qUnuseCode, code)
	return err
}

func (t redemptionTx) UseAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error) {
	var used int
	err := t.q.QueryRow(ctx, qUseAllowance, promotionID, userID, limit).Scan(&used)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (t redemptionTx) InsertRedemption(ctx context.Context, r promo.Redemption, ev promo.OutboxEvent) error {
	_, err := t.q.Exec(ctx, qInsertRedemption, r.ID, r.PromotionID, r.Code, r.UserID, nullString(r.OrderID),
		nullString(string(r.Metadata)), r.RedeemedAt, r.UsesLeft, nullString(r.IdempotencyKey),
		ev.Stream, ev.Key, string(ev.Payload))
	return err
}

func (t redemptionTx) InsertEvent(ctx context.Context, ev promo.OutboxEvent) error {
	_, err := t.q.Exec(ctx, qInsertEvent, ev.Stream, ev.Key, string(ev.Payload), time.Now().UTC())
	return err
}

func (t redemptionTx) CodeState(ctx context.Context, code, userID string, now time.Time) (promo.CodeState, bool, error) {
	var st promo.CodeState
	p, err := scanPromotion(t.q.QueryRow(ctx, qCodeState, code, userID, now), &st.Code, &st.Used, &st.UserUsed, &st.Active,
		&st.Revoked, &st.Deleted, &st.Reserved, &st.UserReserved)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, false, nil
	}
	st.Promotion = p
	return st, err == nil, err
}

func (t redemptionTx) MarkRolledBack(ctx context.Context, id string, now time.Time, reason string) (promo.Redemption, bool, error) {
	r, err := scanRedemption(t.q.QueryRow(ctx, qMarkRolledBack, id, now, nullString(reason)))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (t redemptionTx) Redemption(ctx context.Context, id string) (promo.Redemption, bool, error) {
	r, err := scanRedemption(t.q.QueryRow(ctx, qRedemption, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (t redemptionTx) ReleaseCode(ctx context.Context, promotionID int64, code string) (int, bool, error) {
	var used int
	err := t.q.QueryRow(ctx, qReleaseCode, code, promotionID).Scan(&used)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return used, err == nil, err
}

func (t redemptionTx) RecordCodeRelease(ctx context.Context, id string, release promo.CodeRelease) error {
	_, err := t.q.Exec(ctx, qRecordCodeRelease, id, string(release))
	return err
}

func (t redemptionTx) ReleaseAllowance(ctx context.Context, promotionID int64, userID string) error {
	_, err := t.q.Exec(ctx, qReleaseAllowance, promotionID, userID)
	return err
}

func scanRedemption(row pgx.Row) (promo.Redemption, error) {
	var (
		r        promo.Redemption
		metadata *string
		release  string
	)
	err := row.Scan(&r.ID, &r.PromotionID, &r.Code, &r.UserID, &r.OrderID, &metadata, &r.RedeemedAt, &r.UsesLeft,
		&r.RolledBackAt, &r.RollbackReason, &r.IdempotencyKey, &release)
	r.CodeRelease = promo.CodeRelease(release)
	if err != nil {
		return r, err
	}
	if metadata != nil {
		r.Metadata = []byte(*metadata)
	}
	r.RedeemedAt = r.RedeemedAt.UTC()
	r.RolledBackAt = utcPtr(r.RolledBackAt)
	return r, nil
}

// SetPromotionActive switches a promotion on or off. ENotFound when there is
// no such promotion.
func (s *Store) SetPromotionActive(ctx context.Context, id int64, active bool) error {
	tag, err := s.pool.Exec(ctx, qSetActive, id, active)
	if err != nil {
		return fmt.Errorf("set promotion %d active=%t: %w", id, active, err)
	}
	if tag.RowsAffected() == 0 {
		return contract.PromotionNotFound(id)
	}
	return nil
}

// PruneEvents deletes up to limit outbox events published before before,
// and returns how many it deleted.
func (s *Store) PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, qPruneEvents, before.UTC(), limit)
	if err != nil {
		return 0, fmt.Errorf("prune published events: %w", err)
	}
	return tag.RowsAffected(), nil
}

// redemptionTx runs fn in a transaction bound to the PostgreSQL statements.
func (s *Store) redemptionTx(ctx context.Context, fn func(contract.RedemptionTx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(redemptionTx{tx}) })
}
