package generator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// The behaviour of the three retry loops (a worker's attempts, a consumer's
// failed fetches, the circuit breaker's probes), pinned down call by call.

// retryWorker is a worker of a test generator (MaxAttempts 3, RetryInitial
// 1 ms, RetryMax 2 ms) that logs to an observer.
func retryWorker(t *testing.T) (*worker, *fakeStore, *observer.ObservedLogs) {
	t.Helper()
	st := newFakeStore()
	g := newTestGenerator(t, st, &fakePub{})
	core, logs := observer.New(zap.DebugLevel)
	return &worker{g: g, log: zap.New(core)}, st, logs
}

// scripted is an op whose n-th call (from 1) returns errs[n-1], and the last
// of errs for every call after; a nil error is a success returning n.
type scripted struct {
	errs  []error
	calls atomic.Int32
	ctxs  []context.Context
	mu    sync.Mutex
}

func (s *scripted) op(ctx context.Context) (int, error) {
	n := int(s.calls.Add(1))
	s.mu.Lock()
	s.ctxs = append(s.ctxs, ctx)
	s.mu.Unlock()
	err := s.errs[min(n, len(s.errs))-1]
	if err != nil {
		return -n, err
	}
	return n, nil
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

func TestRetryCountsEveryFailedAttemptUpToMaxAttempts(t *testing.T) {
	w, _, logs := retryWorker(t)
	w.g.cfg.MaxAttempts = 4
	w.g.cfg.RetryInitial, w.g.cfg.RetryMax = 10*time.Millisecond, 15*time.Millisecond
	errs := []error{errors.New("reset 1"), errors.New("reset 2"), errors.New("reset 3"), errors.New("reset 4"), nil}
	s := &scripted{errs: errs}
	v, err := retry(context.Background(), w, "commit chunk", s.op)
	if err != errs[3] || v != -4 || s.calls.Load() != 4 {
		t.Fatalf("retry = %d, %v after %d calls; want -4, the 4th call's error, after 4 (MaxAttempts)", v, err, s.calls.Load())
	}
	if got := testutil.ToFloat64(w.g.metrics.Retries); got != 3 {
		t.Errorf("retries counted %v, want 3", got)
	}
	// One log line per retry, with the pause: RetryInitial growing 1.5 times
	// to RetryMax, each ±50%.
	retried := logs.FilterMessage("commit chunk failed; retrying").All()
	if len(retried) != 3 {
		t.Fatalf("%d retry log lines, want 3", len(retried))
	}
	for i, want := range []time.Duration{10 * time.Millisecond, 15 * time.Millisecond, 15 * time.Millisecond} {
		e := retried[i]
		in := e.ContextMap()["in"].(time.Duration)
		if in < want/2 || in > want*3/2 {
			t.Errorf("retry %d in %s; want %s ±50%%", i+1, in, want)
		}
		if e.Level != zap.WarnLevel || e.ContextMap()["error"] != errs[i].Error() {
			t.Errorf("retry %d logged at %s with error %v", i+1, e.Level, e.ContextMap()["error"])
		}
	}
	// Each attempt under its own deadline (OpTimeout).
	for i, ctx := range s.ctxs {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > w.g.cfg.OpTimeout {
			t.Errorf("attempt %d: deadline %v, %v; want one within OpTimeout", i+1, dl, ok)
		}
	}

	// Success within the attempts: its value, no error.
	s = &scripted{errs: []error{errors.New("reset"), nil}}
	if v, err := retry(context.Background(), w, "commit chunk", s.op); err != nil || v != 2 {
		t.Fatalf("retry = %d, %v; want 2, nil", v, err)
	}
}

func TestRetryReturnsAnswersAtOnce(t *testing.T) {
	for _, code := range []promo.ErrorCode{promo.ENotFound, promo.EMoved, promo.EInvalid, promo.ECapacity} {
		w, _, logs := retryWorker(t)
		answer := fmt.Errorf("wrapped: %w", promo.Errorf(code, "an answer"))
		s := &scripted{errs: []error{answer}}
		_, err := retry(context.Background(), w, "commit chunk", s.op)
		if err != answer || s.calls.Load() != 1 {
			t.Errorf("%s: retry = %v after %d calls; want the same error after 1", code, err, s.calls.Load())
		}
		if got := testutil.ToFloat64(w.g.metrics.Retries); got != 0 || logs.Len() != 0 {
			t.Errorf("%s: %v retries, %d log lines; want none", code, got, logs.Len())
		}
	}
	// An answer after failures ends the retries too.
	w, _, _ := retryWorker(t)
	answer := promo.Errorf(promo.ENotFound, "gone")
	s := &scripted{errs: []error{errors.New("reset"), answer}}
	if _, err := retry(context.Background(), w, "commit chunk", s.op); err != answer || s.calls.Load() != 2 {
		t.Fatalf("retry = %v after %d calls; want the answer after 2", err, s.calls.Load())
	}
}

func TestRetryLockWaitsSpendNoAttempt(t *testing.T) {
	w, _, logs := retryWorker(t)
	last := errors.New("reset")
	s := &scripted{errs: append(repeat(fmt.Errorf("commit: %w", errLockTimeout), 5), last)}
	_, err := retry(context.Background(), w, "commit chunk", s.op)
	if err != last || s.calls.Load() != 5+3 {
		t.Fatalf("retry = %v after %d calls; want the last error after 5 lock waits + 3 attempts", err, s.calls.Load())
	}
	if lw, r := testutil.ToFloat64(w.g.metrics.LockWaits), testutil.ToFloat64(w.g.metrics.Retries); lw != 5 || r != 2 {
		t.Errorf("lock waits %v, retries %v; want 5, 2", lw, r)
	}
	if n := logs.FilterMessageSnippet("waits for another session's lock").Len(); n != 1 {
		t.Errorf("%d lock-wait warnings, want 1 (the first)", n)
	}
	if n := logs.FilterMessage("commit chunk failed; retrying").Len(); n != 2 {
		t.Errorf("%d retry log lines, want 2", n)
	}

	// Success after lock waits: logged as such, nothing counted.
	w, _, logs = retryWorker(t)
	s = &scripted{errs: append(repeat(errLockTimeout, 4), nil)}
	if v, err := retry(context.Background(), w, "commit chunk", s.op); err != nil || v != 5 {
		t.Fatalf("retry = %d, %v; want 5, nil", v, err)
	}
	if n := logs.FilterMessage("commit chunk proceeded after waiting for another session's lock").Len(); n != 1 {
		t.Errorf("%d 'proceeded' lines, want 1", n)
	}
	if r := testutil.ToFloat64(w.g.metrics.Retries); r != 0 {
		t.Errorf("retries %v, want 0", r)
	}

	// Lock waits are RetryInitial apart, and past LockWaitMax they count.
	w, _, _ = retryWorker(t)
	w.g.cfg.RetryInitial, w.g.cfg.RetryMax, w.g.cfg.LockWaitMax = 20*time.Millisecond, 20*time.Millisecond, 70*time.Millisecond
	s = &scripted{errs: []error{errLockTimeout}}
	start := time.Now()
	_, err = retry(context.Background(), w, "commit chunk", s.op)
	took := time.Since(start)
	// Lock waits at most at 0, 20, 40, 60 ms (fewer when the machine is
	// slow): at most 4, then 3 counted attempts.
	lw := int32(testutil.ToFloat64(w.g.metrics.LockWaits))
	if !errors.Is(err, errLockTimeout) || lw < 1 || lw > 4 || s.calls.Load() != lw+3 {
		t.Fatalf("retry = %v after %d calls, %d lock waits, in %s; want the lock timeout after 1 to 4 waits + 3 attempts",
			err, s.calls.Load(), lw, took)
	}
	if r := testutil.ToFloat64(w.g.metrics.Retries); r != 2 {
		t.Errorf("retries %v, want 2", r)
	}
}

func TestRetryDatabaseDownSpendsNoAttempt(t *testing.T) {
	w, _, _ := retryWorker(t)
	var pings atomic.Int32
	w.g.gate = newDBGate(func(context.Context) error {
		if pings.Add(1) == 1 {
			return errors.New("connection refused")
		}
		return nil
	}, zap.NewNop(), nil)
	w.g.cfg.RetryInitial, w.g.cfg.RetryMax = 10*time.Millisecond, time.Second
	core, obs := observer.New(zap.DebugLevel)
	w.log = zap.New(core)
	s := &scripted{errs: []error{errors.New("reset")}}
	_, err := retry(context.Background(), w, "commit chunk", s.op)
	// 1st call: the ping fails, the gate opens, the probe 500 ms later closes
	// it: not counted. Then 3 counted attempts (the ping of each answers).
	if err == nil || s.calls.Load() != 1+3 {
		t.Fatalf("retry = %v after %d calls; want an error after 1 uncounted + 3 attempts", err, s.calls.Load())
	}
	if r := testutil.ToFloat64(w.g.metrics.Retries); r != 2 {
		t.Errorf("retries %v, want 2", r)
	}
	// The backoff starts over after the outage: the first pause is
	// RetryInitial ±50%.
	for _, e := range obs.FilterMessage("commit chunk failed; retrying").All()[:1] {
		if in := e.ContextMap()["in"].(time.Duration); in > 15*time.Millisecond {
			t.Errorf("first retry after the outage in %s; want RetryInitial ±50%%", in)
		}
	}
}

// A cancelled ctx ends retry at once, wherever it waits, with the last
// attempt's error.
func TestRetryEndsAtOnceWhenCtxEnds(t *testing.T) {
	fault := errors.New("reset")
	for _, tc := range []struct {
		name string
		err  error
		gate bool // the database does not answer pings
	}{
		{"backoff", fault, false},
		{"lock wait", errLockTimeout, false},
		{"circuit breaker", fault, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, st, _ := retryWorker(t)
			w.g.cfg.RetryInitial, w.g.cfg.RetryMax = time.Hour, time.Hour
			st.setDown(tc.gate)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := &scripted{errs: []error{tc.err}}
			time.AfterFunc(50*time.Millisecond, cancel)
			start := time.Now()
			_, err := retry(ctx, w, "commit chunk", s.op)
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("retry returned %s after it began; want at once on cancel", took)
			}
			if err != tc.err || s.calls.Load() != 1 {
				t.Fatalf("retry = %v after %d calls; want the attempt's error after 1", err, s.calls.Load())
			}
		})
	}
	// Cancelled during an attempt: no further attempt, that attempt's error.
	w, _, _ := retryWorker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls int
	_, err := retry(ctx, w, "commit chunk", func(context.Context) (int, error) { calls++; cancel(); return 0, fault })
	if err != fault || calls != 1 {
		t.Fatalf("retry = %v after %d calls; want the attempt's error after 1", err, calls)
	}
}

