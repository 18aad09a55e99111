package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/promocodes/promocodes/pkg/promo"
)

const (
	qAddRefusals = `INSERT INTO refusals (promotion_id, reason, hour, n) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (promotion_id, reason, hour) DO UPDATE SET n = n + excluded.n`

	qRefusalsByReason = `SELECT reason, sum(n) FROM refusals WHERE promotion_id = ?
GROUP BY reason ORDER BY 2 DESC, 1`
)

// AddRefusals adds refusal counts, in one transaction.
func (s *Store) AddRefusals(ctx context.Context, counts []promo.RefusalCount) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, c := range counts {
			if _, err := tx.ExecContext(ctx, qAddRefusals, c.PromotionID, string(c.Reason), formatTime(c.Hour), c.N); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add %d refusal counts: %w", len(counts), err)
	}
	return nil
}

// RefusalsByReason returns a promotion's refused redemptions by reason, most
// frequent first.
func (s *Store) RefusalsByReason(ctx context.Context, promotionID int64) ([]promo.ReasonCount, error) {
	rows, err := s.r.QueryContext(ctx, qRefusalsByReason, promotionID)
	if err != nil {
		return nil, fmt.Errorf("refusals of promotion %d: %w", promotionID, err)
	}
	defer rows.Close()
	var out []promo.ReasonCount
	for rows.Next() {
		var (
			c      promo.ReasonCount
			reason string
		)
		if err := rows.Scan(&reason, &c.Count); err != nil {
			return nil, fmt.Errorf("refusals of promotion %d: %w", promotionID, err)
		}
		c.Reason = promo.Reason(reason)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("refusals of promotion %d: %w", promotionID, err)
	}
	return out, nil
}
