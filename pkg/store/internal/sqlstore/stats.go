package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Stats returns a promotion's redemption analytics: totals and top users
// from the audit trail, and the time series of q's window in buckets of an
// hour or a day (UTC; "" means hour) with rollbacks and refusals by reason.
// Zero ends of the window take promo.StatsWindow's defaults, so the series
// of every store is bounded by promo.MaxStatsBuckets buckets. It does not
// check that the promotion exists (no redemptions: zeros).
func (s *Core[T]) Stats(ctx context.Context, q promo.StatsQuery) (st promo.PromotionStats, err error) {
	switch q.Bucket {
	case "":
		q.Bucket = promo.BucketHour
	case promo.BucketHour, promo.BucketDay:
	default:
		return st, promo.FieldErrorf("bucket", "must be hour or day, got %q", q.Bucket)
	}
	if q.From, q.To, err = promo.StatsWindow(q.Bucket, q.From, q.To, time.Now()); err != nil {
		return st, err
	}
	id := q.PromotionID
	if err := s.r.QueryRow(ctx, s.d.StatsTotals, id).Scan(&st.Redemptions, &st.RolledBack, &st.CodesRedeemed); err != nil {
		return st, fmt.Errorf("stats of promotion %d: totals: %w", id, err)
	}
	args := []any{id, string(q.Bucket), s.d.Time(q.From), s.d.Time(q.To)}
	if st.Series, err = collect(ctx, s.r, s.d.StatsSeries, args, func(r Row, p *promo.StatsPoint) error {
		return r.Scan(Time(&p.At), &p.Redemptions, &p.RolledBack, &p.Rollbacks)
	}); err != nil {
		return st, fmt.Errorf("stats of promotion %d: series: %w", id, err)
	}
	// Refusal counts go into the series' point of their bucket; every point
	// has a non-nil map.
	point := make(map[int64]int, len(st.Series))
	for i := range st.Series {
		st.Series[i].Refusals = map[promo.Reason]int64{}
		point[st.Series[i].At.Unix()] = i
	}
	if err := each(ctx, s.r, s.d.StatsRefusalSeries, args, func(r Row) error {
		var (
			at     time.Time
			reason promo.Reason
			n      int64
		)
		if err := r.Scan(Time(&at), (*string)(&reason), &n); err != nil {
			return err
		}
		if i, ok := point[at.Unix()]; ok {
			st.Series[i].Refusals[reason] += n
		}
		return nil
	}); err != nil {
		return st, fmt.Errorf("stats of promotion %d: refusals series: %w", id, err)
	}
	if st.TopUsers, err = collect(ctx, s.r, s.d.StatsTopUsers, []any{id, promo.TopUsersLimit},
		func(r Row, u *promo.UserRedemptions) error { return r.Scan(&u.UserID, &u.Redemptions) }); err != nil {
		return st, fmt.Errorf("stats of promotion %d: top users: %w", id, err)
	}
	if st.Orders, err = collect(ctx, s.r, s.d.StatsOrders, []any{id}, func(r Row, o *promo.OrderTotals) error {
		var amount, discount int64
		err := r.Scan(&o.Currency, &o.Redemptions, &amount, &discount)
		o.OrderValue, o.Discount = promo.Amount(amount).String(), promo.Amount(discount).String()
		return err
	}); err != nil {
		return st, fmt.Errorf("stats of promotion %d: orders: %w", id, err)
	}
	if err := each(ctx, s.r, s.d.StatsSegments, []any{id}, func(r Row) error {
		var (
			segment, currency string
			n, amount, disc   int64
		)
		if err := r.Scan(&segment, &currency, &n, &amount, &disc); err != nil {
			return err
		}
		if len(st.Segments) == 0 || st.Segments[len(st.Segments)-1].Segment != segment {
			st.Segments = append(st.Segments, promo.SegmentStats{Segment: segment})
		}
		seg := &st.Segments[len(st.Segments)-1]
		seg.Redemptions += n
		if st.Redemptions > 0 {
			seg.Rate = float64(seg.Redemptions) / float64(st.Redemptions)
		}
		if currency != "" {
			seg.Orders = append(seg.Orders, promo.OrderTotals{Currency: currency, Redemptions: n,
				OrderValue: promo.Amount(amount).String(), Discount: promo.Amount(disc).String()})
		}
		return nil
	}); err != nil {
		return st, fmt.Errorf("stats of promotion %d: segments: %w", id, err)
	}
	return st, nil
}

