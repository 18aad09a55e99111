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

// RevokeCode makes one code unusable (contract.Revoke); replayed when it was
// revoked before.
func (s *Store) RevokeCode(ctx context.Context, req promo.RevokeRequest) (promo.Revocation, bool, error) {
	return contract.RunRevoke(ctx, s.redemptionTx, req)
}

// AuditLog returns one page of a promotion's audit log, newest first.
func (s *Store) AuditLog(ctx context.Context, f promo.AuditFilter) ([]promo.AuditEntry, error) {
	var exists bool
	if err := s.db.QueryRowContext(ctx, qPromotionExists, f.PromotionID).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up promotion %d: %w", f.PromotionID, err)
	}
	if !exists {
		return nil, contract.PromotionNotFound(f.PromotionID)
	}
	rows, err := s.db.QueryContext(ctx, qAuditLog, f.PromotionID, contract.PageLimit(f.Limit), mssql.VarChar(f.After))
	if err != nil {
		return nil, fmt.Errorf("read audit log of promotion %d: %w", f.PromotionID, err)
	}
	defer rows.Close()
	var out []promo.AuditEntry
	for rows.Next() {
		var (
			a      promo.AuditEntry
			detail string
		)
		if err := rows.Scan(&a.ID, &a.At, &a.Actor, &a.Action, &a.PromotionID, &a.Code, &detail); err != nil {
			return nil, fmt.Errorf("read audit log of promotion %d: %w", f.PromotionID, err)
		}
		a.At = a.At.UTC()
		if detail != "" {
			a.Detail = []byte(detail)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log of promotion %d: %w", f.PromotionID, err)
	}
	return out, nil
}

