package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/promocodes/promocodes/pkg/promo"
)

// qBacklog counts the open generation work: batches with codes still to
// write, except those of promotions whose deletion was requested.
const qBacklog = `SELECT
	coalesce(sum(CASE WHEN b.state NOT IN ('parked', 'cancelled') THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN b.state = 'parked' THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN b.state NOT IN ('parked', 'cancelled') THEN b.code_count - b.done ELSE 0 END), 0)
FROM batches b JOIN promotions p ON p.id = b.promotion_id
WHERE b.done < b.code_count AND p.delete_requested_at IS NULL`

// Backlog returns the generation work still open in the database.
func (s *Store) Backlog(ctx context.Context) (promo.Backlog, error) {
	var b promo.Backlog
	if err := s.r.QueryRowContext(ctx, qBacklog).Scan(&b.Incomplete, &b.Parked, &b.PendingCodes); err != nil {
		return promo.Backlog{}, fmt.Errorf("count open batches: %w", err)
	}
	return b, nil
}

// PoolStats reports the write and the read connection pools together (the
// write pool has one connection: SQLite has one writer).
func (s *Store) PoolStats() sql.DBStats {
	w, r := s.w.Stats(), s.r.Stats()
	return sql.DBStats{MaxOpenConnections: w.MaxOpenConnections + r.MaxOpenConnections,
		OpenConnections: w.OpenConnections + r.OpenConnections, InUse: w.InUse + r.InUse, Idle: w.Idle + r.Idle,
		WaitCount: w.WaitCount + r.WaitCount, WaitDuration: w.WaitDuration + r.WaitDuration,
		MaxIdleClosed: w.MaxIdleClosed + r.MaxIdleClosed, MaxIdleTimeClosed: w.MaxIdleTimeClosed + r.MaxIdleTimeClosed,
		MaxLifetimeClosed: w.MaxLifetimeClosed + r.MaxLifetimeClosed}
}