// each runs query through q and calls fn with each row.
func each(ctx context.Context, q Querier, query string, args []any, fn func(Row) error) error {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// execEach runs query through q once for each row, with args(row).
func execEach[R any](ctx context.Context, q Querier, query string, rows []R, args func(R) []any) error {
	for _, r := range rows {
		if _, err := q.Exec(ctx, query, args(r)...); err != nil {
			return err
		}
	}
	return nil
}

// collect runs query through q and returns its rows as scan reads each (nil
// on an error).
func collect[R any](ctx context.Context, q Querier, query string, args []any, scan func(Row, *R) error) ([]R, error) {
	var out []R
	err := each(ctx, q, query, args, func(r Row) error {
		var v R
		err := scan(r, &v)
		out = append(out, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RollUp counts up to limit uncounted outbox events into promotion_totals,
// in one transaction: the events are marked counted and the per-promotion
// deltas added together, or neither. Rollers take disjoint events (SKIP
// LOCKED, UPDLOCK/READPAST, SQLite's single writer); a deadlock between two
// of them on the totals rows is run again.
func (s *Core[T]) RollUp(ctx context.Context, limit int) (promo.RollupBatch, error) {
	if limit <= 0 {
		limit = defaultRollupBatch
	}
	b, err := run1(ctx, s, func(x stmts[T]) (promo.RollupBatch, error) { return s.rollUp(ctx, x.q, limit) })
	return b, wrap(err, "roll up events")
}

func (s *Core[T]) rollUp(ctx context.Context, tx Querier, limit int) (promo.RollupBatch, error) {
	now := s.d.Time(s.clock())
	evs, err := collect(ctx, tx, s.d.ClaimUncounted, []any{limit, now}, func(r Row, ev *promo.OutboxEvent) error {
		return r.Scan(&ev.Seq, &ev.Stream, &ev.Payload, Time(&ev.CreatedAt))
	})
	if err != nil || len(evs) == 0 {
		return promo.RollupBatch{}, err
	}
	// The claim's mark and these deltas commit together: exact with any
	// number of rollers and crashes.
	deltas, bad := promo.TallyEvents(evs)
	if s.d.Arrays && len(deltas) > 0 {
		cols := [4][]int64{}
		for _, d := range deltas {
			for i, v := range [4]int64{d.PromotionID, d.Redemptions, d.CodesRedeemed, d.RolledBack} {
				cols[i] = append(cols[i], v)
			}
		}
		_, err = tx.Exec(ctx, s.d.AddTotals, cols[0], cols[1], cols[2], cols[3], now)
	} else {
		err = execEach(ctx, tx, s.d.AddTotals, deltas, func(d promo.TotalsDelta) []any {
			return []any{d.PromotionID, d.Redemptions, d.CodesRedeemed, d.RolledBack, now}
		})
	}
	if err != nil {
		return promo.RollupBatch{}, fmt.Errorf("add totals of %d promotions: %w", len(deltas), err)
	}
	oldest := slices.MinFunc(evs, func(a, b promo.OutboxEvent) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return promo.RollupBatch{Events: len(evs), Oldest: oldest.CreatedAt, Undecodable: bad}, nil
}

// AddRefusals adds refusal counts, in one transaction.
func (s *Core[T]) AddRefusals(ctx context.Context, counts []promo.RefusalCount) error {
	err := s.inTx(ctx, func(tx T) error {
		return execEach(ctx, tx, s.d.AddRefusals, counts, func(c promo.RefusalCount) []any {
			return []any{c.PromotionID, string(c.Reason), s.d.Time(c.Hour), c.N}
		})
	})
	return wrap(err, "add %d refusal counts", len(counts))
}

// RefusalsByReason returns a promotion's refused redemptions by reason, most
// frequent first.
func (s *Core[T]) RefusalsByReason(ctx context.Context, promotionID int64) ([]promo.ReasonCount, error) {
	out, err := collect(ctx, s.r, s.d.RefusalsByReason, []any{promotionID}, func(r Row, c *promo.ReasonCount) error {
		return r.Scan((*string)(&c.Reason), &c.Count)
	})
	return out, wrap(err, "refusals of promotion %d", promotionID)
}
