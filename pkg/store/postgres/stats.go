package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	if err := s.pool.QueryRow(ctx, qStatsTotals, id).Scan(&st.Redemptions, &st.RolledBack, &st.CodesRedeemed); err != nil {
		return st, fmt.Errorf("stats of promotion %d: totals: %w", id, err)
	}
	args := []any{id, string(q.Bucket), q.From, q.To}
	rows, _ := s.pool.Query(ctx, qStatsSeries, args...)
	st.Series, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (promo.StatsPoint, error) {
		var p promo.StatsPoint
		err := row.Scan(&p.At, &p.Redemptions, &p.RolledBack, &p.Rollbacks)
		p.At = p.At.UTC()
		return p, err
	})
	if err != nil {
		return st, fmt.Errorf("stats of promotion %d: series: %w", id, err)
	}
	rows, _ = s.pool.Query(ctx, qStatsRefusalSeries, args...)
	counts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (contract.BucketReason, error) {
		var (
			c      contract.BucketReason
			reason string
		)
		err := row.Scan(&c.At, &reason, &c.N)
		c.Reason = promo.Reason(reason)
		return c, err
	})
	if err != nil {
		return st, fmt.Errorf("stats of promotion %d: refusals series: %w", id, err)
	}
	contract.MergeRefusals(st.Series, counts)
	rows, _ = s.pool.Query(ctx, qStatsTopUsers, id, promo.TopUsersLimit)
	st.TopUsers, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (promo.UserRedemptions, error) {
		var u promo.UserRedemptions
		return u, row.Scan(&u.UserID, &u.Redemptions)
	})
	if err != nil {
		return st, fmt.Errorf("stats of promotion %d: top users: %w", id, err)
	}
	return st, nil
}
