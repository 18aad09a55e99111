package sqlserver

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/promocodes/promocodes/pkg/promo"
)

// qBacklog counts the open generation work: batches with codes still to
// write, except those of promotions whose deletion was requested.
const qBacklog = `SELECT
	COALESCE(SUM(CASE WHEN b.state NOT IN ('parked', 'cancelled') THEN CAST(1 AS bigint) ELSE 0 END), 0),
	COALESCE(SUM(CASE WHEN b.state = 'parked' THEN CAST(1 AS bigint) ELSE 0 END), 0),
	COALESCE(SUM(CASE WHEN b.state NOT IN ('parked', 'cancelled') THEN b.code_count - b.done ELSE 0 END), 0)
FROM batches b JOIN promotions p ON p.id = b.promotion_id
WHERE b.done < b.code_count AND p.delete_requested_at IS NULL`

// Backlog returns the generation work still open in the database.
func (s *Store) Backlog(ctx context.Context) (promo.Backlog, error) {
	var b promo.Backlog
	if err := s.db.QueryRowContext(ctx, qBacklog).Scan(&b.Incomplete, &b.Parked, &b.PendingCodes); err != nil {
		return promo.Backlog{}, fmt.Errorf("count open batches: %w", err)
	}
	return b, nil
}

// PoolStats reports the connection pool.
func (s *Store) PoolStats() sql.DBStats { return s.db.Stats() }
