package redemption

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// batchStore is a store that can redeem several requests for one code in
// one transaction (the SQL stores' RedeemBatch).
type batchStore interface {
	RedeemBatch(ctx context.Context, reqs []promo.RedeemRequest) ([]promo.RedeemResult, error)
}

// combiner combines concurrent redemptions of the same code in this process
// into one transaction. A redemption of a code nobody is redeeming runs at
// once, alone (no added wait for a quiet code). Redemptions of a code that
// arrive while one of it is in flight queue behind it; when it ends, the
// queued ones (up to max) run together as one RedeemBatch, whose
// conditional statements keep every limit exact, also against other
// replicas. A waiter therefore waits at most for the transaction in flight
// before its own, which holds the code's row lock only once for all of
// them: a hot code's rate is no longer one transaction (and one commit
// flush) per use.
//
// Concurrency: safe for concurrent use; each code's queue is drained by one
// goroutine at a time.
type combiner struct {
	store Store
	batch batchStore
	max   int
	// gate admits each redemption and gives each transaction (a single
	// redemption or a batch) a database slot; nil: no admission control.
	gate *gate

	mu    sync.Mutex
	codes map[string]*codeQueue // codes with a redemption in flight
}

type codeQueue struct{ waiting []*waiter }

type waiter struct {
	ctx    context.Context
	req    promo.RedeemRequest
	ticket *ticket                  // its admission: it waits until taken into a batch
	done   chan *promo.RedeemResult // buffered: the batch never blocks on a waiter
}

// batchTimeout bounds a combined transaction that no single request's
// context bounds.
const batchTimeout = 30 * time.Second

// A store whose Redeem already writes concurrent redemptions of any codes
// in one transaction (SQLite's group commit) is still combined here: one
// code's concurrent redemptions in one batch take its row once, where a
// group would run each member's statements on it in turn (on SQLite 64
// clients on one code: 3,947/s combined against 2,825/s grouped, same run;
// docs/performance.md).
func newCombiner(store Store, max int, g *gate) *combiner {
	c := &combiner{store: store, max: max, gate: g, codes: map[string]*codeQueue{}}
	if b, ok := store.(batchStore); ok && max > 1 {
		c.batch = b
	}
	return c
}

// redeem admits the request (gate), then redeems it alone or combined. The
// request waits (for a slot, or behind its code's transaction in flight) at
// most the gate's wait bound; a combined batch takes its slot before it
// takes its waiters from the queue, so that a waiter can still leave it.
//
// The paths are functions of their own so that a waiting request's
// goroutine holds small frames while it waits: a shopper's request
// goroutine that outgrows its starting stack is copied to a larger one,
// which cost a tenth of the API's CPU in a burst of 10,000 requests
// (docs/performance.md, "Bursts").
func (c *combiner) redeem(ctx context.Context, req *promo.RedeemRequest) (promo.RedeemOutcome, error) {
	t, err := c.gate.admit()
	if err != nil {
		return promo.RedeemOutcome{}, err
	}
	if c.batch == nil {
		return c.alone(ctx, t, req)
	}
	c.mu.Lock()
	q, busy := c.codes[req.Code]
	if !busy {
		c.codes[req.Code] = &codeQueue{}
		c.mu.Unlock()
		return c.first(ctx, t, req)
	}
	w := &waiter{ctx: ctx, req: *req, ticket: t, done: make(chan *promo.RedeemResult, 1)}
	q.waiting = append(q.waiting, w)
	c.mu.Unlock()
	r := c.wait(w)
	return r.Outcome, r.Err
}

// first redeems the request of a code nobody is redeeming, alone, then
// passes the code on to the requests that queued behind it.
func (c *combiner) first(ctx context.Context, t *ticket, req *promo.RedeemRequest) (promo.RedeemOutcome, error) {
	// Deferred: a store call that panics (a bug) must still pass the code
	// on, or every later redemption of it would queue behind a transaction
	// that never ends.
	defer c.next(req.Code)
	return c.alone(ctx, t, req)
}

