package sqlserver

import (
	"context"
	"fmt"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// Stats returns a promotion's redemption analytics: totals and top users
// from the audit trail, and the time series of q's window in buckets of an
// hour or a day (UTC) with rollbacks and refusals by reason. It does not
// check that the promotion exists (no redemptions: zeros).
func (s *Store) Stats(ctx context.Context, q promo.StatsQuery) (promo.PromotionStats, error) {
	var st promo.PromotionStats
	q, err := contract.CheckStatsQuery(q, time.Now())
	if err != nil {
		return st, err
	}
	id := q.PromotionID
	if err := s.db.QueryRowContext(ctx, qStatsTotals, id).Scan(&st.Redemptions, &st.RolledBack, &st.CodesRedeemed); err != nil {
		return st, fmt.Errorf("stats of promotion %d: totals: %w", id, err)
	}
	hourly := 0
	if q.Bucket == promo.BucketHour {
		hourly = 1
	}
	args := []any{id, hourly, q.From.UTC(), q.To.UTC()}
	err = contract.ScanRows(ctx, s.db, qStatsSeries, args, func(scan func(...any) error) error {
		var p promo.StatsPoint
		if err := scan(&p.At, &p.Redemptions, &p.RolledBack, &p.Rollbacks); err != nil {
			return err
		}
		p.At = p.At.UTC()
		st.Series = append(st.Series, p)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("stats of promotion %d: series: %w", id, err)
	}
	var counts []contract.BucketReason
	err = contract.ScanRows(ctx, s.db, qStatsRefusalSeries, args, func(scan func(...any) error) error {
		var (
			c      contract.BucketReason
			reason string
		)
		if err := scan(&c.At, &reason, &c.N); err != nil {
			return err
		}
		c.At, c.Reason = c.At.UTC(), promo.Reason(reason)
		counts = append(counts, c)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("stats of promotion %d: refusals series: %w", id, err)
	}
	contract.MergeRefusals(st.Series, counts)
	err = contract.ScanRows(ctx, s.db, qStatsTopUsers, []any{id, promo.TopUsersLimit}, func(scan func(...any) error) error {
		var u promo.UserRedemptions
		if err := scan(&u.UserID, &u.Redemptions); err != nil {
			return err
		}
		st.TopUsers = append(st.TopUsers, u)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("stats of promotion %d: top users: %w", id, err)
	}
	return st, nil
}
