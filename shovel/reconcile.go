package shovel

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// BatchLister lists batches that are not complete.
type BatchLister interface {
	IncompleteBatches(ctx context.Context, promotionID int64) ([]promo.Batch, error)
}

// ReconcileOptions says where events can be in flight.
type ReconcileOptions struct {
	PromotionID    int64 // 0 = all
	BatchesTopic   string
	RetryTopic     string
	ErrorTopic     string
	DeadTopic      string
	GeneratorGroup string // consumes batches + retry
	ShovelGroup    string // consumes error
	DryRun         bool
}

// ReconcileReport is what a reconcile found and did.
type ReconcileReport struct {
	Incomplete int           // batches not complete in the database
	InFlight   int           // of those, with an event still to be consumed
	Parked     int           // of those, with an event in the dead-letter topic (replay them instead)
	Enqueued   []promo.Batch // re-enqueued on the batches topic (or would be, on a dry run)
}

// Reconcile finds batches that are incomplete in the database and have no
// event anywhere it could still be consumed from — unconsumed in the batches
// or retry topics, unshovelled in the error topic, or parked in the
// dead-letter topic — and publishes a fresh event for each to the batches
// topic. A batch it re-enqueues by mistake costs nothing: generation is
// idempotent.
func Reconcile(ctx context.Context, store BatchLister, client Client, pub Publisher, o ReconcileOptions, log *zap.Logger) (ReconcileReport, error) {
	var rep ReconcileReport
	batches, err := store.IncompleteBatches(ctx, o.PromotionID)
	if err != nil {
		return rep, fmt.Errorf("list incomplete batches: %w", err)
	}
	rep.Incomplete = len(batches)
	if len(batches) == 0 {
		return rep, nil
	}
	inFlight := map[string]bool{}
	for _, src := range []struct{ topic, group string }{
		{o.BatchesTopic, o.GeneratorGroup}, {o.RetryTopic, o.GeneratorGroup}, {o.ErrorTopic, o.ShovelGroup},
	} {
		if err := unconsumedKeys(ctx, client, src.topic, src.group, inFlight); err != nil {
			return rep, err
		}
	}
	parked := map[string]bool{}
	if err := unconsumedKeys(ctx, client, o.DeadTopic, "", parked); err != nil {
		return rep, err
	}
	var msgs []kafka.Message
	for _, b := range batches {
		ev := promo.EventFor(b)
		switch {
		case inFlight[ev.Key()]:
			rep.InFlight++
		case parked[ev.Key()]:
			rep.Parked++
		default:
			rep.Enqueued = append(rep.Enqueued, b)
			msgs = append(msgs, kafka.EventMessage(o.BatchesTopic, ev))
			log.Info("re-enqueue batch", zap.String("key", ev.Key()), zap.Int64("remaining", ev.CodeCount), zap.Bool("dry_run", o.DryRun))
		}
	}
	if o.DryRun || len(msgs) == 0 {
		return rep, nil
	}
	if err := pub.Publish(ctx, msgs...); err != nil {
		return rep, fmt.Errorf("re-enqueue %d batches on %s: %w", len(msgs), o.BatchesTopic, err)
	}
	return rep, nil
}

// unconsumedKeys adds the keys of topic's events after group's committed
// offsets (all events when group is "") to keys.
func unconsumedKeys(ctx context.Context, client Client, topic, group string, keys map[string]bool) error {
	low, high, err := client.Offsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("read offsets of %s: %w", topic, err)
	}
	committed := map[int]kafka.Position{}
	if group != "" {
		if committed, err = client.CommittedPositions(ctx, group, topic); err != nil {
			return fmt.Errorf("read offsets of group %s on %s: %w", group, topic, err)
		}
	}
	for p, hw := range high {
		c, ok := committed[p]
		from := c.Offset
		if !ok || from < low[p] {
			from = low[p]
		}
		if err := client.ReadRange(ctx, topic, p, from, hw, func(m kafka.Message) error {
			keys[string(m.Key)] = true
			return nil
		}); err != nil {
			return fmt.Errorf("read %s/%d: %w", topic, p, err)
		}
	}
	return nil
}
