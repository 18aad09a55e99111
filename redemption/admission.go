package redemption

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promocodes/promocodes/pkg/promo"
)

// gate is the service's admission control in front of the database: at most
// slots database operations of shoppers (validate, redeem, reserve, confirm,
// release, rollback, issue) run at once, the pool's size, so that the rest
// wait here in arrival order instead of contending for pool connections;
// a combined batch of one code's redemptions (combiner) is one operation.
// A request waits for its operation to start at most maxWait, and at most
// maxQueue requests wait at once (in the slot queue or behind their code's
// operation in flight); past either bound it is refused with an
// *Overloaded error (503 with Retry-After), never left to pile up until its
// client or its database deadline gives up.
//
// Concurrency: safe for concurrent use. Slots are handed to waiters in FIFO
// order; a waiter that gives up (deadline, cancel) leaves the queue, and a
// slot handed to it at that moment is passed on.
type gate struct {
	slots    int
	maxQueue int64
	maxWait  time.Duration
	m        *admissionMetrics

	// waiting counts the requests admitted whose database operation has not
	// started yet (the bound maxQueue applies to it).
	waiting atomic.Int64

	mu    sync.Mutex
	free  int
	queue []*slotWaiter // FIFO; entries are removed when handed a slot or gone
}

type slotWaiter struct {
	ready chan struct{} // closed when the slot is handed over
	given bool          // under gate.mu
	gone  bool          // under gate.mu: left the queue
}

func newGate(slots, maxQueue int, maxWait time.Duration, m *admissionMetrics) *gate {
	g := &gate{slots: slots, maxQueue: int64(maxQueue), maxWait: maxWait, m: m, free: slots}
	m.slots.Set(float64(slots))
	return g
}

// Overloaded is the refusal of a request the database cannot take now:
// more requests are waiting than the queue holds, or this one waited the
// longest a request may. The API answers it 503 with Retry-After.
type Overloaded struct {
	Err        *promo.Error
	RetryAfter time.Duration
	// Reason is the metrics label: queue_full or wait_timeout.
	Reason string
}

func (e *Overloaded) Error() string { return e.Err.Error() }
func (e *Overloaded) Unwrap() error { return e.Err }

// overloaded builds the refusal. Retry-After is the wait bound: every
// request queued now has started or been refused by then, so the queue has
// turned over (at least 1 s).
func (g *gate) overloaded(reason string) error {
	g.m.rejected.WithLabelValues(reason).Inc()
	msg := fmt.Sprintf("%d requests are waiting for the database, the most this server queues; try again shortly",
		g.maxQueue)
	if reason == rejectWait {
		msg = fmt.Sprintf("the database could not take this request within %s; try again shortly", g.maxWait)
	}
	secs := math.Max(1, math.Ceil(g.maxWait.Seconds()))
	return &Overloaded{Err: promo.Errorf(errUnavailable, "%s", msg), RetryAfter: time.Duration(secs) * time.Second,
		Reason: reason}
}

// errUnavailable is the code of an Overloaded refusal's error: not the
// caller's fault, not internal (the API answers 503 for it).
const errUnavailable promo.ErrorCode = "unavailable"

// errSlotWait is acquire's error when the deadline passed first.
var errSlotWait = errors.New("no database slot came free in time")

const (
	rejectFull = "queue_full"
	rejectWait = "wait_timeout"
)

// ticket is one admitted request: it counts as waiting until start or done.
type ticket struct {
	g       *gate
	since   time.Time
	started bool
}

// admit counts a request as waiting, or refuses it when maxQueue are. A
// nil gate admits everything (nil ticket).
func (g *gate) admit() (*ticket, error) {
	if g == nil {
		return nil, nil
	}
	if g.waiting.Add(1) > g.maxQueue {
		g.waiting.Add(-1)
		return nil, g.overloaded(rejectFull)
	}
	g.m.waiting.Inc()
	return &ticket{g: g, since: time.Now()}, nil
}

// leave says the request no longer waits: its database operation began, or
// it gave up. Later calls do nothing.
func (t *ticket) leave() {
	if t == nil || t.started {
		return
	}
	t.started = true
	t.g.waiting.Add(-1)
	t.g.m.waiting.Dec()
	t.g.m.wait.Observe(time.Since(t.since).Seconds())
}

