package generator

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/promo"
)

// progressStore is the optional store method the generator uses to tell an
// operator that a promotion is complete (every store has it).
type progressStore interface {
	GetPromotion(ctx context.Context, id int64) (promo.PromotionStatus, error)
}

// logIfCompleted logs one info line when the batch this worker just finished
// was the promotion's last: the operator's "promotion completed". Best
// effort: a failed look-up only costs the log line.
func (g *Generator) logIfCompleted(ctx context.Context, id int64, log *zap.Logger) {
	ps, ok := g.store.(progressStore)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := ps.GetPromotion(ctx, id)
	if err != nil || st.Status() != promo.StatusCompleted {
		return
	}
	log.Info("promotion completed", zap.String("name", st.Name), zap.Int64("codes", st.GeneratedCount),
		zap.Int("batches", st.Batches.Total), zap.Duration("since_created", time.Since(st.CreatedAt).Round(time.Millisecond)))
}

// maxCancelledSeen bounds the set of promotions a process remembers having
// reported as cancelled; past it the set starts over (at worst one more line
// for a promotion whose events are still arriving).
const maxCancelledSeen = 4096

// logCancelled says that a worker leaves a cancelled promotion's batch: at
// info level the first time this process meets the promotion's cancel, at
// debug for each further batch, so that cancelling a promotion of a hundred
// batches is one line in the log, not a hundred.
func (g *Generator) logCancelled(id int64, msg string, log *zap.Logger, fields ...zap.Field) {
	g.mu.Lock()
	first := !g.cancelledSeen[id]
	if first {
		if g.cancelledSeen == nil || len(g.cancelledSeen) >= maxCancelledSeen {
			g.cancelledSeen = map[int64]bool{}
		}
		g.cancelledSeen[id] = true
	}
	g.mu.Unlock()
	if first {
		log.Info(msg+"; its remaining batches are left as they are (further ones at debug level)", fields...)
		return
	}
	log.Debug(msg, fields...)
}
