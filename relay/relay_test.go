package relay_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/relay"
)

var errBrokerDown = errors.New("broker down")

// The batch source sends one event per batch row, on its topic, keyed
// "<promotionId>/<batchNo>", covering the promotion's codes exactly once.
func TestBatchEventsOnePerBatch(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string, st store) {
		p := generated(t, st, "winter", 120_001, 50_000)
		prod := &flakyProducer{}
		r := relay.New(relay.Batches(st, "batches-topic"), prod, relay.Config{}, nil, zaptest.NewLogger(t))
		ctx := context.Background()
		if n, err := r.Drain(ctx); err != nil || n != 3 {
			t.Fatalf("Drain = %d, %v; want 3, nil", n, err)
		}
		var total int64
		for i, m := range prod.messages() {
			ev, err := promo.DecodeEvent(m.Value)
			if err != nil {
				t.Fatalf("message %d: %v (%s)", i, err, m.Value)
			}
			if want := fmt.Sprintf("%d/%d", p.ID, i); m.Topic != "batches-topic" || string(m.Key) != want || ev.Key() != want {
				t.Errorf("message %d: topic %q key %q (event %q), want batches-topic, %q", i, m.Topic, m.Key, ev.Key(), want)
			}
			if ev.SeqStart != p.SeqStart+uint64(i)*50_000 {
				t.Errorf("batch %d seqStart = %d", i, ev.SeqStart)
			}
			total += ev.CodeCount
		}
		if total != 120_001 {
			t.Errorf("events cover %d codes, want exactly 120,001", total)
		}
		if n, err := r.Drain(ctx); err != nil || n != 0 {
			t.Errorf("a second Drain = %d, %v; want 0, nil", n, err)
		}
	})
}

// TestFailedPublishLeavesRowsUnpublished: a drain whose publish fails marks
// nothing published. The same relay's next drain publishes every event
// exactly once; and when the failed relay is gone (a replica that crashed
// after the failure), another replica publishes them once its lease ended.
// Marking before the broker acknowledged would lose them.
func TestFailedPublishLeavesRowsUnpublished(t *testing.T) {
	for _, ob := range outboxes {
		t.Run(ob.name, func(t *testing.T) {
			onBackends(t, func(t *testing.T, backend string, st store) {
				ctx := context.Background()
				log := zaptest.NewLogger(t)
				prod := &flakyProducer{}

				// The same relay, after the broker came back.
				want := ob.fill(t, st, "A")
				r := relay.New(ob.src(st), prod, relay.Config{}, nil, log)
				prod.setFail(errBrokerDown)
				if n, err := r.Drain(ctx); err == nil || n != 0 {
					t.Fatalf("Drain with the broker down = %d, %v; want 0 and an error", n, err)
				}
				prod.setFail(nil)
				if n, err := r.Drain(ctx); err != nil || n != want {
					t.Fatalf("Drain after the broker came back = %d, %v; want %d, nil: the rows the failed drain "+
						"claimed did not go out", n, err, want)
				}
				if n, err := r.Drain(ctx); err != nil || n != 0 {
					t.Errorf("a third Drain = %d, %v; want 0", n, err)
				}
				eachOnce(t, ob, prod.messages(), want)

				// A relay that failed and then died: another replica takes
				// the rows over once the lease ended.
				more := ob.fill(t, st, "B")
				prod.setFail(errBrokerDown)
				if n, err := relay.New(shortLease(ob.src(st)), prod, relay.Config{}, nil, log).Drain(ctx); err == nil || n != 0 {
					t.Fatalf("Drain with the broker down = %d, %v; want 0 and an error", n, err)
				}
				prod.setFail(nil)
				time.Sleep(10 * time.Millisecond) // past the shortened lease
				if n, err := relay.New(shortLease(ob.src(st)), prod, relay.Config{}, nil, log).Drain(ctx); err != nil || n != more {
					t.Fatalf("another replica's Drain after the failed relay died = %d, %v; want %d, nil: the failed "+
						"publish left the rows marked published", n, err, more)
				}
				if n, err := relay.New(ob.src(st), prod, relay.Config{}, nil, log).Drain(ctx); err != nil || n != 0 {
					t.Errorf("a replica's Drain after everything went out = %d, %v; want 0", n, err)
				}
				eachOnce(t, ob, prod.messages(), want+more)
			})
		})
	}
}

