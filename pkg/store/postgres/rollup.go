package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// RollUp counts up to limit uncounted outbox events into promotion_totals,
// in one transaction: the events are marked counted and the per-promotion
// deltas added together, or neither. Rollers on several API replicas take
// disjoint batches (SKIP LOCKED); a deadlock between two of them on the
// totals rows is retried.
func (s *Store) RollUp(ctx context.Context, limit int) (promo.RollupBatch, error) {
	if limit <= 0 {
		limit = contract.DefaultRollupBatch
	}
	for attempt := 1; ; attempt++ {
		b, err := s.rollUp(ctx, limit)
		if err != nil && attempt < 3 && retryable(err) {
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		now := s.now().UTC()
		rows, err := tx.Query(ctx, qClaimUncounted, limit, now)
		if err != nil {
			return err
		}
		evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (promo.OutboxEvent, error) {
			var (
				ev      promo.OutboxEvent
				payload string
			)
			err := row.Scan(&ev.Seq, &ev.Stream, &payload, &ev.CreatedAt)
			ev.Payload = []byte(payload)
			return ev, err
		})
		if err != nil {
			return err
		}
		b, err = contract.RollUp(evs, func(ds []promo.TotalsDelta) error {
			ids := make([]int64, len(ds))
			r, c, rb := make([]int64, len(ds)), make([]int64, len(ds)), make([]int64, len(ds))
			for i, d := range ds {
				ids[i], r[i], c[i], rb[i] = d.PromotionID, d.Redemptions, d.CodesRedeemed, d.RolledBack
			}
			_, err := tx.Exec(ctx, qAddTotals, ids, r, c, rb, now)
			return err
		})
		return err
	})
	return b, err
}
