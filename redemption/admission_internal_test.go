package redemption

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/promocodes/promocodes/pkg/promo"
)

func testGate(slots, queue int, wait time.Duration) *gate {
	return newGate(slots, queue, wait, newAdmissionMetrics(prometheus.NewRegistry()))
}

// Slots are handed to waiters in arrival order, one per release.
func TestGateFIFO(t *testing.T) {
	g := testGate(1, 100, time.Minute)
	hold, err := g.acquire(context.Background(), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := range 5 {
		wg.Go(func() {
			if err := g.run(context.Background(), func(context.Context) error {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				return nil
			}); err != nil {
				t.Errorf("waiter %d: %v", i, err)
			}
		})
		waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.queue) == i+1 })
	}
	hold()
	wg.Wait()
	if fmt.Sprint(order) != "[0 1 2 3 4]" {
		t.Errorf("slots went to %v, want arrival order [0 1 2 3 4]", order)
	}
	if g.free != 1 || g.waiting.Load() != 0 {
		t.Errorf("after all: %d free slots, %d waiting; want 1, 0", g.free, g.waiting.Load())
	}
}

// Past maxQueue waiting requests the next is refused at once, and a request
// that waited maxWait is refused then; both as *Overloaded with Retry-After
// the wait bound (rounded up to whole seconds), and neither leaks a slot.
func TestGateBounds(t *testing.T) {
	g := testGate(1, 2, 80*time.Millisecond)
	hold, _ := g.acquire(context.Background(), time.Now().Add(time.Minute))
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- g.run(context.Background(), func(context.Context) error { return nil }) }()
	}
	waitFor(t, func() bool { return g.waiting.Load() == 2 })
	start := time.Now()
	err := g.run(context.Background(), func(context.Context) error { return nil })
	var ov *Overloaded
	if !errors.As(err, &ov) || ov.Reason != rejectFull || ov.RetryAfter != time.Second {
		t.Fatalf("third waiter: %v (%+v); want Overloaded queue_full, Retry-After 1s", err, ov)
	}
	if time.Since(start) > 50*time.Millisecond {
		t.Errorf("a full queue answered after %s; want at once", time.Since(start))
	}
	for range 2 {
		err := <-errs
		if !errors.As(err, &ov) || ov.Reason != rejectWait {
			t.Errorf("queued waiter: %v; want Overloaded wait_timeout", err)
		}
	}
	if el := time.Since(start); el < 60*time.Millisecond {
		t.Errorf("waiters refused after %s; want about the 80ms bound", el)
	}
	hold()
	if g.free != 1 || g.waiting.Load() != 0 || len(g.queue) != 0 {
		t.Errorf("after: %d free, %d waiting, %d queued; want 1, 0, 0", g.free, g.waiting.Load(), len(g.queue))
	}
	if n := testutil.ToFloat64(g.m.rejected.WithLabelValues(rejectFull)); n != 1 {
		t.Errorf("queue_full rejections = %v, want 1", n)
	}
	if n := testutil.ToFloat64(g.m.rejected.WithLabelValues(rejectWait)); n != 2 {
		t.Errorf("wait_timeout rejections = %v, want 2", n)
	}
	if promo.Code(ov) != errUnavailable {
		t.Errorf("refusal code %q, want %q", promo.Code(ov), errUnavailable)
	}
}

// Many requests with waits about as long as the work: whatever gives up
// when, no slot is lost or doubled, and at most slots run at once.
func TestGateChurn(t *testing.T) {
	g := testGate(3, 1000, 3*time.Millisecond)
	var running, most atomic.Int64
	var wg sync.WaitGroup
	for i := range 400 {
		wg.Go(func() {
			ctx := context.Background()
			if i%7 == 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Duration(i%3)*time.Millisecond)
				defer cancel()
			}
			_ = g.run(ctx, func(context.Context) error {
				n := running.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(time.Duration(i%3) * time.Millisecond)
				running.Add(-1)
				return nil
			})
		})
	}
	wg.Wait()
	if most.Load() > 3 {
		t.Errorf("%d operations ran at once; want at most 3 slots", most.Load())
	}
	if g.free != 3 || g.waiting.Load() != 0 {
		t.Errorf("after: %d free, %d waiting; want 3, 0", g.free, g.waiting.Load())
	}
}

// A redemption queued behind its code's transaction in flight counts
// against the queue and is refused after the wait bound, leaving the queue.
func TestCombinerWaiterBound(t *testing.T) {
	f := &comboStore{release: make(chan struct{})}
	g := testGate(4, 1, 50*time.Millisecond)
	c := newCombiner(f, 4, g)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := c.redeem(ctx, &promo.RedeemRequest{ID: "a", Code: "HOT", UserID: "first"})
		done <- err
	}()
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.singles) == 1 })
	errs := make(chan error, 1)
	go func() {
		_, err := c.redeem(ctx, &promo.RedeemRequest{ID: "b", Code: "HOT", UserID: "second"})
		errs <- err
	}()
	waitFor(t, func() bool { return queued(c, "HOT") == 1 })
	// The queue (1) is full: a third is refused at once.
	_, err := c.redeem(ctx, &promo.RedeemRequest{ID: "c", Code: "HOT", UserID: "third"})
	var ov *Overloaded
	if !errors.As(err, &ov) || ov.Reason != rejectFull {
		t.Errorf("third: %v; want queue_full", err)
	}
	err = <-errs
	if !errors.As(err, &ov) || ov.Reason != rejectWait {
		t.Errorf("second: %v; want wait_timeout after 50ms behind the code's transaction", err)
	}
	if queued(c, "HOT") != 0 || g.waiting.Load() != 0 {
		t.Errorf("after the refusal: %d queued, %d waiting; want 0, 0", queued(c, "HOT"), g.waiting.Load())
	}
	close(f.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return queued(c, "HOT") == -1 })
	if len(f.batches) != 0 {
		t.Errorf("batches %v ran for requests that were refused", f.batches)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.free != 4 {
		t.Errorf("%d free slots after all, want 4", g.free)
	}
}
