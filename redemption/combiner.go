package redemption

import (
	"context"
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

	mu    sync.Mutex
	codes map[string]*codeQueue // codes with a redemption in flight
}

type codeQueue struct{ waiting []*waiter }

type waiter struct {
	ctx  context.Context
	req  promo.RedeemRequest
	done chan promo.RedeemResult // buffered: the batch never blocks on a waiter
}

// batchTimeout bounds a combined transaction that no single request's
// context bounds.
const batchTimeout = 30 * time.Second

// groupCommitter is a store whose Redeem already writes concurrent
// redemptions, of any codes, in one transaction (SQLite's group commit):
// combining them here would only hold a hot code's requests back for a
// group of their own.
type groupCommitter interface{ GroupCommit() bool }

func newCombiner(store Store, max int) *combiner {
	c := &combiner{store: store, max: max, codes: map[string]*codeQueue{}}
	if g, ok := store.(groupCommitter); ok && g.GroupCommit() {
		return c
	}
	if b, ok := store.(batchStore); ok && max > 1 {
		c.batch = b
	}
	return c
}

func (c *combiner) redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	if c.batch == nil {
		return c.store.Redeem(ctx, req)
	}
	c.mu.Lock()
	q, busy := c.codes[req.Code]
	if !busy {
		c.codes[req.Code] = &codeQueue{}
		c.mu.Unlock()
		out, err := c.store.Redeem(ctx, req)
		c.next(req.Code)
		return out, err
	}
	w := &waiter{ctx: ctx, req: req, done: make(chan promo.RedeemResult, 1)}
	q.waiting = append(q.waiting, w)
	c.mu.Unlock()
	select {
	case r := <-w.done:
		return r.Outcome, r.Err
	case <-ctx.Done():
	}
	// Gone before its batch started: leave the queue. Once its batch has
	// started the request is being redeemed and is answered (its client may
	// no longer listen, as with a single redemption in flight).
	c.mu.Lock()
	if q := c.codes[req.Code]; q != nil {
		for i, o := range q.waiting {
			if o == w {
				q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
				c.mu.Unlock()
				return promo.RedeemOutcome{}, ctx.Err()
			}
		}
	}
	c.mu.Unlock()
	r := <-w.done
	return r.Outcome, r.Err
}

// next hands code to its queued waiters after a transaction of it ended:
// the first max of them run as one batch, in a goroutine of their own (the
// request that just finished is answered at once); none: the code is idle.
func (c *combiner) next(code string) {
	c.mu.Lock()
	q := c.codes[code]
	if len(q.waiting) == 0 {
		delete(c.codes, code)
		c.mu.Unlock()
		return
	}
	n := min(len(q.waiting), c.max)
	ws := q.waiting[:n:n]
	q.waiting = append([]*waiter(nil), q.waiting[n:]...)
	c.mu.Unlock()
	go c.run(code, ws)
}

// run redeems ws together, answers each, then passes the code on.
func (c *combiner) run(code string, ws []*waiter) {
	defer c.next(code)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ws[0].ctx), batchTimeout)
	defer cancel()
	if len(ws) == 1 {
		out, err := c.store.Redeem(ctx, ws[0].req)
		ws[0].done <- promo.RedeemResult{Outcome: out, Err: err}
		return
	}
	reqs := make([]promo.RedeemRequest, len(ws))
	for i, w := range ws {
		reqs[i] = w.req
	}
	res, err := c.batch.RedeemBatch(ctx, reqs)
	for i, w := range ws {
		if err != nil {
			w.done <- promo.RedeemResult{Err: err}
			continue
		}
		w.done <- res[i]
	}
}