// wait waits for w's batch to answer it, or leaves the queue when its
// context ends or its wait bound passes before its batch started.
func (c *combiner) wait(w *waiter) *promo.RedeemResult {
	timeout, stop := w.ticket.timeout()
	defer stop()
	var err error
	select {
	case r := <-w.done:
		return r
	case <-w.ctx.Done():
		err = w.ctx.Err()
	case <-timeout:
		err = errSlotWait
	}
	// Gone before its batch started: leave the queue. Once its batch has
	// started the request is being redeemed and is answered (its client may
	// no longer listen, as with a single redemption in flight).
	c.mu.Lock()
	if q := c.codes[w.req.Code]; q != nil {
		for i, o := range q.waiting {
			if o == w {
				q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
				w.ticket.leave()
				c.mu.Unlock()
				if errors.Is(err, errSlotWait) {
					err = w.ticket.refuse()
				}
				return &promo.RedeemResult{Err: err}
			}
		}
	}
	c.mu.Unlock()
	return <-w.done
}

// alone redeems req in a transaction of its own, in a slot.
func (c *combiner) alone(ctx context.Context, t *ticket, req *promo.RedeemRequest) (promo.RedeemOutcome, error) {
	release, err := c.gate.acquire(ctx, t.deadline())
	t.leave()
	if errors.Is(err, errSlotWait) {
		return promo.RedeemOutcome{}, t.refuse()
	}
	if err != nil {
		return promo.RedeemOutcome{}, err
	}
	defer release()
	return c.store.Redeem(ctx, *req)
}

// next hands code to its queued waiters after a transaction of it ended:
// a goroutine of their own takes a slot and runs the first max of them as
// one batch (the request that just finished is answered at once); none
// waiting: the code is idle.
func (c *combiner) next(code string) {
	c.mu.Lock()
	q := c.codes[code]
	if len(q.waiting) == 0 {
		delete(c.codes, code)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go c.run(code)
}

// run takes a slot, then up to max of code's waiters (those still there),
// redeems them together, answers each, and passes the code on.
func (c *combiner) run(code string) {
	var release func()
	for release == nil {
		var err error
		if release, err = c.gate.acquire(context.Background(), time.Now().Add(c.gate.waitBound())); err != nil {
			// Its waiters gave up meanwhile (their bound is the same): go
			// on only for those that came since.
			c.mu.Lock()
			if len(c.codes[code].waiting) == 0 {
				delete(c.codes, code)
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
		}
	}
	defer c.next(code)
	defer release()
	c.mu.Lock()
	q := c.codes[code]
	n := min(len(q.waiting), c.max)
	ws := q.waiting[:n:n]
	q.waiting = append([]*waiter(nil), q.waiting[n:]...)
	for _, w := range ws {
		w.ticket.leave()
	}
	c.mu.Unlock()
	if n == 0 {
		return
	}
	// A store call that panics (a bug) would take the process down from
	// this goroutine: its waiters are answered with the panic as an
	// internal error instead, and the code is passed on (deferred above).
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("combined redemption of %d requests for %q: panic: %v", len(ws), code, p)
			for _, w := range ws {
				select {
				case w.done <- &promo.RedeemResult{Err: err}:
				default: // answered already
				}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ws[0].ctx), batchTimeout)
	defer cancel()
	if len(ws) == 1 {
		out, err := c.store.Redeem(ctx, ws[0].req)
		ws[0].done <- &promo.RedeemResult{Outcome: out, Err: err}
		return
	}
	reqs := make([]promo.RedeemRequest, len(ws))
	for i, w := range ws {
		reqs[i] = w.req
	}
	res, err := c.batch.RedeemBatch(ctx, reqs)
	for i, w := range ws {
		if err != nil {
			w.done <- &promo.RedeemResult{Err: err}
			continue
		}
		w.done <- &res[i]
	}
}
