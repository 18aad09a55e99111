package relay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/poll"
)

// Publisher sends messages and returns once the broker acknowledged every
// one of them (pkg/kafka's Producer writes with acks=all).
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafka.Message) error
}

// Source is one outbox table: how to lease a page of its unpublished rows,
// turn a row into its message and mark rows published. Claim, Encode and
// Mark are required; the rest is optional.
type Source[R any] struct {
	// Name names the outbox in logs and in the outbox label of the metrics
	// ("batches", "redemptions").
	Name string
	// Claim leases up to limit unpublished rows to this relay for lease,
	// on the database's clock: other relays (replicas) skip them meanwhile.
	Claim func(ctx context.Context, limit int, lease time.Duration) ([]R, error)
	// Encode is a row's message. An error stops the relay at that row
	// (retried with back-off): a row that cannot be sent must not be
	// marked published.
	Encode func(R) (kafka.Message, error)
	// Mark marks rows published, once the broker acknowledged them.
	Mark func(ctx context.Context, rows []R) error
	// Oldest, when set, is when the oldest unpublished row was written
	// (false: none is pending): the outbox's lag gauge.
	Oldest func(ctx context.Context) (time.Time, bool, error)
	// Prune, when set, deletes up to limit rows published before before and
	// says how many it deleted; Run calls it (in pages) every PruneEvery for
	// the rows published more than Retention ago.
	Prune     func(ctx context.Context, before time.Time, limit int) (int64, error)
	Retention time.Duration
}

// Relay timings. A step (claim, publish, mark of one page) has StepTimeout;
// the lease it claims outlasts it, so that a page is this relay's for the
// whole step that publishes it.
const (
	StepTimeout = 30 * time.Second
	Lease       = StepTimeout + 15*time.Second
	// PruneEvery is how often Run prunes a source that has Prune.
	PruneEvery = 10 * time.Minute
	prunePage  = 10_000
)

// Config tunes a Relay. Zero values take the defaults.
type Config struct {
	// Interval is how often the relay looks for rows it was not notified
	// of (default 1s).
	Interval time.Duration
	// Page is how many rows one step claims (default 500).
	Page int
	// ShutdownTimeout bounds the last drain Run makes when its context ends
	// (default 5s).
	ShutdownTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Page <= 0 {
		c.Page = 500
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
}

// Relay moves one outbox to Kafka: claim a leased page, publish it, mark it
// published only once the broker acknowledged it. A crash between publish
// and mark re-sends the page after the lease (consumers de-duplicate; a
// duplicate batch event is harmless). A failed publish keeps the claimed
// page for the next step while its lease lasts (nothing is marked); a failed
// mark keeps the acknowledged rows, and the next step retries only the mark
// (nothing is published twice).
//
// Several replicas run one Relay each per outbox: the leases keep them off
// each other's rows in the normal case, and a replica that dies leaves its
// rows to any other once the lease ends.
//
// Run is called once, by the goroutine that owns the relay; Notify may be
// called from any goroutine. Drain may be called without Run (tests, tools);
// steps are serialised.
type Relay[R any] struct {
	src  Source[R]
	pub  Publisher
	cfg  Config
	log  *zap.Logger
	loop *poll.Loop
	m    sourceMetrics

	mu        sync.Mutex
	held      []R       // claimed, not yet acknowledged by the broker
	claimedAt time.Time // when held was claimed (its lease runs from there)
	unmarked  []R       // acknowledged, not yet marked published
	lastPrune time.Time
}

// New builds the relay of src; m may be nil (no metrics).
func New[R any](src Source[R], pub Publisher, cfg Config, m *Metrics, log *zap.Logger) *Relay[R] {
	cfg.setDefaults()
	log = log.With(zap.String("outbox", src.Name))
	return &Relay[R]{src: src, pub: pub, cfg: cfg, log: log, m: m.forSource(src.Name, src.Oldest != nil),
		loop: poll.NewLoop(cfg.Interval, log, poll.Messages{Failing: "outbox publish failed; backing off",
			Recovered: "outbox publishing again", Level: zapcore.ErrorLevel})}
}

// Notify asks the relay to look for new rows now.
func (r *Relay[R]) Notify() { r.loop.Notify() }

// Run publishes until ctx ends, then drains once more (for up to
// Config.ShutdownTimeout), so that rows written just before a shutdown go
// out from this process rather than after the next start or another
// replica's lease. It returns nil: failures are retried with back-off and
// logged, never fatal.
func (r *Relay[R]) Run(ctx context.Context) error {
	_ = r.loop.Run(ctx, r.pass)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ShutdownTimeout)
	defer cancel()
	if n, err := r.Drain(dctx); err != nil {
		r.log.Warn("outbox not drained before stopping; the rows stay in the outbox for the next relay", zap.Error(err))
	} else if n > 0 {
		r.log.Info("outbox drained before stopping", zap.Int("published", n))
	}
	return nil
}

