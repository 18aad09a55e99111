package redemption

import (
	"context"
	"fmt"
	"sync"
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
// publish it with acks=all, mark it published only once the broker
// acknowledged it. A crash between publish and mark re-sends the page after
// the lease (consumers de-duplicate on eventId); the lease keeps another API
// replica's publisher off the rows in the normal case. A failed publish keeps
// the claimed page for the next step (while its lease lasts), and a failed
// mark keeps the acknowledged page's numbers so that the next step retries
// only the mark. Failures back off exponentially up to MaxBackoff.
type Publisher struct {
	store  EventStore
	prod   Producer
	topics map[string]string // outbox stream → topic
	log    *zap.Logger
	poll   poller

	// What a failed step leaves for the next one (one step at a time):
	mu        sync.Mutex
	held      []promo.OutboxEvent // claimed, not yet acknowledged by the broker
	claimedAt time.Time           // when held was claimed (its lease runs from there)
	unmarked  []int64             // acknowledged, not yet marked published
}

// Publisher defaults. Published events are kept for EventRetention (for
// investigations: which events went out when), then deleted in pages.
const (
	EventRetention = 7 * 24 * time.Hour
	pruneEvery     = 10 * time.Minute
	prunePage      = 10_000
	eventPage      = 500
	// stepTimeout bounds one claim-publish-mark step; eventLease outlasts it,
	// so a page is this publisher's for the whole step that publishes it.
	stepTimeout = 30 * time.Second
	eventLease  = stepTimeout + 15*time.Second
	MaxBackoff  = 30 * time.Second
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

// step publishes one page: first the marks a failed step left, then the
// page it held (or a freshly claimed one).
func (p *Publisher) step(ctx context.Context) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if len(p.unmarked) > 0 {
		if err := p.store.MarkEventsPublished(ctx, p.unmarked); err != nil {
			return 0, fmt.Errorf("mark %d redemption events published: %w", len(p.unmarked), err)
		}
		p.unmarked = nil
	}
	evs := p.held
	if len(evs) == 0 || time.Since(p.claimedAt) > eventLease-stepTimeout {
		// Nothing held, or its lease may end before this step does (another
		// replica may have the rows by then): claim afresh.
		now := time.Now()
		var err error
		evs, err = p.store.ClaimEvents(ctx, eventPage, eventLease)
		if err != nil {
			p.held = nil
			return 0, fmt.Errorf("claim outbox events: %w", err)
		}
		p.held, p.claimedAt = evs, now
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
	p.held = nil
	if err := p.store.MarkEventsPublished(ctx, seqs); err != nil {
		p.unmarked = seqs
		return 0, fmt.Errorf("mark %d redemption events published: %w", len(seqs), err)
	}
	return len(evs), nil
}
