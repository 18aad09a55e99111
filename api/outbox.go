package api

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// OutboxStore is what the outbox publisher needs from the database.
type OutboxStore interface {
	// ClaimPendingBatches leases unpublished batches to this publisher for
	// lease; other publishers (API replicas) skip them meanwhile.
	ClaimPendingBatches(ctx context.Context, limit int, lease time.Duration) ([]promo.Batch, error)
	MarkPublished(ctx context.Context, refs []promo.BatchRef) error
}

// Publisher sends messages and returns once the broker acknowledged them.
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafka.Message) error
}

// Outbox publishes the batch events of newly created promotions. The batch
// rows are the outbox: they are written in the promotion's transaction and
// marked published only after the broker acknowledged their events, so a
// crash in between re-sends them (a duplicate event is harmless).
//
// Several API replicas run one Outbox each: a publisher claims (leases) the
// rows it publishes, so each event is published once in the normal case; a
// publisher that dies or fails leaves its rows to any publisher once the
// lease ends. A failing round (broker or database down, a mark that keeps
// failing) backs off exponentially up to MaxBackoff instead of republishing
// every second.
type Outbox struct {
	store    OutboxStore
	pub      Publisher
	topic    string
	interval time.Duration
	log      *zap.Logger
	wake     chan struct{}

	// What a failed round leaves for the next (Drain's caller only):
	mu        sync.Mutex
	held      []promo.Batch    // claimed, not yet published
	claimedAt time.Time        // when held was claimed (its lease runs from there)
	unmarked  []promo.BatchRef // published, not yet marked
	metrics   *Metrics
}

// SetMetrics makes the outbox count what it publishes and, when its store
// is a LagStore, keep m.OutboxLag current. Call before Run.
func (o *Outbox) SetMetrics(m *Metrics) { o.metrics = m }

// updateLag refreshes the lag gauge after a drain, best effort.
func (o *Outbox) updateLag(ctx context.Context) {
	ls, ok := o.store.(LagStore)
	if o.metrics == nil || !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	at, pending, err := ls.OldestUnpublished(ctx)
	switch {
	case err != nil:
		return // the publish errors are logged already; keep the last value
	case !pending:
		o.metrics.OutboxLag.Set(0)
	default:
		o.metrics.OutboxLag.Set(max(time.Since(at).Seconds(), 0))
	}
}

// NewOutbox builds the publisher for topic; interval is how often it looks
// for rows it was not told about (default 1s).
func NewOutbox(store OutboxStore, pub Publisher, topic string, interval time.Duration, log *zap.Logger) *Outbox {
	if interval <= 0 {
		interval = time.Second
	}
	return &Outbox{store: store, pub: pub, topic: topic, interval: interval, log: log, wake: make(chan struct{}, 1)}
}

// Notify asks the publisher to look for new rows now.
func (o *Outbox) Notify() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx is cancelled.
func (o *Outbox) Run(ctx context.Context) error {
	var backoff time.Duration
	for {
		n, err := o.Drain(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && backoff == 0:
			backoff = o.interval
			o.log.Error("outbox publish failed; backing off", zap.Error(err), zap.Duration("in", backoff))
		case err != nil:
			backoff = min(2*backoff, MaxBackoff)
			o.log.Debug("outbox publish failed again", zap.Error(err), zap.Duration("in", backoff))
		case backoff != 0:
			o.log.Info("outbox publishing again", zap.Int("published", n))
			backoff = 0
		}
		wait := o.interval
		wake := o.wake
		if backoff != 0 {
			// Failing: a new promotion's notification does not cut the
			// backoff short.
			wait, wake = backoff, nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(wait):
		}
	}
}

const (
	// drainStepTimeout bounds one claim-publish-mark round, so a stalled
	// database or broker connection becomes an error and a retry, not a
	// hung publisher.
	drainStepTimeout = 30 * time.Second
	// claimLease is how long claimed rows are this publisher's: longer than
	// a round can take, so no other replica publishes them meanwhile.
	claimLease = drainStepTimeout + 15*time.Second
	// MaxBackoff bounds the pause between failing rounds.
	MaxBackoff = 30 * time.Second
)

// Drain publishes every pending batch event and returns how many it published.
func (o *Outbox) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := o.drainStep(ctx)
		total += n
		if err != nil || n == 0 {
			o.updateLag(ctx)
			return total, err
		}
	}
}

// drainStep claims up to 500 pending events, publishes them and marks them
// published. A failed publish keeps the claimed rows for the next round
// (while their lease lasts); a failed mark keeps the refs, and the next
// round retries only the mark: the events are not published again.
func (o *Outbox) drainStep(ctx context.Context) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, drainStepTimeout)
	defer cancel()
	if len(o.unmarked) > 0 {
		if err := o.store.MarkPublished(ctx, o.unmarked); err != nil {
			return 0, fmt.Errorf("mark %d published batch events: %w", len(o.unmarked), err)
		}
		o.unmarked = nil
	}
	batches := o.held
	if len(batches) == 0 || time.Since(o.claimedAt) > claimLease-drainStepTimeout {
		// Nothing held, or its lease may end before this round does
		// (another replica may have the rows by then): claim afresh.
		now := time.Now()
		var err error
		batches, err = o.store.ClaimPendingBatches(ctx, 500, claimLease)
		if err != nil {
			o.held = nil
			return 0, fmt.Errorf("claim outbox rows: %w", err)
		}
		o.held, o.claimedAt = batches, now
	}
	if len(batches) == 0 {
		return 0, nil
	}
	msgs := make([]kafka.Message, len(batches))
	refs := make([]promo.BatchRef, len(batches))
	for i, b := range batches {
		msgs[i] = kafka.EventMessage(o.topic, promo.EventFor(b))
		refs[i] = b.Ref()
	}
	if err := o.pub.Publish(ctx, msgs...); err != nil {
		return 0, fmt.Errorf("publish %d batch events: %w", len(msgs), err)
	}
	o.held = nil
	if err := o.store.MarkPublished(ctx, refs); err != nil {
		o.unmarked = refs
		return 0, fmt.Errorf("mark %d batch events published: %w", len(refs), err)
	}
	if o.metrics != nil {
		o.metrics.OutboxPublished.Add(float64(len(batches)))
	}
	return len(batches), nil
}
