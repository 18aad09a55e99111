package sqlite

import (
	"context"
	"fmt"
	"time"

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
	if err := s.r.QueryRowContext(ctx, qStatsTotals, id).Scan(&st.Redemptions, &st.RolledBack, &st.CodesRedeemed); err != nil {
		return st, fmt.Errorf("stats of promotion %d: totals: %w", id, err)
	}
	width, layout := 13, "2006-01-02T15"
	if bucket == promo.BucketDay {
		width, layout = 10, "2006-01-02"
	}
	rows, err := s.r.QueryContext(ctx, qStatsSeries, id, width, promo.MaxStatsBuckets)
	if err != nil {
		return st, fmt.Errorf("stats of promotion %d: series: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			b string
			p promo.StatsPoint
		)
		if err := rows.Scan(&b, &p.Redemptions, &p.RolledBack); err != nil {
			return st, fmt.Errorf("stats of promotion %d: series: %w", id, err)
		}
		if p.At, err = time.Parse(layout, b); err != nil {
			return st, fmt.Errorf("stats of promotion %d: bucket %q: %w", id, b, err)
		}
		st.Series = append(st.Series, p)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("stats of promotion %d: series: %w", id, err)
	}
	top, err := s.r.QueryContext(ctx, qStatsTopUsers, id, promo.TopUsersLimit)
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
