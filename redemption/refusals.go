package redemption

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/promo"
)

// RefusalStore is where refusal counts go.
type RefusalStore interface {
	AddRefusals(ctx context.Context, counts []promo.RefusalCount) error
}

// refusalKey is one counter of the aggregate.
type refusalKey struct {
	promotionID int64
	reason      promo.Reason
	hour        time.Time
}

// refusals counts refused redemptions per promotion, reason and hour in
// memory and adds them to the database every flush interval: never in the
// redemption's transaction, where a flash sale's thousands of refusals would
// queue on one counter row. Counts are analytics, not accounting: a crash
// loses at most one interval's. Safe for concurrent use.
type refusals struct {
	store RefusalStore
	log   *zap.Logger
	mu    sync.Mutex
	n     map[refusalKey]int64
}

func newRefusals(store RefusalStore, log *zap.Logger) *refusals {
	return &refusals{store: store, log: log, n: map[refusalKey]int64{}}
}

func (r *refusals) add(promotionID int64, reason promo.Reason, at time.Time) {
	if promotionID == 0 {
		return
	}
	k := refusalKey{promotionID: promotionID, reason: reason, hour: at.UTC().Truncate(time.Hour)}
	r.mu.Lock()
	r.n[k]++
	r.mu.Unlock()
}

// flush writes the counts gathered so far; on failure they are kept for the
// next flush.
func (r *refusals) flush(ctx context.Context) error {
	r.mu.Lock()
	taken := r.n
	r.n = map[refusalKey]int64{}
	r.mu.Unlock()
	if len(taken) == 0 {
		return nil
	}
	counts := make([]promo.RefusalCount, 0, len(taken))
	for k, n := range taken {
		counts = append(counts, promo.RefusalCount{PromotionID: k.promotionID, Reason: k.reason, Hour: k.hour, N: n})
	}
	if err := r.store.AddRefusals(ctx, counts); err != nil {
		r.mu.Lock()
		for k, n := range taken {
			r.n[k] += n
		}
		r.mu.Unlock()
		return err
	}
	return nil
}

// run flushes every interval until ctx ends, then once more.
func (r *refusals) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := r.flush(fctx); err != nil {
				r.log.Warn("refusal counts lost at shutdown", zap.Error(err))
			}
			cancel()
			return
		case <-t.C:
			if err := r.flush(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("writing refusal counts failed; will retry", zap.Error(err))
			}
		}
	}
}
