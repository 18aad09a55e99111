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

// RevokeCode makes one code unusable (contract.Revoke); replayed when it was
// revoked before.
func (s *Store) RevokeCode(ctx context.Context, req promo.RevokeRequest) (promo.Revocation, bool, error) {
	return contract.RunRevoke(ctx, s.redemptionTx, req)
}

// AuditLog returns one page of a promotion's audit log, newest first.
func (s *Store) AuditLog(ctx context.Context, f promo.AuditFilter) ([]promo.AuditEntry, error) {
	if err := s.promotionExists(ctx, f.PromotionID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, qAuditLog, f.PromotionID, contract.PageLimit(f.Limit), f.After)
	if err != nil {
		return nil, fmt.Errorf("read audit log of promotion %d: %w", f.PromotionID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (promo.AuditEntry, error) {
		var (
			a      promo.AuditEntry
			detail string
		)
		err := row.Scan(&a.ID, &a.At, &a.Actor, &a.Action, &a.PromotionID, &a.Code, &detail)
		a.At = a.At.UTC()
		if detail != "" {
			a.Detail = []byte(detail)
		}
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log of promotion %d: %w", f.PromotionID, err)
	}
	return out, nil
}

func (t redemptionTx) RevokeCode(ctx context.Context, code string, now time.Time, reason string) (int64, bool, error) {
	var pid int64
	err := t.q.QueryRow(ctx, qRevokeCode, code, now, reason).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return pid, err == nil, err
}

func (t redemptionTx) Revocation(ctx context.Context, code string) (promo.Revocation, bool, bool, error) {
	r := promo.Revocation{Code: code}
	var at *time.Time
	err := t.q.QueryRow(ctx, qRevocation, code).Scan(&r.PromotionID, &at, &r.Reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, false, nil
	}
	if at != nil {
		r.RevokedAt = at.UTC()
	}
	return r, at != nil, err == nil, err
}

func (t redemptionTx) InsertAudit(ctx context.Context, a promo.AuditEntry) error {
	_, err := t.q.Exec(ctx, qInsertAudit, a.ID, a.At, a.Actor, a.Action, a.PromotionID, a.Code, string(a.Detail))
	return err
}

// UpdatePromotion changes a promotion's name, window or active flag
// (contract.UpdatePromotion).
func (s *Store) UpdatePromotion(ctx context.Context, u promo.PromotionUpdate) (promo.PromotionSettings, error) {
	return contract.RunUpdatePromotion(ctx, s.redemptionTx, u)
}

func (t redemptionTx) UpdatePromotion(ctx context.Context, u promo.PromotionUpdate) (promo.PromotionSettings, bool, error) {
	var ps promo.PromotionSettings
	err := t.q.QueryRow(ctx, qUpdatePromotion, u.ID, u.Name, u.SetStartsAt, u.StartsAt, u.SetExpiresAt, u.ExpiresAt,
		u.Active).Scan(&ps.ID, &ps.Name, &ps.StartsAt, &ps.ExpiresAt, &ps.Active)
	if errors.Is(err, pgx.ErrNoRows) {
		return ps, false, nil
	}
	ps.StartsAt, ps.ExpiresAt = utcPtr(ps.StartsAt), utcPtr(ps.ExpiresAt)
	return ps, err == nil, err
}

func (t redemptionTx) PromotionState(ctx context.Context, id int64) (contract.PromotionState, error) {
	return t.promotionState(ctx, qPromotionState, id)
}

func (t redemptionTx) LockPromotion(ctx context.Context, id int64) (contract.PromotionState, error) {
	return t.promotionState(ctx, qLockPromotion, id)
}

func (t redemptionTx) promotionState(ctx context.Context, q string, id int64) (contract.PromotionState, error) {
	st := contract.PromotionState{Found: true}
	err := t.q.QueryRow(ctx, q, id).Scan(&st.Deleting, &st.Cancelled)
	if errors.Is(err, pgx.ErrNoRows) {
		return contract.PromotionState{}, nil
	}
	return st, err
}

func (t redemptionTx) FlagCancelled(ctx context.Context, promotionID int64, now time.Time) (bool, error) {
	tag, err := t.q.Exec(ctx, qFlagCancelled, promotionID, now)
	return err == nil && tag.RowsAffected() == 1, err
}

// CancelPromotion stops a promotion's generation (contract.Cancel); replayed
// when it was cancelled before.
func (s *Store) CancelPromotion(ctx context.Context, req promo.CancelRequest) (bool, error) {
	return contract.RunCancel(ctx, s.redemptionTx, req)
}

func (t redemptionTx) CancelBatches(ctx context.Context, promotionID int64, now time.Time) (int64, error) {
	tag, err := t.q.Exec(ctx, qCancelBatches, promotionID, now)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// TopUp adds codes to a generated promotion (contract.TopUp); replayed when
// its Idempotency-Key answered a recorded top-up.
func (s *Store) TopUp(ctx context.Context, req promo.TopUpRequest) (promo.TopUp, bool, error) {
	return contract.RunTopUp(ctx, s.redemptionTx, req)
}

// TopUps lists a promotion's top-ups, oldest first.
func (s *Store) TopUps(ctx context.Context, id int64) ([]promo.TopUp, error) {
	return contract.ListTopUps(ctx, redemptionTx{s.pool}, id)
}

func (t redemptionTx) GrowPromotion(ctx context.Context, id, n int64) (string, int64, bool, error) {
	var (
		counter string
		total   int64
	)
	err := t.q.QueryRow(ctx, qGrowPromotion, id, n).Scan(&counter, &total)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, false, nil
	}
	return counter, total, err == nil, err
}

func (t redemptionTx) ReserveSeq(ctx context.Context, counter string, n int64) (int64, error) {
	var start int64
	err := t.q.QueryRow(ctx, qReserve, counter, n).Scan(&start)
	return start, err
}

func (t redemptionTx) NextNumbers(ctx context.Context, id int64) (int, int, error) {
	var batchNo, no int
	err := t.q.QueryRow(ctx, qNextNumbers, id).Scan(&batchNo, &no)
	return batchNo, no, err
}

func (t redemptionTx) InsertTopUp(ctx context.Context, id int64, tu promo.TopUp, batchSize int64, key, hash string) error {
	if _, err := t.q.Exec(ctx, qInsertTopUpBatches, id, int64(tu.SeqStart), batchSize, tu.CodeCount, tu.BatchCount,
		tu.CreatedAt, tu.FirstBatchNo); err != nil {
		return fmt.Errorf("insert %d batches: %w", tu.BatchCount, err)
	}
	_, err := t.q.Exec(ctx, qInsertTopUp, id, tu.No, tu.CodeCount, int64(tu.SeqStart), tu.FirstBatchNo, tu.BatchCount,
		tu.CreatedAt, key, hash)
	return err
}

func (t redemptionTx) StoredTopUp(ctx context.Context, id int64, key string) (promo.TopUp, string, bool, error) {
	var hash string
	tu, err := scanTopUp(t.q.QueryRow(ctx, qStoredTopUp, id, key), &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return tu, "", false, nil
	}
	return tu, hash, err == nil, err
}

func scanTopUp(row pgx.Row, more ...any) (promo.TopUp, error) {
	var (
		tu    promo.TopUp
		start int64
	)
	err := row.Scan(append([]any{&tu.No, &tu.CodeCount, &start, &tu.FirstBatchNo, &tu.BatchCount, &tu.CreatedAt}, more...)...)
	tu.SeqStart, tu.CreatedAt = uint64(start), tu.CreatedAt.UTC()
	return tu, err
}

func (t redemptionTx) TopUps(ctx context.Context, id int64) ([]promo.TopUp, error) {
	rows, err := t.q.Query(ctx, qTopUps, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (promo.TopUp, error) { return scanTopUp(row) })
}

// ExpiredPromotions lists the promotions that ended before before.
func (s *Store) ExpiredPromotions(ctx context.Context, before time.Time) ([]int64, error) {
	rows, err := s.pool.Query(ctx, qExpiredPromotions, before.UTC())
	if err != nil {
		return nil, fmt.Errorf("list expired promotions: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("list expired promotions: %w", err)
	}
	return ids, nil
}

// PurgeCount counts a promotion's codes and redemptions.
func (s *Store) PurgeCount(ctx context.Context, id int64) (codes, redemptions int64, err error) {
	err = s.pool.QueryRow(ctx, qPurgeCount, id).Scan(&codes, &redemptions)
	if err != nil {
		err = fmt.Errorf("count rows of promotion %d: %w", id, err)
	}
	return codes, redemptions, err
}

// PurgeRows deletes up to limit of a promotion's rows from table, in one
// statement; it returns how many.
func (s *Store) PurgeRows(ctx context.Context, table string, id int64, limit int) (int64, error) {
	if err := contract.CheckPurgeTable(table); err != nil {
		return 0, err
	}
	if table == "redemptions" {
		var n int64
		if err := s.pool.QueryRow(ctx, qPurge[table], id, limit).Scan(&n); err != nil {
			return 0, fmt.Errorf("purge %s of promotion %d: %w", table, id, err)
		}
		return n, nil
	}
	tag, err := s.pool.Exec(ctx, qPurge[table], id, limit)
	if err != nil {
		return 0, fmt.Errorf("purge %s of promotion %d: %w", table, id, err)
	}
	return tag.RowsAffected(), nil
}

// RecordPurge writes a purge's audit row and event.
func (s *Store) RecordPurge(ctx context.Context, a promo.AuditEntry) error {
	return contract.RunRecordPurge(ctx, s.redemptionTx, a)
}

// RequestDeletion starts deleting a promotion (contract.RequestDeletion).
func (s *Store) RequestDeletion(ctx context.Context, a promo.AuditEntry) (bool, error) {
	return contract.RunRequestDeletion(ctx, s.redemptionTx, a)
}

// FinishDeletion marks a purged promotion deleted, once, audited.
func (s *Store) FinishDeletion(ctx context.Context, a promo.AuditEntry) error {
	return contract.RunFinishDeletion(ctx, s.redemptionTx, a)
}

// DeletionsPending lists promotions whose deletion was requested and not
// finished.
func (s *Store) DeletionsPending(ctx context.Context) ([]int64, error) {
	rows, err := s.pool.Query(ctx, qDeletionsPending)
	if err != nil {
		return nil, fmt.Errorf("list pending deletions: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("list pending deletions: %w", err)
	}
	return ids, nil
}

// Deletion reads where a promotion's deletion stands.
func (s *Store) Deletion(ctx context.Context, id int64) (promo.Deletion, error) {
	var d promo.Deletion
	err := s.pool.QueryRow(ctx, qDeletion, id).Scan(&d.RequestedAt, &d.DeletedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, contract.PromotionNotFound(id)
	}
	if err != nil {
		return d, fmt.Errorf("read deletion of promotion %d: %w", id, err)
	}
	d.RequestedAt, d.DeletedAt = utcPtr(d.RequestedAt), utcPtr(d.DeletedAt)
	return d, nil
}

func (t redemptionTx) RequestDeletion(ctx context.Context, id int64, now time.Time) (bool, error) {
	tag, err := t.q.Exec(ctx, qRequestDeletion, id, now)
	return err == nil && tag.RowsAffected() == 1, err
}

func (t redemptionTx) FinishDeletion(ctx context.Context, id int64, now time.Time) (bool, error) {
	tag, err := t.q.Exec(ctx, qFinishDeletion, id, now)
	return err == nil && tag.RowsAffected() == 1, err
}