// deadline is when the request has waited the longest it may (none without
// a gate: the zero time).
func (t *ticket) deadline() time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.since.Add(t.g.maxWait)
}

// timeout is a channel that fires at the deadline (nil without a gate:
// never), and its stop function.
func (t *ticket) timeout() (<-chan time.Time, func() bool) {
	if t == nil {
		return nil, func() bool { return false }
	}
	tm := time.NewTimer(time.Until(t.deadline()))
	return tm.C, tm.Stop
}

// refuse is the refusal of a request that waited past its deadline.
func (t *ticket) refuse() error { return t.g.overloaded(rejectWait) }

// acquire takes a slot, waiting in FIFO order until the deadline
// (errSlotWait) or ctx ends. It returns the slot's release function. A nil
// gate has slots for all.
func (g *gate) acquire(ctx context.Context, deadline time.Time) (func(), error) {
	if g == nil {
		return func() {}, nil
	}
	g.mu.Lock()
	if g.free > 0 && len(g.queue) == 0 {
		g.free--
		g.mu.Unlock()
		g.m.inUse.Inc()
		return g.release, nil
	}
	w := &slotWaiter{ready: make(chan struct{})}
	g.queue = append(g.queue, w)
	g.mu.Unlock()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
		g.m.inUse.Inc()
		return g.release, nil
	case <-timer.C:
		err = errSlotWait
	case <-ctx.Done():
		err = ctx.Err()
	}
	g.mu.Lock()
	if w.given { // handed a slot as it gave up: pass it on
		g.mu.Unlock()
		g.m.inUse.Inc()
		g.release()
		return nil, err
	}
	w.gone = true
	g.mu.Unlock()
	return nil, err
}

// release gives a slot back: to the longest waiter still waiting, or free.
func (g *gate) release() {
	g.m.inUse.Dec()
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.queue) > 0 {
		w := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		if w.gone {
			continue
		}
		w.given = true
		close(w.ready)
		return
	}
	g.free++
}

// run admits one request and runs op in a slot: the path of every gated
// operation but combined redemptions (combiner).
func (g *gate) run(ctx context.Context, op func(context.Context) error) error {
	if g == nil {
		return op(ctx)
	}
	t, err := g.admit()
	if err != nil {
		return err
	}
	release, err := g.acquire(ctx, t.deadline())
	t.leave()
	if errors.Is(err, errSlotWait) {
		return t.refuse()
	}
	if err != nil {
		return err
	}
	defer release()
	return op(ctx)
}

// waitBound is how long a request may wait (0 without a gate).
func (g *gate) waitBound() time.Duration {
	if g == nil {
		return 0
	}
	return g.maxWait
}

// admissionMetrics are the gate's instruments.
type admissionMetrics struct {
	waiting  prometheus.Gauge
	inUse    prometheus.Gauge
	slots    prometheus.Gauge
	wait     prometheus.Histogram
	rejected *prometheus.CounterVec
}

func newAdmissionMetrics(reg prometheus.Registerer) *admissionMetrics {
	m := &admissionMetrics{
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "promocodes_admission_waiting",
			Help: "Shopper requests waiting for their database operation to start (the queue bounded by redeem.admission.maxQueue)."}),
		inUse: prometheus.NewGauge(prometheus.GaugeOpts{Name: "promocodes_admission_slots_in_use",
			Help: "Shopper database operations running now (at most redeem.admission.slots)."}),
		slots: prometheus.NewGauge(prometheus.GaugeOpts{Name: "promocodes_admission_slots",
			Help: "Shopper database operations that may run at once (redeem.admission.slots)."}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "promocodes_admission_wait_seconds",
			Help:    "Time a shopper request waited before its database operation started (refused ones included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promocodes_admission_rejected_total",
			Help: "Shopper requests answered 503 by admission control: queue_full (maxQueue were waiting) or wait_timeout (waited maxWait)."},
			[]string{"reason"}),
	}
	for _, r := range []string{rejectFull, rejectWait} {
		m.rejected.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.waiting, m.inUse, m.slots, m.wait, m.rejected)
	}
	return m
}