// flakyConsumer's Fetch fails with the errors of fails, one per call, then
// serves msgs; it records when each Fetch was called.
type flakyConsumer struct {
	fakeConsumer
	fails []error // nil: serve the next message
	onErr func(n int)
	at    []time.Time
}

func (c *flakyConsumer) Fetch(ctx context.Context) (kafka.Message, error) {
	c.mu.Lock()
	c.at = append(c.at, time.Now())
	if len(c.fails) > 0 {
		err := c.fails[0]
		c.fails = c.fails[1:]
		n := len(c.at)
		c.mu.Unlock()
		if err != nil {
			if c.onErr != nil {
				c.onErr(n)
			}
			return kafka.Message{}, err
		}
	} else {
		c.mu.Unlock()
	}
	return c.fakeConsumer.Fetch(ctx)
}

// consumeUntil runs consume on c until cond holds (then cancels it) or
// consume returns; it returns consume's error.
func consumeUntil(t *testing.T, g *Generator, c Consumer, log *zap.Logger, cond func() bool) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- g.consume(ctx, c, log) }()
	deadline := time.After(20 * time.Second)
	for {
		if cond() {
			cancel()
			return <-errc
		}
		select {
		case err := <-errc:
			return err
		case <-deadline:
			t.Fatal("consume neither met the condition nor returned")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestFetchFailuresAreRetriedWithTheSameConsumerWithBackoff(t *testing.T) {
	b0 := promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 0, CodeCount: 10}
	b1 := promo.Batch{PromotionID: 7, BatchNo: 1, SeqStart: 10, CodeCount: 10}
	g := newTestGenerator(t, newFakeStore(b0, b1), &fakePub{})
	down := errors.New("broker unreachable")
	c := &flakyConsumer{fakeConsumer: fakeConsumer{msgs: []kafka.Message{eventMsg(1, promo.EventFor(b0)), eventMsg(2, promo.EventFor(b1))}},
		fails: []error{down, down, down, nil, down, nil}}
	core, logs := observer.New(zap.DebugLevel)
	err := consumeUntil(t, g, c, zap.New(core), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.committed) == 2
	})
	if err != nil {
		t.Fatalf("consume = %v; want nil (the same consumer throughout)", err)
	}
	c.mu.Lock()
	at := c.at
	c.mu.Unlock()
	if len(at) < 6 {
		t.Fatalf("%d fetches, want at least 6", len(at))
	}
	// Pauses 250 ms doubling (no jitter); a fetch that works starts them over.
	for i, want := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 0, 250 * time.Millisecond} {
		gap := at[i+1].Sub(at[i])
		if gap < want || gap >= want+want/2+200*time.Millisecond {
			t.Errorf("fetch %d came %s after fetch %d; want %s (+ a little)", i+2, gap, i+1, want)
		}
	}
	if n := logs.FilterMessage("fetch failed; retrying with the same consumer").Len(); n != 2 {
		t.Errorf("%d 'fetch failed' lines, want 2 (the first of each run of failures)", n)
	}
	if n := logs.FilterMessage("fetching again").Len(); n != 2 {
		t.Errorf("%d 'fetching again' lines, want 2", n)
	}
	if n := testutil.ToFloat64(g.metrics.ConsumerRestarts); n != 0 {
		t.Errorf("%v consumer restarts, want 0", n)
	}
}

