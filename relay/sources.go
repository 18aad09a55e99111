package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// BatchStore is the batch outbox: the batch rows a promotion (or a top-up)
// writes in its own transaction.
type BatchStore interface {
	ClaimPendingBatches(ctx context.Context, limit int, lease time.Duration) ([]promo.Batch, error)
	MarkPublished(ctx context.Context, refs []promo.BatchRef) error
	// OldestUnpublished is when the oldest batch not yet published was
	// written (false: none is pending).
	OldestUnpublished(ctx context.Context) (time.Time, bool, error)
}

// Batches is the batch outbox as a source: one batch event per batch row on
// topic, keyed "<promotionId>/<batchNo>".
func Batches(st BatchStore, topic string) Source[promo.Batch] {
	return Source[promo.Batch]{
		Name:  "batches",
		Claim: st.ClaimPendingBatches,
		Encode: func(b promo.Batch) (kafka.Message, error) {
			return kafka.EventMessage(topic, promo.EventFor(b)), nil
		},
		Mark: func(ctx context.Context, bs []promo.Batch) error {
			refs := make([]promo.BatchRef, len(bs))
			for i, b := range bs {
				refs[i] = b.Ref()
			}
			return st.MarkPublished(ctx, refs)
		},
		Oldest: st.OldestUnpublished,
	}
}

// EventStore is the event outbox: the events redemptions, rollbacks and
// lifecycle changes write in their own transactions.
type EventStore interface {
	ClaimEvents(ctx context.Context, limit int, lease time.Duration) ([]promo.OutboxEvent, error)
	MarkEventsPublished(ctx context.Context, seqs []int64) error
	PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error)
}

// EventRetention is how long published outbox events are kept (for
// investigations: which events went out when) before they are pruned.
const EventRetention = 7 * 24 * time.Hour

// RedemptionEvents is the event outbox as a source: each event of the
// redemptions stream goes to topic with its key and payload as written.
func RedemptionEvents(st EventStore, topic string) Source[promo.OutboxEvent] {
	topics := map[string]string{promo.StreamRedemptions: topic}
	return Source[promo.OutboxEvent]{
		Name:  "redemptions",
		Claim: st.ClaimEvents,
		Encode: func(ev promo.OutboxEvent) (kafka.Message, error) {
			t, ok := topics[ev.Stream]
			if !ok {
				return kafka.Message{}, fmt.Errorf("outbox event %d: no topic for stream %q", ev.Seq, ev.Stream)
			}
			return kafka.Message{Topic: t, Key: []byte(ev.Key), Value: ev.Payload}, nil
		},
		Mark: func(ctx context.Context, evs []promo.OutboxEvent) error {
			seqs := make([]int64, len(evs))
			for i, ev := range evs {
				seqs[i] = ev.Seq
			}
			return st.MarkEventsPublished(ctx, seqs)
		},
		Prune:     st.PruneEvents,
		Retention: EventRetention,
	}
}
