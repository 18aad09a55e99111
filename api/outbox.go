package api

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// OutboxStore is what the outbox publisher needs from the database.
type OutboxStore interface {
	PendingBatches(ctx context.Context, limit int) ([]promo.Batch, error)
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
type Outbox struct {
	store    OutboxStore
	pub      Publisher
	topic    string
	interval time.Duration
	log      *zap.Logger
	wake     chan struct{}
	metrics  *Metrics
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
	t := time.NewTicker(o.interval)
	defer t.Stop()
	failing := false
	for {
		n, err := o.Drain(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !failing:
			o.log.Error("outbox publish failed; will retry", zap.Error(err))
			failing = true
		case err == nil && failing:
			o.log.Info("outbox publishing again", zap.Int("published", n))
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.wake:
		case <-t.C:
		}
	}
}

// drainStepTimeout bounds one read-publish-mark round, so a stalled database
// or broker connection becomes an error and a retry, not a hung publisher.
const drainStepTimeout = time.Minute

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

// drainStep publishes up to 500 pending events.
func (o *Outbox) drainStep(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, drainStepTimeout)
	defer cancel()
	batches, err := o.store.PendingBatches(ctx, 500)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
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
	if err := o.store.MarkPublished(ctx, refs); err != nil {
		return 0, fmt.Errorf("mark %d batch events published: %w", len(refs), err)
	}
	if o.metrics != nil {
		o.metrics.OutboxPublished.Add(float64(len(batches)))
	}
	return len(batches), nil
}