// pass is one round of the loop: prune when due, then drain.
func (r *Relay[R]) pass(ctx context.Context) error {
	if r.src.Prune != nil && time.Since(r.lastPrune) >= PruneEvery {
		r.lastPrune = time.Now()
		if n, err := r.Prune(ctx, r.lastPrune.Add(-r.src.Retention)); err != nil && ctx.Err() == nil {
			r.log.Warn("pruning published outbox rows failed; will retry", zap.Error(err))
		} else if n > 0 {
			r.log.Info("pruned published outbox rows", zap.Int64("deleted", n))
		}
	}
	_, err := r.Drain(ctx)
	return err
}

// Prune deletes the rows published before before, a page per call of the
// source's Prune, so that the outbox does not grow without bound.
func (r *Relay[R]) Prune(ctx context.Context, before time.Time) (int64, error) {
	if r.src.Prune == nil {
		return 0, nil
	}
	var total int64
	for {
		n, err := r.src.Prune(ctx, before, prunePage)
		total += n
		if err != nil || n < prunePage {
			return total, err
		}
	}
}

// Drain publishes every row it can claim, a page per step, and returns how
// many it published.
func (r *Relay[R]) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := r.step(ctx)
		total += n
		if err != nil || n < r.cfg.Page {
			r.updateLag(ctx)
			return total, err
		}
	}
}

// step publishes one page: first the marks a failed step left, then the
// page it held (or a freshly claimed one).
func (r *Relay[R]) step(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	if len(r.unmarked) > 0 {
		if err := r.src.Mark(ctx, r.unmarked); err != nil {
			return 0, fmt.Errorf("mark %d %s outbox rows published: %w", len(r.unmarked), r.src.Name, err)
		}
		r.unmarked = nil
	}
	rows := r.held
	if len(rows) == 0 || time.Since(r.claimedAt) > Lease-StepTimeout {
		// Nothing held, or its lease may end before this step does (another
		// replica may have the rows by then): claim afresh.
		now := time.Now()
		var err error
		rows, err = r.src.Claim(ctx, r.cfg.Page, Lease)
		if err != nil {
			r.held = nil
			return 0, fmt.Errorf("claim %s outbox rows: %w", r.src.Name, err)
		}
		r.held, r.claimedAt = rows, now
	}
	if len(rows) == 0 {
		return 0, nil
	}
	msgs := make([]kafka.Message, len(rows))
	for i, row := range rows {
		m, err := r.src.Encode(row)
		if err != nil {
			return 0, fmt.Errorf("encode a %s outbox row: %w", r.src.Name, err)
		}
		msgs[i] = m
	}
	if err := r.pub.Publish(ctx, msgs...); err != nil {
		return 0, fmt.Errorf("publish %d %s events: %w", len(msgs), r.src.Name, err)
	}
	r.held = nil
	r.m.published(len(rows))
	if err := r.src.Mark(ctx, rows); err != nil {
		r.unmarked = rows
		return 0, fmt.Errorf("mark %d %s outbox rows published: %w", len(rows), r.src.Name, err)
	}
	return len(rows), nil
}

// updateLag refreshes the lag gauge after a drain, best effort.
func (r *Relay[R]) updateLag(ctx context.Context) {
	if r.src.Oldest == nil || !r.m.hasLag() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	at, pending, err := r.src.Oldest(ctx)
	switch {
	case err != nil:
		return // the publish errors are logged already; keep the last value
	case !pending:
		r.m.setLag(0)
	default:
		r.m.setLag(max(time.Since(at).Seconds(), 0))
	}
}
