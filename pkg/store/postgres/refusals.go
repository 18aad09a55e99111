package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/promo"
)

const (
	qAddRefusals = `INSERT INTO refusals AS r (promotion_id, reason, hour, n) VALUES ($1, $2, $3, $4)
ON CONFLICT (promotion_id, reason, hour) DO UPDATE SET n = r.n + EXCLUDED.n`

	qRefusalsByReason = `SELECT reason, sum(n)::bigint FROM refusals WHERE promotion_id = $1
GROUP BY reason ORDER BY 2 DESC, 1`
)

// AddRefusals adds refusal counts, in one transaction.
func (s *Store) AddRefusals(ctx context.Context, counts []promo.RefusalCount) error {
	b := &pgx.Batch{}
	for _, c := range counts {
		b.Queue(qAddRefusals, c.PromotionID, string(c.Reason), c.Hour.UTC(), c.N)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		return fmt.Errorf("add %d refusal counts: %w", len(counts), err)
	}
	return nil
}

// RefusalsByReason returns a promotion's refused redemptions by reason, most
// frequent first.
func (s *Store) RefusalsByReason(ctx context.Context, promotionID int64) ([]promo.ReasonCount, error) {
	rows, err := s.pool.Query(ctx, qRefusalsByReason, promotionID)
	if err != nil {
		return nil, fmt.Errorf("refusals of promotion %d: %w", promotionID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (promo.ReasonCount, error) {
		var (
			c      promo.ReasonCount
			reason string
		)
		err := row.Scan(&reason, &c.Count)
		c.Reason = promo.Reason(reason)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("refusals of promotion %d: %w", promotionID, err)
	}
	return out, nil
}
