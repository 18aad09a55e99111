package sqlserver

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// RollUp counts up to limit uncounted outbox events into promotion_totals,
// in one transaction: the events are marked counted and the per-promotion
// deltas added together, or neither. Rollers on several API replicas take
// disjoint batches (UPDLOCK, READPAST); a deadlock victim is run again.
func (s *Store) RollUp(ctx context.Context, limit int) (promo.RollupBatch, error) {
	if limit <= 0 {
		limit = contract.DefaultRollupBatch
	}
	for attempt := 0; ; attempt++ {
		b, err := s.rollUp(ctx, limit)
		if err != nil && attempt < 3 && deadlocked(err) {
			if err := pause(ctx, attempt+1); err != nil {
				return promo.RollupBatch{}, fmt.Errorf("roll up events: %w", err)
			}
			continue
		}
		if err != nil {
			return promo.RollupBatch{}, fmt.Errorf("roll up events: %w", err)
		}
		return b, nil
	}
}

func (s *Store) rollUp(ctx context.Context, limit int) (promo.RollupBatch, error) {
	var b promo.RollupBatch
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now().UTC()
		rows, err := tx.QueryContext(ctx, qClaimUncounted, limit, now)
		if err != nil {
			return err
		}
		var evs []promo.OutboxEvent
		for rows.Next() {
			var (
				ev      promo.OutboxEvent
				payload string
			)
			if err := rows.Scan(&ev.Seq, &ev.Stream, &payload, &ev.CreatedAt); err != nil {
				rows.Close()
				return err
			}
			ev.Payload, ev.CreatedAt = []byte(payload), ev.CreatedAt.UTC()
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
	return b, err
}
