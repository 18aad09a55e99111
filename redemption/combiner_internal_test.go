package redemption

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// comboStore is a store whose single redemption of the hot code blocks until
// released, and which records the batches it is asked for.
type comboStore struct {
	Store
	release chan struct{}
	mu      sync.Mutex
	singles []string
	batches [][]string
}

func (f *comboStore) Redeem(_ context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	f.mu.Lock()
	f.singles = append(f.singles, req.UserID)
	f.mu.Unlock()
	if req.Code == "HOT" && req.UserID == "first" {
		<-f.release
	}
	return promo.RedeemOutcome{Redemption: promo.Redemption{ID: req.ID, UserID: req.UserID}}, nil
}

func (f *comboStore) RedeemBatch(_ context.Context, reqs []promo.RedeemRequest) ([]promo.RedeemResult, error) {
	var users []string
	res := make([]promo.RedeemResult, len(reqs))
	for i, r := range reqs {
		users = append(users, r.UserID)
		res[i].Outcome.Redemption = promo.Redemption{ID: r.ID, UserID: r.UserID}
		if i%2 == 1 {
			res[i].Outcome = promo.RedeemOutcome{Refused: promo.ReasonUserLimitReached}
		}
	}
	f.mu.Lock()
	f.batches = append(f.batches, users)
	f.mu.Unlock()
	return res, nil
}

// While a redemption of a code is in flight, the next ones queue and run as
// batches of at most max, each waiter answered with its own result; another
// code does not wait; a waiter whose context ends before its batch leaves.
func TestCombinerBatchesWhileInFlight(t *testing.T) {
	f := &comboStore{release: make(chan struct{})}
	c := newCombiner(f, 4, nil)
	ctx := context.Background()
	req := func(code, user string) *promo.RedeemRequest {
		return &promo.RedeemRequest{ID: "id-" + user, Code: code, UserID: user}
	}
	firstDone := make(chan struct{})
	go func() {
		defer close(firstDone)
		if out, err := c.redeem(ctx, req("HOT", "first")); err != nil || out.Redemption.ID != "id-first" {
			t.Errorf("first = %+v, %v", out, err)
		}
	}()
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.singles) == 1 })
	// Another code is not held up by the hot one.
	if out, err := c.redeem(ctx, req("COLD", "cold")); err != nil || out.Redemption.ID != "id-cold" {
		t.Fatalf("cold = %+v, %v", out, err)
	}
	gone, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	results := make([]promo.RedeemOutcome, 6)
	for i := range 6 {
		if i == 2 {
			wg.Go(func() {
				if _, err := c.redeem(gone, req("HOT", "gone")); err == nil {
					t.Errorf("a waiter whose context ended was answered without error")
				}
			})
			waitFor(t, func() bool { return queued(c, "HOT") == 3 })
			cancel()
			waitFor(t, func() bool { return queued(c, "HOT") == 2 })
		}
		wg.Go(func() {
			out, err := c.redeem(ctx, req("HOT", fmt.Sprintf("u%d", i)))
			if err != nil {
				t.Errorf("u%d: %v", i, err)
			}
			results[i] = out
		})
		waitFor(t, func() bool { return queued(c, "HOT") == i+1 })
	}
	close(f.release)
	wg.Wait()
	<-firstDone
	if fmt.Sprint(f.batches) != "[[u0 u1 u2 u3] [u4 u5]]" || fmt.Sprint(f.singles) != "[first cold]" {
		t.Errorf("batches %v after singles %v; want [u0 u1 u2 u3] then [u4 u5] after [first cold]", f.batches, f.singles)
	}
	for i, out := range results {
		want := fmt.Sprintf("id-u%d", i)
		if (i%2 == 0 && out.Redemption.ID != want) || (i%2 == 1 && out.Refused != promo.ReasonUserLimitReached) {
			t.Errorf("u%d's answer = %+v: each waiter gets its own result", i, out)
		}
	}
	if queued(c, "HOT") != -1 {
		t.Errorf("the code is still marked in flight after everything ended")
	}
}

func queued(c *combiner, code string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.codes[code]; q != nil {
		return len(q.waiting)
	}
	return -1
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out")
}

// panicStore panics on user "boom"'s redemption, alone or in a batch.
type panicStore struct{ comboStore }

func (f *panicStore) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	if req.UserID == "boom" {
		panic("store bug")
	}
	return f.comboStore.Redeem(ctx, req)
}

func (f *panicStore) RedeemBatch(ctx context.Context, reqs []promo.RedeemRequest) ([]promo.RedeemResult, error) {
	for _, r := range reqs {
		if r.UserID == "boom" {
			panic("store bug")
		}
	}
	return f.comboStore.RedeemBatch(ctx, reqs)
}

// A redemption whose store call panics (a bug) is answered with an error;
// its code is not left busy (every later redemption of it would queue
// behind a transaction that never ends, until refused 503), a combined
// batch's waiters are answered too, and the process does not crash.
func TestCombinerSurvivesAPanic(t *testing.T) {
	f := &panicStore{comboStore{release: make(chan struct{})}}
	close(f.release)
	c := newCombiner(f, 4, newGate(2, 100, time.Second, newAdmissionMetrics(nil)))
	ctx := context.Background()
	redeem := func(user string) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		_, err = c.redeem(ctx, &promo.RedeemRequest{ID: "id-" + user, Code: "HOT", UserID: user})
		return err
	}
	if err := redeem("boom"); err == nil {
		t.Fatalf("the panicking redemption answered no error")
	}
	done := make(chan error, 1)
	go func() { done <- redeem("after") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the next redemption of the code: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("the next redemption of the code is stuck behind the one that panicked")
	}
	// A batch with a panicking member: every waiter answered.
	block := &panicStore{comboStore{release: make(chan struct{})}}
	c = newCombiner(block, 4, nil)
	first := make(chan error, 1)
	go func() {
		_, err := c.redeem(ctx, &promo.RedeemRequest{ID: "id-first", Code: "HOT", UserID: "first"})
		first <- err
	}()
	for !c.busy("HOT") {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, u := range []string{"a", "boom", "b"} {
		wg.Go(func() { _, errs[i] = c.redeem(ctx, &promo.RedeemRequest{ID: "id-" + u, Code: "HOT", UserID: u}) })
	}
	for c.waiting("HOT") < 3 {
		time.Sleep(time.Millisecond)
	}
	close(block.release)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(3 * time.Second):
		t.Fatalf("the waiters of a batch that panicked were never answered")
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("waiter %d of the panicking batch answered no error", i)
		}
	}
	if err := <-first; err != nil {
		t.Errorf("first: %v", err)
	}
}

func (c *combiner) busy(code string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.codes[code]
	return ok
}

func (c *combiner) waiting(code string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.codes[code]; q != nil {
		return len(q.waiting)
	}
	return 0
}