func TestFetchFromAClosedConsumerEndsConsumeAtOnce(t *testing.T) {
	g := newTestGenerator(t, newFakeStore(), &fakePub{})
	c := &flakyConsumer{fails: []error{fmt.Errorf("reader: %w", kafka.ErrClosed)}}
	start := time.Now()
	err := consumeUntil(t, g, c, zap.NewNop(), func() bool { return false })
	if !errors.Is(err, kafka.ErrClosed) || !strings.HasPrefix(err.Error(), "fetch: ") || len(c.at) != 1 {
		t.Fatalf("consume = %v after %d fetches; want fetch: ...ErrClosed after 1", err, len(c.at))
	}
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("consume took %s to give up on a closed consumer; want no pause", took)
	}
}

func TestFetchFailingForFetchGiveUpEndsConsume(t *testing.T) {
	g := newTestGenerator(t, newFakeStore(), &fakePub{})
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	down := errors.New("broker unreachable")
	c := &flakyConsumer{fails: repeat(down, 10), onErr: func(int) { mu.Lock(); clock = clock.Add(time.Minute); mu.Unlock() }}
	err := consumeUntil(t, g, c, zap.NewNop(), func() bool { return false })
	// Failures at 1, 2, 3 minutes: the third is FetchGiveUp (2 m) after the first.
	if !errors.Is(err, down) || err.Error() != "fetch failing for 2m0s: broker unreachable" || len(c.at) != 3 {
		t.Fatalf("consume = %v after %d fetches; want fetch failing for 2m0s after 3", err, len(c.at))
	}
}

