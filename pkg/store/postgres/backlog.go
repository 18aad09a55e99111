package postgres

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/promocodes/promocodes/pkg/promo"
)

// qBacklog counts the open generation work: batches with codes still to
// write, except those of promotions whose deletion was requested.
const qBacklog = `SELECT
	count(*) FILTER (WHERE b.state NOT IN ('parked', 'cancelled')),
	count(*) FILTER (WHERE b.state = 'parked'),
	COALESCE(sum(b.code_count - b.done) FILTER (WHERE b.state NOT IN ('parked', 'cancelled')), 0)::bigint
FROM batches b JOIN promotions p ON p.id = b.promotion_id
WHERE b.done < b.code_count AND p.delete_requested_at IS NULL`

// Backlog returns the generation work still open in the database.
func (s *Store) Backlog(ctx context.Context) (promo.Backlog, error) {
	var b promo.Backlog
	if err := s.pool.QueryRow(ctx, qBacklog).Scan(&b.Incomplete, &b.Parked, &b.PendingCodes); err != nil {
		return promo.Backlog{}, fmt.Errorf("count open batches: %w", err)
	}
	return b, nil
}

// PoolStats reports the connection pool in database/sql's terms: WaitCount
// and WaitDuration are the acquires that found no idle connection and the
// time they waited.
func (s *Store) PoolStats() sql.DBStats {
	st := s.pool.Stat()
	return sql.DBStats{MaxOpenConnections: int(st.MaxConns()), OpenConnections: int(st.TotalConns()),
		InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()), WaitCount: st.EmptyAcquireCount(),
		WaitDuration: st.EmptyAcquireWaitTime()}
}
