package redemption

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/promocodes/promocodes/pkg/poll"
	"github.com/promocodes/promocodes/pkg/promo"
)

// RollupStore counts outbox events into the per-promotion totals: one call
// is one transaction that marks up to limit uncounted events counted and adds
// what they do to promotion_totals (see the stores' RollUp).
type RollupStore interface {
	RollUp(ctx context.Context, limit int) (promo.RollupBatch, error)
}

// Roller keeps promotion_totals (the list's and status's redemptions and
// codesRedeemed) up to date from the event outbox, which every redemption
// and rollback writes in its own transaction. It is what lets the list show
// redemption counts without counting the audit trail per row, and without a
// per-promotion counter row in the redemption transaction (on which a flash
// sale's redemptions of one promotion would queue).
//
// Exact: each store call claims events under a lock that other rollers skip,
// marks them counted and adds their deltas in one transaction, so two API
// replicas, a crash at any point, or a broker outage (the roller does not
// need Kafka) neither lose nor double an event. The totals trail the audit
// trail by the time between a commit and the next pass: Interval (250ms) or
// less. The API process does not wake it per redemption (Notify is for
// callers that want a pass now), so a burst costs four passes a second.
type Roller struct {
	store   RollupStore
	log     *zap.Logger
	loop    *poll.Loop
	lag     prometheus.Gauge
	counted prometheus.Counter
}

// Roller defaults.
const (
	RollupInterval = 250 * time.Millisecond
	rollupBatch    = 1000
)

// NewRoller builds the totals roller; interval is its polling period (0:
// RollupInterval); reg, when not nil, gets its metrics.
func NewRoller(store RollupStore, interval time.Duration, reg prometheus.Registerer, log *zap.Logger) *Roller {
	if interval <= 0 {
		interval = RollupInterval
	}
	r := &Roller{store: store, log: log,
		loop: poll.NewLoop(interval, log, poll.Messages{Failing: "counting redemption totals failed; backing off",
			Recovered: "counting redemption totals again", Level: zapcore.WarnLevel}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "promocodes_totals_rollup_lag_seconds",
			Help: "Age of the oldest outbox event counted by the last totals rollup pass that found any (0 when none was waiting): how far promotion totals trail the audit trail."}),
		counted: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_totals_rollup_events_total",
			Help: "Outbox events counted into promotion totals by this process."}),
	}
	if reg != nil {
		reg.MustRegister(r.lag, r.counted)
	}
	return r
}

// Notify asks the roller to count new events now.
func (r *Roller) Notify() { r.loop.Notify() }

// Run counts events until ctx ends. A failing database is retried with
// back-off up to poll.MaxBackoff; the roller never stops the process.
func (r *Roller) Run(ctx context.Context) error {
	return r.loop.Run(ctx, func(ctx context.Context) error {
		_, err := r.Drain(ctx)
		return err
	})
}

// Drain counts every event it can claim, a batch per transaction, and
// returns how many it counted.
func (r *Roller) Drain(ctx context.Context) (int, error) {
	total := 0
	first := true
	for {
		b, err := r.store.RollUp(ctx, rollupBatch)
		if err != nil {
			return total, err
		}
		if b.Undecodable > 0 {
			r.log.Warn("outbox events that could not be read were counted as nothing", zap.Int("events", b.Undecodable))
		}
		if first {
			first = false
			if b.Events == 0 {
				r.lag.Set(0)
			} else {
				r.lag.Set(max(0, time.Since(b.Oldest).Seconds()))
			}
		}
		total += b.Events
		r.counted.Add(float64(b.Events))
		if b.Events < rollupBatch {
			return total, nil
		}
	}
}
