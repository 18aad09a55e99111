package sqlite

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
	if err := s.r.QueryRowContext(ctx, qStatsTotals, id).Scan(&st.Redemptions, &st.RolledBack, &st.CodesRedeemed); err != nil {
		return st, fmt.Errorf("stats of promotion %d: totals: %w", id, err)
	}
	width, layout := 13, "2006-01-02T15"
	if q.Bucket == promo.BucketDay {
		width, layout = 10, "2006-01-02"
	}
	args := []any{id, width, formatTime(q.From), formatTime(q.To)}
	err = contract.ScanRows(ctx, s.r, qStatsSeries, args, func(scan func(...any) error) error {
		var (
			b string
			p promo.StatsPoint
		)
		if err := scan(&b, &p.Redemptions, &p.RolledBack, &p.Rollbacks); err != nil {
			return err
		}
		if p.At, err = time.Parse(layout, b); err != nil {
			return fmt.Errorf("bucket %q: %w", b, err)
		}
		st.Series = append(st.Series, p)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("stats of promotion %d: series: %w", id, err)
	}
	var counts []contract.BucketReason
	err = contract.ScanRows(ctx, s.r, qStatsRefusalSeries, args, func(scan func(...any) error) error {
		var (
			b, reason string
			c         contract.BucketReason
		)
		if err := scan(&b, &reason, &c.N); err != nil {
			return err
		}
		if c.At, err = time.Parse(layout, b); err != nil {
			return fmt.Errorf("bucket %q: %w", b, err)
		}
		c.Reason = promo.Reason(reason)
		counts = append(counts, c)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("stats of promotion %d: refusals series: %w", id, err)
	}
	contract.MergeRefusals(st.Series, counts)
	err = contract.ScanRows(ctx, s.r, qStatsTopUsers, []any{id, promo.TopUsersLimit}, func(scan func(...any) error) error {
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
