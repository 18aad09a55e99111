package postgres

import (
	"context"
	"fmt"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// Stats returns a promotion's redemption analytics from the audit trail:
// totals, a time series in buckets of an hour or a day (UTC), top users.
// It does not check that the promotion exists (no redemptions: zeros).
func (s *Store) Stats(ctx context.Context, id int64, bucket promo.StatsBucket) (promo.PromotionStats, error) {
	var st promo.PromotionStats
	bucket, err := contract.CheckBucket(bucket)
	if err != nil {
		return st, err
	}
	if err := s.pool.QueryRow(ctx, qStatsTotals, id).Scan(&st.Redemptions, &st.RolledBack, &st.CodesRedeemed); err != nil {
		return st, fmt.Errorf("stats of promotion %d: totals: %w", id, err)
	}
	rows, err := s.pool.Query(ctx, qStatsSeries, id, string(bucket), promo.MaxStatsBuckets)
	if err != nil {
		return st, fmt.Errorf("stats of promotion %d: series: %w", id, err)
	}
	for rows.Next() {
		var p promo.StatsPoint
		if err := rows.Scan(&p.At, &p.Redemptions, &p.RolledBack); err != nil {
			rows.Close()
			return st, fmt.Errorf("stats of promotion %d: series: %w", id, err)
		}
		p.At = p.At.UTC()
		st.Series = append(st.Series, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("stats of promotion %d: series: %w", id, err)
	}
	top, err := s.pool.Query(ctx, qStatsTopUsers, id, promo.TopUsersLimit)
	if err != nil {
		return st, fmt.Errorf("stats of promotion %d: top users: %w", id, err)
	}
	defer top.Close()
	for top.Next() {
		var u promo.UserRedemptions
		if err := top.Scan(&u.UserID, &u.Redemptions); err != nil {
			return st, fmt.Errorf("stats of promotion %d: top users: %w", id, err)
		}
		st.TopUsers = append(st.TopUsers, u)
	}
	return st, top.Err()
}