func (t redemptionTx) RevokeCode(ctx context.Context, code string, now time.Time, reason string) (int64, bool, error) {
	var pid int64
	err := t.q.QueryRowContext(ctx, qRevokeCode, mssql.VarChar(code), now.UTC(), reason).Scan(&pid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return pid, err == nil, err
}

func (t redemptionTx) Revocation(ctx context.Context, code string) (promo.Revocation, bool, bool, error) {
	r := promo.Revocation{Code: code}
	var at sql.NullTime
	err := t.q.QueryRowContext(ctx, qRevocation, mssql.VarChar(code)).Scan(&r.PromotionID, &at, &r.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, false, nil
	}
	if at.Valid {
		r.RevokedAt = at.Time.UTC()
	}
	return r, at.Valid, err == nil, err
}

func (t redemptionTx) InsertAudit(ctx context.Context, a promo.AuditEntry) error {
	_, err := t.q.ExecContext(ctx, qInsertAudit, mssql.VarChar(a.ID), a.At.UTC(), a.Actor, mssql.VarChar(a.Action),
		a.PromotionID, mssql.VarChar(a.Code), string(a.Detail))
	return err
}

// UpdatePromotion changes a promotion's name, window or active flag
// (contract.UpdatePromotion).
func (s *Store) UpdatePromotion(ctx context.Context, u promo.PromotionUpdate) (promo.PromotionSettings, error) {
	return contract.RunUpdatePromotion(ctx, s.redemptionTx, u)
}

func (t redemptionTx) UpdatePromotion(ctx context.Context, u promo.PromotionUpdate) (promo.PromotionSettings, bool, error) {
	var (
		ps                  promo.PromotionSettings
		name                sql.NullString
		active              sql.NullBool
		startsAt, expiresAt sql.NullTime
	)
	if u.Name != nil {
		name = sql.NullString{String: *u.Name, Valid: true}
	}
	if u.Active != nil {
		active = sql.NullBool{Bool: *u.Active, Valid: true}
	}
	if u.StartsAt != nil {
		startsAt = sql.NullTime{Time: u.StartsAt.UTC(), Valid: true}
	}
	if u.ExpiresAt != nil {
		expiresAt = sql.NullTime{Time: u.ExpiresAt.UTC(), Valid: true}
	}
	var gotStarts, gotExpires sql.NullTime
	err := t.q.QueryRowContext(ctx, qUpdatePromotion, u.ID, name, u.SetStartsAt, startsAt, u.SetExpiresAt, expiresAt,
		active).Scan(&ps.ID, &ps.Name, &gotStarts, &gotExpires, &ps.Active)
	if errors.Is(err, sql.ErrNoRows) {
		return ps, false, nil
	}
	if gotStarts.Valid {
		ps.StartsAt = utcPtr(&gotStarts.Time)
	}
	if gotExpires.Valid {
		ps.ExpiresAt = utcPtr(&gotExpires.Time)
	}
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
	err := t.q.QueryRowContext(ctx, q, id).Scan(&st.Deleting, &st.Cancelled)
	if errors.Is(err, sql.ErrNoRows) {
		return contract.PromotionState{}, nil
	}
	return st, err
}

func (t redemptionTx) FlagCancelled(ctx context.Context, promotionID int64, now time.Time) (bool, error) {
	res, err := t.q.ExecContext(ctx, qFlagCancelled, promotionID, now.UTC())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// CancelPromotion stops a promotion's generation (contract.Cancel); replayed
// when it was cancelled before.
func (s *Store) CancelPromotion(ctx context.Context, req promo.CancelRequest) (bool, error) {
	return contract.RunCancel(ctx, s.redemptionTx, req)
}

func (t redemptionTx) CancelBatches(ctx context.Context, promotionID int64, now time.Time) (int64, error) {
	res, err := t.q.ExecContext(ctx, qCancelBatches, promotionID, now.UTC())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// TopUp adds codes to a generated promotion (contract.TopUp); replayed when
// its Idempotency-Key answered a recorded top-up.
func (s *Store) TopUp(ctx context.Context, req promo.TopUpRequest) (promo.TopUp, bool, error) {
	return contract.RunTopUp(ctx, s.redemptionTx, req)
}

// TopUps lists a promotion's top-ups, oldest first.
func (s *Store) TopUps(ctx context.Context, id int64) ([]promo.TopUp, error) {
	return contract.ListTopUps(ctx, redemptionTx{s.db}, id)
}

func (t redemptionTx) GrowPromotion(ctx context.Context, id, n int64) (string, int64, bool, error) {
	var (
		counter string
		total   int64
	)
	err := t.q.QueryRowContext(ctx, qGrowPromotion, id, n).Scan(&counter, &total)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, false, nil
	}
	return counter, total, err == nil, err
}

func (t redemptionTx) ReserveSeq(ctx context.Context, counter string, n int64) (int64, error) {
	var start int64
	err := t.q.QueryRowContext(ctx, qReserve, counter, n).Scan(&start)
	return start, err
}

func (t redemptionTx) NextNumbers(ctx context.Context, id int64) (int, int, error) {
	var batchNo, no int
	err := t.q.QueryRowContext(ctx, qNextNumbers, id).Scan(&batchNo, &no)
	return batchNo, no, err
}

func (t redemptionTx) InsertTopUp(ctx context.Context, id int64, tu promo.TopUp, batchSize int64, key, hash string) error {
	if _, err := t.q.ExecContext(ctx, qInsertTopUpBatches, id, int64(tu.SeqStart), batchSize, tu.CodeCount, tu.BatchCount,
		tu.CreatedAt.UTC(), tu.FirstBatchNo); err != nil {
		return fmt.Errorf("insert %d batches: %w", tu.BatchCount, err)
	}
	_, err := t.q.ExecContext(ctx, qInsertTopUp, id, tu.No, tu.CodeCount, int64(tu.SeqStart), tu.FirstBatchNo, tu.BatchCount,
		tu.CreatedAt.UTC(), key, mssql.VarChar(hash))
	return err
}

func (t redemptionTx) StoredTopUp(ctx context.Context, id int64, key string) (promo.TopUp, string, bool, error) {
	var hash string
	tu, err := scanTopUp(t.q.QueryRowContext(ctx, qStoredTopUp, id, key), &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return tu, "", false, nil
	}
	return tu, hash, err == nil, err
}

func scanTopUp(row scanner, more ...any) (promo.TopUp, error) {
	var (
		tu    promo.TopUp
		start int64
	)
	err := row.Scan(append([]any{&tu.No, &tu.CodeCount, &start, &tu.FirstBatchNo, &tu.BatchCount, &tu.CreatedAt}, more...)...)
	tu.SeqStart, tu.CreatedAt = uint64(start), tu.CreatedAt.UTC()
	return tu, err
}

func (t redemptionTx) TopUps(ctx context.Context, id int64) ([]promo.TopUp, error) {
	rows, err := t.q.QueryContext(ctx, qTopUps, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []promo.TopUp
	for rows.Next() {
		tu, err := scanTopUp(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, tu)
	}
	return out, rows.Err()
}

// ExpiredPromotions lists the promotions that ended before before.
func (s *Store) ExpiredPromotions(ctx context.Context, before time.Time) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, qExpiredPromotions, before.UTC())
	if err != nil {
		return nil, fmt.Errorf("list expired promotions: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list expired promotions: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list expired promotions: %w", err)
	}
	return ids, nil
}

// PurgeCount counts a promotion's codes and redemptions.
func (s *Store) PurgeCount(ctx context.Context, id int64) (codes, redemptions int64, err error) {
	err = s.db.QueryRowContext(ctx, qPurgeCount, id).Scan(&codes, &redemptions)
	if err != nil {
		err = fmt.Errorf("count rows of promotion %d: %w", id, err)
	}
	return codes, redemptions, err
}

// RecordPurge writes a purge's audit row and event.
func (s *Store) RecordPurge(ctx context.Context, a promo.AuditEntry) error {
	return contract.RunRecordPurge(ctx, s.redemptionTx, a)
}

// PurgeRows deletes up to limit of a promotion's rows from table, in one
// statement; it returns how many.
func (s *Store) PurgeRows(ctx context.Context, table string, id int64, limit int) (int64, error) {
	if err := contract.CheckPurgeTable(table); err != nil {
		return 0, err
	}
	if table == "redemptions" {
		var n int64
		if err := s.db.QueryRowContext(ctx, qPurge[table], id, limit).Scan(&n); err != nil {
			return 0, fmt.Errorf("purge %s of promotion %d: %w", table, id, err)
		}
		return n, nil
	}
	res, err := s.db.ExecContext(ctx, qPurge[table], id, limit)
	if err != nil {
		return 0, fmt.Errorf("purge %s of promotion %d: %w", table, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge %s of promotion %d: %w", table, id, err)
	}
	return n, nil
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
	rows, err := s.db.QueryContext(ctx, qDeletionsPending)
	if err != nil {
		return nil, fmt.Errorf("list pending deletions: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list pending deletions: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pending deletions: %w", err)
	}
	return ids, nil
}

// Deletion reads where a promotion's deletion stands.
func (s *Store) Deletion(ctx context.Context, id int64) (promo.Deletion, error) {
	var (
		d        promo.Deletion
		req, del sql.NullTime
	)
	err := s.db.QueryRowContext(ctx, qDeletion, id).Scan(&req, &del)
	if errors.Is(err, sql.ErrNoRows) {
		return d, contract.PromotionNotFound(id)
	}
	if err != nil {
		return d, fmt.Errorf("read deletion of promotion %d: %w", id, err)
	}
	if req.Valid {
		d.RequestedAt = utcPtr(&req.Time)
	}
	if del.Valid {
		d.DeletedAt = utcPtr(&del.Time)
	}
	return d, nil
}

func (t redemptionTx) RequestDeletion(ctx context.Context, id int64, now time.Time) (bool, error) {
	res, err := t.q.ExecContext(ctx, qRequestDeletion, id, now.UTC())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t redemptionTx) FinishDeletion(ctx context.Context, id int64, now time.Time) (bool, error) {
	res, err := t.q.ExecContext(ctx, qFinishDeletion, id, now.UTC())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
