package generator

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"
)

// dbGate is the generator's circuit breaker on the database. When an
// operation fails and the database does not answer a ping either, the gate
// opens: every worker stops fetching new events, and a worker holding one
// waits instead of burning its attempts (which would send the batch to the
// error topic, and after five shovel cycles to the dead-letter topic, for
// an outage that no retry can outlast). While open, one waiting worker at a
// time pings the database with backoff; the first ping that succeeds closes
// the gate and every worker carries on where it was. Nothing is consumed
// and no offset moves while the gate is open, so a long outage only grows
// the consumer lag.
//
// It needs no goroutine of its own: waiting workers take turns probing.
// Safe for concurrent use.
type dbGate struct {
	ping     func(ctx context.Context) error
	log      *zap.Logger
	onChange func(down bool)

	mu      sync.Mutex
	down    bool
	since   time.Time
	probing bool
	pause   *backoff.ExponentialBackOff // between probes: gateProbeMin doubling to gateProbeMax
	changed chan struct{}               // closed and replaced whenever a turn at probing ends
}

// Probe timings while the gate is open.
const (
	gateProbeMin     = 500 * time.Millisecond
	gateProbeMax     = 5 * time.Second
	gatePingTimeout  = 3 * time.Second
	gateLogEveryDown = time.Minute
)

func newDBGate(ping func(ctx context.Context) error, log *zap.Logger, onChange func(down bool)) *dbGate {
	return &dbGate{ping: ping, log: log, onChange: onChange, changed: make(chan struct{}),
		pause: &backoff.ExponentialBackOff{InitialInterval: gateProbeMin, Multiplier: 2, MaxInterval: gateProbeMax}}
}

// failed is called after an operation failed with cause. It reports false
// when the database answers a ping (the failure is the operation's own:
// count it as an attempt); otherwise it opens the gate, waits until the
// database answers again (or ctx ends) and reports true: do not count it.
func (d *dbGate) failed(ctx context.Context, cause error) bool {
	d.mu.Lock()
	down := d.down
	d.mu.Unlock()
	if !down {
		pctx, cancel := context.WithTimeout(ctx, gatePingTimeout)
		err := d.ping(pctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return false
		}
		d.open(cause, err)
	}
	d.wait(ctx)
	return true
}

func (d *dbGate) open(cause, pingErr error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return
	}
	d.down, d.since = true, time.Now()
	d.pause.Reset()
	d.log.Error("database unreachable: workers pause (no fetching, no retries burnt) until it answers",
		zap.NamedError("cause", cause), zap.NamedError("ping", pingErr))
	if d.onChange != nil {
		d.onChange(true)
	}
}

// wait returns at once while the gate is closed; while it is open it blocks
// (taking turns at probing) until the database answers or ctx ends.
func (d *dbGate) wait(ctx context.Context) {
	lastLog := time.Now()
	for ctx.Err() == nil {
		d.mu.Lock()
		if !d.down {
			d.mu.Unlock()
			return
		}
		if d.probing {
			ch := d.changed
			d.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-ch:
			}
			continue
		}
		d.probing = true
		since := d.since
		d.mu.Unlock()

		// This worker's turn: ping until the database answers or ctx ends,
		// d.pause apart. The turn starts with a pause (the ping that opened
		// the gate, or the last probe, has just failed): Retry's first call
		// stands for that failure.
		pinged := false
		_, err := backoff.Retry(ctx, func() (struct{}, error) {
			if !pinged {
				pinged = true
				return struct{}{}, errStillDown
			}
			pctx, cancel := context.WithTimeout(ctx, gatePingTimeout)
			err := d.ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil && time.Since(lastLog) >= gateLogEveryDown {
				lastLog = time.Now()
				d.log.Warn("database still unreachable; workers paused",
					zap.Duration("down_for", time.Since(since).Round(time.Second)), zap.Error(err))
			}
			return struct{}{}, err
		}, backoff.WithBackOff(carriedOn{d.pause}), backoff.WithMaxTries(0), backoff.WithMaxElapsedTime(0))

		d.mu.Lock()
		d.probing = false
		if err == nil && ctx.Err() == nil {
			d.down = false
			d.log.Info("database answers again; workers resume", zap.Duration("down_for", time.Since(d.since).Round(time.Millisecond)))
			if d.onChange != nil {
				d.onChange(false)
			}
		}
		close(d.changed)
		d.changed = make(chan struct{})
		d.mu.Unlock()
	}
}

var errStillDown = errors.New("database unreachable")

// carriedOn is the pause between probes as one prober's Retry sees it:
// Retry resets its backoff when it starts, but the pause carries on from one
// prober to the next (a prober whose ctx ends hands the turn over); only
// open resets it.
type carriedOn struct{ *backoff.ExponentialBackOff }

func (carriedOn) Reset() {}