func TestFetchBackoffEndsAtOnceWhenCtxEnds(t *testing.T) {
	g := newTestGenerator(t, newFakeStore(), &fakePub{})
	down := errors.New("broker unreachable")
	var cancelled atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancelled 50 ms into the third pause (1 s).
	c := &flakyConsumer{fails: repeat(down, 10), onErr: func(n int) {
		if n == 3 {
			time.AfterFunc(50*time.Millisecond, func() { cancelled.Store(time.Now().UnixNano()); cancel() })
		}
	}}
	if err := g.consume(ctx, c, zap.NewNop()); err != nil {
		t.Fatalf("consume = %v; want nil on cancel", err)
	}
	if took := time.Since(time.Unix(0, cancelled.Load())); took > 500*time.Millisecond || len(c.at) != 3 {
		t.Fatalf("consume returned %s after the cancel, after %d fetches; want at once, after 3", took, len(c.at))
	}
}

// pingLog is a ping that fails until ok is set, records when it was called,
// and notices two pings at once.
type pingLog struct {
	mu      sync.Mutex
	at      []time.Time
	ok      bool
	running atomic.Int32
	overlap atomic.Bool
}

func (p *pingLog) ping(context.Context) error {
	if p.running.Add(1) > 1 {
		p.overlap.Store(true)
	}
	defer p.running.Add(-1)
	time.Sleep(time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.at = append(p.at, time.Now())
	if p.ok {
		return nil
	}
	return errors.New("connection refused")
}

func (p *pingLog) times() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.at...)
}

