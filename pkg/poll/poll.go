// Package poll runs a background pass on a schedule: every interval, or at
// once when notified, backing off while passes fail. The outbox relays and
// the redemption totals roller run on it.
//
// Concurrency: Run is called once, from the goroutine that owns the loop;
// Notify may be called from any goroutine.
package poll

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// MaxBackoff bounds the pause between failing passes of a Loop.
const MaxBackoff = 30 * time.Second

// Loop runs a pass every interval, or at once when notified. While passes
// fail it backs off exponentially (github.com/cenkalti/backoff: interval,
// doubled after each failure, up to MaxBackoff; a notification does not
// shorten a back-off) and logs the first failure and the recovery once each,
// not every retry.
type Loop struct {
	interval time.Duration
	wake     chan struct{}
	log      *zap.Logger
	msgs     Messages
}

// Messages are what a Loop logs when its passes start failing (with the
// error) and when they work again.
type Messages struct {
	Failing   string
	Recovered string
	// Level is the level of Failing; the zero value (zapcore.InfoLevel) is
	// taken as zapcore.ErrorLevel. Later failures of the same run of failures
	// are logged at Debug.
	Level zapcore.Level
}

// NewLoop builds a loop with the given period (0: one second).
func NewLoop(interval time.Duration, log *zap.Logger, msgs Messages) *Loop {
	if interval <= 0 {
		interval = time.Second
	}
	if msgs.Level == zapcore.InfoLevel {
		msgs.Level = zapcore.ErrorLevel
	}
	return &Loop{interval: interval, wake: make(chan struct{}, 1), log: log, msgs: msgs}
}

// Notify asks for a pass now (coalesced: one pending wake-up at most; never
// blocks).
func (l *Loop) Notify() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run calls pass until ctx ends, then returns nil.
func (l *Loop) Run(ctx context.Context, pass func(context.Context) error) error {
	bo := &backoff.ExponentialBackOff{InitialInterval: l.interval, Multiplier: 2, MaxInterval: MaxBackoff}
	t := time.NewTimer(l.interval)
	defer t.Stop()
	for {
		failing := false
		_, _ = backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, pass(ctx) },
			backoff.WithBackOff(bo), backoff.WithMaxTries(0), backoff.WithMaxElapsedTime(0),
			backoff.WithNotify(func(err error, next time.Duration) {
				if !failing {
					failing = true
					l.log.Log(l.msgs.Level, l.msgs.Failing, zap.Error(err), zap.Duration("retry_in", next))
					return
				}
				l.log.Debug(l.msgs.Failing, zap.Error(err), zap.Duration("retry_in", next))
			}))
		// Retry ends on success or when ctx ends (no error is permanent).
		if ctx.Err() != nil {
			return nil
		}
		if failing {
			l.log.Info(l.msgs.Recovered)
		}
		t.Reset(l.interval)
		select {
		case <-ctx.Done():
			return nil
		case <-l.wake:
		case <-t.C:
		}
	}
}
