package sqlstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A wait that begins while a flush runs must get a flush of its own: the
// running one may have started before the commit it waits for.
func TestSyncerWaitNeedsAFlushStartedAfterIt(t *testing.T) {
	var (
		started = make(chan int, 10)
		release = make(chan struct{}, 10)
		n       atomic.Int32
	)
	s := NewSyncer(func() error {
		started <- int(n.Add(1))
		<-release
		return nil
	})
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- s.Wait(ctx) }()
	if got := <-started; got != 1 {
		t.Fatalf("flush %d started, want 1", got)
	}
	// Flush 1 runs; a commit now must not be answered by it.
	second := make(chan error, 1)
	go func() { second <- s.Wait(ctx) }()
	time.Sleep(20 * time.Millisecond)
	release <- struct{}{} // flush 1 ends
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second:
		t.Fatalf("the second wait returned (%v) after flush 1, which started before it", err)
	case got := <-started:
		if got != 2 {
			t.Fatalf("flush %d started, want 2", got)
		}
	}
	release <- struct{}{}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if s.Flushes() != 2 {
		t.Fatalf("%d flushes, want 2", s.Flushes())
	}
}

// Waits that begin while one flush runs share the next one.
func TestSyncerWaitsShareFlushes(t *testing.T) {
	var (
		gate  = make(chan struct{})
		n     atomic.Int32
		first = true
		mu    sync.Mutex
	)
	s := NewSyncer(func() error {
		n.Add(1)
		mu.Lock()
		hold := first
		first = false
		mu.Unlock()
		if hold {
			<-gate
		}
		return nil
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Wait(ctx) })
	for n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for range 50 {
		wg.Go(func() {
			if err := s.Wait(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	if got := n.Load(); got != 2 {
		t.Fatalf("%d flushes for 51 waits, 50 of them during the first: want 2", got)
	}
}

// A failed flush fails every later wait: the pages it could not write may
// be gone, and a later fsync would succeed without them.
func TestSyncerFailedFlushIsSticky(t *testing.T) {
	fail := errors.New("EIO")
	var calls atomic.Int32
	s := NewSyncer(func() error {
		if calls.Add(1) == 1 {
			return fail
		}
		return nil
	})
	for i := range 3 {
		if err := s.Wait(context.Background()); !errors.Is(err, fail) {
			t.Fatalf("wait %d: %v, want the failed flush's error", i, err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d flushes after a failed one, want none", calls.Load()-1)
	}
}

// A wait whose context ends returns its end; the flush goes on for the
// others.
func TestSyncerWaitEndsWithItsContext(t *testing.T) {
	gate := make(chan struct{})
	s := NewSyncer(func() error { <-gate; return nil })
	go func() { _ = s.Wait(context.Background()) }()
	time.Sleep(10 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v, want its deadline", err)
	}
	close(gate)
	if err := s.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}
