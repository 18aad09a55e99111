package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// RollUp counts up to limit uncounted outbox events into promotion_totals,
// in one write transaction: the events are marked counted and the
// per-promotion deltas added together, or neither. SQLite's single writer
// (per file, across processes) keeps two rollers off the same events.
func (s *Store) RollUp(ctx context.Context, limit int) (promo.RollupBatch, error) {
	if limit <= 0 {
		limit = contract.DefaultRollupBatch
	}
	var b promo.RollupBatch
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := formatTime(s.now())
		rows, err := tx.QueryContext(ctx, qClaimUncounted, limit, now)
		if err != nil {
			return err
		}
		var evs []promo.OutboxEvent
		for rows.Next() {
			var (
				ev               promo.OutboxEvent
				payload, created string
			)
			if err := rows.Scan(&ev.Seq, &ev.Stream, &payload, &created); err != nil {
				rows.Close()
				return err
			}
			ev.Payload = []byte(payload)
			if ev.CreatedAt, err = parseTime(created); err != nil {
				rows.Close()
				return fmt.Errorf("event %d: created_at: %w", ev.Seq, err)
			}
			evs = append(evs, ev)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		b, err = contract.RollUp(evs, func(ds []promo.TotalsDelta) error {
			for _, d := range ds {
				if _, err := tx.ExecContext(ctx, qAddTotals, d.PromotionID, d.Redemptions, d.CodesRedeemed,
					d.RolledBack, now); err != nil {
					return err
				}
			}
			return nil
		})
		return err
	})
	if err != nil {
		return promo.RollupBatch{}, fmt.Errorf("roll up events: %w", err)
	}
	return b, nil
}