// TestFailedMarkDoesNotRepublish: when the broker acknowledged a page but
// marking it published failed, the next drains retry the mark alone:
// nothing is published twice.
func TestFailedMarkDoesNotRepublish(t *testing.T) {
	for _, ob := range outboxes {
		t.Run(ob.name, func(t *testing.T) {
			onBackends(t, func(t *testing.T, backend string, st store) {
				ctx := context.Background()
				want := ob.fill(t, st, "M")
				prod := &flakyProducer{}
				r := relay.New(failingMarks(ob.src(st), 5), prod, relay.Config{}, nil, zaptest.NewLogger(t))
				for i := range 5 {
					if n, err := r.Drain(ctx); err == nil || n != 0 {
						t.Fatalf("Drain %d with the mark failing = %d, %v; want 0 and an error", i+1, n, err)
					}
				}
				if n, err := r.Drain(ctx); err != nil || n != 0 {
					t.Fatalf("Drain after the database came back = %d, %v; want 0 (the events went out already), nil", n, err)
				}
				if n, err := relay.New(ob.src(st), prod, relay.Config{}, nil, zaptest.NewLogger(t)).Drain(ctx); err != nil || n != 0 {
					t.Errorf("another replica's Drain = %d, %v; want 0: the marks were not written", n, err)
				}
				eachOnce(t, ob, prod.messages(), want)
			})
		})
	}
}

// Two replicas draining at once publish each event once in the normal case
// (the claims are leases).
func TestTwoReplicasPublishEachEventOnce(t *testing.T) {
	for _, ob := range outboxes {
		t.Run(ob.name, func(t *testing.T) {
			onBackends(t, func(t *testing.T, backend string, st store) {
				want := 0
				for i := range 4 {
					want += ob.fill(t, st, fmt.Sprintf("R%d", i))
				}
				prod := &flakyProducer{}
				log := zaptest.NewLogger(t)
				// Pages of 2: many steps, so that the replicas interleave.
				a := relay.New(ob.src(st), prod, relay.Config{Page: 2}, nil, log)
				b := relay.New(ob.src(st), prod, relay.Config{Page: 2}, nil, log)
				ctx := context.Background()
				var wg sync.WaitGroup
				var total atomic.Int64
				for _, r := range []*relay.Relay[any]{a, b} {
					wg.Go(func() {
						n, err := r.Drain(ctx)
						if err != nil {
							t.Error(err)
						}
						total.Add(int64(n))
					})
				}
				wg.Wait()
				if n, err := a.Drain(ctx); err != nil || n != 0 {
					t.Errorf("a drained outbox published %d more, %v", n, err)
				}
				if total.Load() != int64(want) {
					t.Errorf("the replicas published %d events, want %d", total.Load(), want)
				}
				eachOnce(t, ob, prod.messages(), want)
			})
		})
	}
}

// Run drains once more when its context ends: rows written after its last
// pass (nobody notified it, and its interval is an hour) go out before it
// returns, rather than after another replica's lease or the next start.
func TestRunDrainsOnShutdown(t *testing.T) {
	for _, ob := range outboxes {
		t.Run(ob.name, func(t *testing.T) {
			onBackends(t, func(t *testing.T, backend string, st store) {
				src := ob.src(st)
				claims := make(chan struct{}, 100)
				claim := src.Claim
				src.Claim = func(ctx context.Context, limit int, lease time.Duration) ([]any, error) {
					claims <- struct{}{}
					return claim(ctx, limit, lease)
				}
				prod := &flakyProducer{}
				r := relay.New(src, prod, relay.Config{Interval: time.Hour}, nil, zaptest.NewLogger(t))
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- r.Run(ctx) }()
				<-claims // the first pass found nothing
				want := ob.fill(t, st, "S")
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("Run = %v", err)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("Run did not return within 30 s of its context's end")
				}
				eachOnce(t, ob, prod.messages(), want)
			})
		})
	}
}

// Notify cuts the interval short: rows go out at once, not after an hour.
func TestNotifyPublishesAtOnce(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string, st store) {
		prod := &flakyProducer{}
		r := relay.New(relay.Batches(st, "batches-topic"), prod, relay.Config{Interval: time.Hour}, nil, zaptest.NewLogger(t))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		defer func() { cancel(); <-done }()
		generated(t, st, "notified", 10, 10)
		r.Notify()
		for deadline := time.Now().Add(20 * time.Second); len(prod.messages()) == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("a notified relay published nothing within 20 s")
			}
		}
	})
}