func (p *pingLog) set(ok bool) { p.mu.Lock(); p.ok = ok; p.mu.Unlock() }

func (d *dbGate) isDown() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.down }

// The breaker's probes: one at a time however many workers wait, 0.5 s
// doubling to 5 s (no jitter), the first pause before the first probe; a
// waiter whose ctx ends leaves at once and another carries on the same
// backoff; the first probe that answers lets every waiter go.
func TestGateProbesOneAtATimeWithBackoff(t *testing.T) {
	p := &pingLog{}
	var changes []bool
	var chMu sync.Mutex
	d := newDBGate(p.ping, zap.NewNop(), func(down bool) { chMu.Lock(); changes = append(changes, down); chMu.Unlock() })
	fault := errors.New("reset")

	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	type res struct {
		held bool
		at   time.Time
	}
	resA := make(chan res, 1)
	go func() { held := d.failed(ctxA, fault); resA <- res{held, time.Now()} }()
	for !d.isDown() {
		time.Sleep(time.Millisecond)
	}
	const waiters = 3
	resB := make(chan res, waiters)
	for i := 0; i < waiters; i++ {
		go func() { held := d.failed(context.Background(), fault); resB <- res{held, time.Now()} }()
	}
	// Pings: the one that opened the gate (0), probes at 0.5 and 1.5 s.
	time.Sleep(1700 * time.Millisecond)
	cancelA()
	cancelledAt := time.Now()
	r := <-resA
	if !r.held || r.at.Sub(cancelledAt) > 200*time.Millisecond {
		t.Errorf("cancelled waiter: failed = %v, %s after the cancel; want true, at once", r.held, r.at.Sub(cancelledAt))
	}
	// The backoff carries on: no probe before 3.5 s.
	time.Sleep(1200 * time.Millisecond)
	if n := len(p.times()); n != 3 {
		t.Fatalf("%d pings by 2.9 s; want 3 (0, 0.5, 1.5 s)", n)
	}
	p.set(true)
	for i := 0; i < waiters; i++ {
		select {
		case r := <-resB:
			if !r.held {
				t.Errorf("waiter %d: failed = false; want true (held by the gate)", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the waiters were not let go")
		}
	}
	at := p.times()
	if len(at) != 4 {
		t.Fatalf("%d pings, want 4", len(at))
	}
	for i, want := range []time.Duration{500 * time.Millisecond, time.Second} {
		if gap := at[i+1].Sub(at[i]); gap < want || gap >= want+300*time.Millisecond {
			t.Errorf("ping %d came %s after ping %d; want %s (+ a little)", i+2, gap, i+1, want)
		}
	}
	// The 4th: 2 s after the 3rd when a remaining waiter was probing; when
	// the cancelled one was, its pause (2 s) is spent and the next is 4 s
	// from the cancel (1.7 s): 4.2 s after the 3rd. Not 0.5 s: no reset.
	if gap := at[3].Sub(at[2]); gap < 2*time.Second || gap >= 4500*time.Millisecond {
		t.Errorf("ping 4 came %s after ping 3; want 2 s, or 4.2 s when the cancelled waiter was probing", gap)
	}
	if p.overlap.Load() {
		t.Error("two pings ran at once")
	}
	chMu.Lock()
	if fmt.Sprint(changes) != "[true false]" {
		t.Errorf("onChange calls %v; want [true false]", changes)
	}
	chMu.Unlock()
	if d.isDown() {
		t.Error("the gate is still open")
	}

	// A new outage starts the backoff over: a probe 0.5 s after the opening.
	p.set(false)
	go func() { time.Sleep(100 * time.Millisecond); p.set(true) }()
	start := time.Now()
	if !d.failed(context.Background(), fault) {
		t.Fatal("failed = false while the ping failed")
	}
	if took := time.Since(start); took < 500*time.Millisecond || took > time.Second {
		t.Errorf("second outage: let go after %s; want after the first probe, 0.5 s", took)
	}
}
