package redemption

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// EventStore is what the publisher needs from the database.
type EventStore interface {
	ClaimEvents(ctx context.Context, limit int, lease time.Duration) ([]promo.OutboxEvent, error)
	MarkEventsPublished(ctx context.Context, seqs []int64) error
	PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error)
}

// Producer sends messages and returns once the broker acknowledged them.
type Producer interface {
	Publish(ctx context.Context, msgs ...kafka.Message) error
}

// Publisher moves the event outbox (redemptions and rollbacks, written in
// their own transactions) to the redemptions topic: claim a leased page,
// publish it with acks=all, mark it published. A crash between publish and
// mark re-sends the page after the lease (consumers de-duplicate on
// eventId); the lease keeps another API replica's publisher off the rows in
// the normal case. Failures back off exponentially up to MaxBackoff.
type Publisher struct {
	store  EventStore
	prod   Producer
	topics map[string]string // outbox stream → topic
	log    *zap.Logger
	poll   poller
}

// Publisher defaults. Published events are kept for EventRetention (for
// investigations: which events went out when), then deleted in pages.
const (
	EventRetention = 7 * 24 * time.Hour
	pruneEvery     = 10 * time.Minute
	prunePage      = 10_000
	eventPage      = 500
	eventLease     = 30 * time.Second
	MaxBackoff     = 30 * time.Second
)

// NewPublisher builds the publisher of the redemptions stream to topic;
// interval is how often it looks for rows it was not told about (1s).
func NewPublisher(store EventStore, prod Producer, topic string, interval time.Duration, log *zap.Logger) *Publisher {
	if interval <= 0 {
		interval = time.Second
	}
	return &Publisher{store: store, prod: prod, topics: map[string]string{promo.StreamRedemptions: topic}, log: log,
		poll: newPoller(interval, log, "redemption event publish failed; backing off", "redemption events publishing again", false)}
}

// Notify asks the publisher to look for new rows now.
func (p *Publisher) Notify() { p.poll.notify() }

// Run publishes until ctx ends; every pruneEvery it also prunes what was
// published more than EventRetention ago.
func (p *Publisher) Run(ctx context.Context) error {
	var lastPrune time.Time
	return p.poll.run(ctx, func(ctx context.Context) error {
		if time.Since(lastPrune) >= pruneEvery {
			lastPrune = time.Now()
			if n, err := p.Prune(ctx, lastPrune.Add(-EventRetention)); err != nil && ctx.Err() == nil {
				p.log.Warn("pruning published redemption events failed; will retry", zap.Error(err))
			} else if n > 0 {
				p.log.Info("pruned published redemption events", zap.Int64("deleted", n))
			}
		}
		_, err := p.Drain(ctx)
		return err
	})
}

// Prune deletes the events published before before, a page per
// transaction, so that the outbox does not grow without bound.
func (p *Publisher) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		n, err := p.store.PruneEvents(ctx, before, prunePage)
		total += n
		if err != nil || n < prunePage {
			return total, err
		}
	}
}

// Drain publishes every unpublished event it can claim and returns how many.
func (p *Publisher) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := p.step(ctx)
		total += n
		if err != nil || n < eventPage {
			return total, err
		}
	}
}

func (p *Publisher) step(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, eventLease)
	defer cancel()
	evs, err := p.store.ClaimEvents(ctx, eventPage, eventLease)
	if err != nil {
		return 0, fmt.Errorf("claim outbox events: %w", err)
	}
	if len(evs) == 0 {
		return 0, nil
	}
	msgs := make([]kafka.Message, 0, len(evs))
	seqs := make([]int64, len(evs))
	for i, ev := range evs {
		seqs[i] = ev.Seq
		topic, ok := p.topics[ev.Stream]
		if !ok {
			return 0, fmt.Errorf("outbox event %d: no topic for stream %q", ev.Seq, ev.Stream)
		}
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(ev.Key), Value: ev.Payload})
	}
	if err := p.prod.Publish(ctx, msgs...); err != nil {
		return 0, fmt.Errorf("publish %d redemption events: %w", len(msgs), err)
	}
	if err := p.store.MarkEventsPublished(ctx, seqs); err != nil {
		return 0, fmt.Errorf("mark %d redemption events published: %w", len(seqs), err)
	}
	return len(evs), nil
}
