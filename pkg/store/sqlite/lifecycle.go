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

// RevokeCode makes one code unusable (contract.Revoke); replayed when it was
// revoked before.
func (s *Store) RevokeCode(ctx context.Context, req promo.RevokeRequest) (promo.Revocation, bool, error) {
	return contract.RunRevoke(ctx, s.redemptionTx, req)
}

// AuditLog returns one page of a promotion's audit log, newest first.
func (s *Store) AuditLog(ctx context.Context, f promo.AuditFilter) ([]promo.AuditEntry, error) {
	var exists bool
	if err := s.r.QueryRowContext(ctx, qPromotionExists, f.PromotionID).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up promotion %d: %w", f.PromotionID, err)
	}
	if !exists {
		return nil, contract.PromotionNotFound(f.PromotionID)
	}
	rows, err := s.r.QueryContext(ctx, qAuditLog, f.PromotionID, contract.PageLimit(f.Limit), f.After)
	if err != nil {
		return nil, fmt.Errorf("read audit log of promotion %d: %w", f.PromotionID, err)
	}
	defer rows.Close()
	var out []promo.AuditEntry
	for rows.Next() {
		var (
			a          promo.AuditEntry
			at, detail string
		)
		if err := rows.Scan(&a.ID, &at, &a.Actor, &a.Action, &a.PromotionID, &a.Code, &detail); err != nil {
			return nil, fmt.Errorf("read audit log of promotion %d: %w", f.PromotionID, err)
		}
		if a.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("audit entry %s: at: %w", a.ID, err)
		}
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
	err := t.q.QueryRowContext(ctx, qRevokeCode, code, formatTime(now), reason).Scan(&pid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return pid, err == nil, err
}

func (t redemptionTx) Revocation(ctx context.Context, code string) (promo.Revocation, bool, bool, error) {
	r := promo.Revocation{Code: code}
	var at sql.NullString
	err := t.q.QueryRowContext(ctx, qRevocation, code).Scan(&r.PromotionID, &at, &r.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, false, nil
	}
	if err != nil {
		return r, false, false, err
	}
	if at.Valid {
		if r.RevokedAt, err = parseTime(at.String); err != nil {
			return r, false, true, fmt.Errorf("code %s: revoked_at: %w", code, err)
		}
	}
	return r, at.Valid, true, nil
}

func (t redemptionTx) InsertAudit(ctx context.Context, a promo.AuditEntry) error {
	_, err := t.q.ExecContext(ctx, qInsertAudit, a.ID, formatTime(a.At), a.Actor, a.Action, a.PromotionID, a.Code,
		string(a.Detail))
	return err
}
