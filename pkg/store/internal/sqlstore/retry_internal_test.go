package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// retry runs a transaction again while it fails retryably or loses a
// create's idempotency race, up to maxTxAttempts runs, and returns the last
// run's error itself; any other error, and a context ended while it waits,
// end it at once.
func TestRetry(t *testing.T) {
	victim, bad := errors.New("deadlock victim"), errors.New("bad")
	s := &Core[*SQLTx]{d: Dialect[*SQLTx]{Retryable: func(err error) bool { return errors.Is(err, victim) }}}
	for _, tc := range []struct {
		name string
		errs []error // the runs' errors, in order; the last repeats
		runs int
		want error
	}{
		{"succeeds at once", []error{nil}, 1, nil},
		{"a victim, then success", []error{victim, nil}, 2, nil},
		{"always a victim", []error{victim}, maxTxAttempts, victim},
		{"a lost idempotency race, then success", []error{errIdempotencyRace, nil}, 2, nil},
		{"not retryable", []error{victim, bad}, 2, bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs := 0
			err := s.retry(context.Background(), func() error {
				runs++
				return tc.errs[min(runs, len(tc.errs))-1]
			})
			if runs != tc.runs {
				t.Errorf("%d runs, want %d", runs, tc.runs)
			}
			if err != tc.want {
				t.Errorf("retry: %v, want the run's own %v", err, tc.want)
			}
		})
	}
	// now: a run that fails as now says runs again at once (a chunk's
	// collision), within the same runs; when they run out, its own error.
	collision := errors.New("unique violation")
	isCollision := func(err error) bool { return errors.Is(err, collision) }
	for _, tc := range []struct {
		name string
		errs []error
		runs int
		want error
	}{
		{"a collision, then success", []error{collision, nil}, 2, nil},
		{"a collision, a victim, then success", []error{collision, victim, nil}, 3, nil},
		{"always a collision", []error{collision}, maxTxAttempts, collision},
		{"a collision, then not retryable", []error{collision, bad}, 2, bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, runs := time.Now(), 0
			err := s.retry(context.Background(), func() error {
				runs++
				return tc.errs[min(runs, len(tc.errs))-1]
			}, isCollision)
			if runs != tc.runs || err != tc.want {
				t.Errorf("%d runs, %v; want %d, %v", runs, err, tc.runs, tc.want)
			}
			if tc.name == "always a collision" && time.Since(start) > 30*time.Millisecond { // three backoffs wait 35 ms at least
				t.Errorf("collisions waited %s: they run again at once", time.Since(start))
			}
		})
	}
	// A context that ends while retry waits ends it with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	start, runs := time.Now(), 0
	err := s.retry(ctx, func() error {
		runs++
		cancel()
		return fmt.Errorf("run %d: %w", runs, victim)
	})
	if !errors.Is(err, context.Canceled) || runs != 1 || time.Since(start) > time.Second {
		t.Errorf("cancelled while waiting: %v after %d runs, %s: want context.Canceled after 1", err, runs, time.Since(start))
	}
}
