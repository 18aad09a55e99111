package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// RedeemGroup is group commit: the concurrent redemptions of this process,
// of any codes, share one commit. A redemption arriving while no group is
// written starts one at once (a quiet store adds no wait); those arriving
// meanwhile form the next group (at most max). docs/store.md has the rest
// ("Group commit on SQLite", "... on PostgreSQL").
//
// NewRedeemGroup (one writer: SQLite) writes a group in one transaction,
// each member with Redeem's statements after the members before it, as one
// writer would have serialised them anyway; no member is answered before
// the commit. Safe for concurrent use.
type RedeemGroup[T Tx] struct {
	max     int
	flights int
	run     func(context.Context, []*groupMember) ([]promo.RedeemResult, waitFunc)
	// oneWriter: see OneWriter; once: NewRedeemGroupOnce's.
	oneWriter, once bool
	texts           *batchTexts // OneWriter's rowBatch statements

	mu       sync.Mutex
	inflight int // groups being written
	pending  []*groupMember
	// busy counts the rows (rowsOf) of the groups in flight (flights > 1
	// only): a member that shares one with them waits for a later group.
	busy    map[string]int
	groups  int64 // groups written
	members int64 // their members

	fallbacks atomic.Int64 // groups redeemed one by one after their statement failed
	// For tests: savepoints taken and statements run by the groups'
	// members; inserts: rowBatch's statements.
	savepoints, statements, inserts atomic.Int64
}

type groupMember struct {
	ctx  context.Context
	req  promo.RedeemRequest
	done chan promo.RedeemResult // buffered: a group never blocks on a member
	rows []string                // rowsOf's answer, built once (flights > 1)
	ev   *eventParts             // cutEvent's (one writer)
}

// groupTimeout bounds a group's transaction.
const groupTimeout = 30 * time.Second

// NewRedeemGroup returns group commit on s, max members a group.
func NewRedeemGroup[T Tx](s *Core[T], max int) *RedeemGroup[T] {
	g := &RedeemGroup[T]{max: max, flights: 1}
	g.run = func(ctx context.Context, ms []*groupMember) ([]promo.RedeemResult, waitFunc) {
		return s.redeemGroup(ctx, g, ms)
	}
	if s == nil { // a test's group without a database
		return g
	}
	if t := newBatchTexts(s.d.InsertRedemption, s.d.InsertEvent); t.redemptions != nil && t.events != nil {
		g.texts = t
	}
	return g
}

// OneWriter says that the group's transaction holds the database's one
// write lock (see groupTx). It returns g.
func (g *RedeemGroup[T]) OneWriter() *RedeemGroup[T] {
	g.oneWriter = true
	return g
}

// RedeemVia is s.Redeem through g, unless g is nil or req has shopper
// fields, which a one-statement group cannot redeem.
func RedeemVia[T Tx](ctx context.Context, g *RedeemGroup[T], s *Core[T], req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	if g == nil || (g.once && req.Shopper != nil) {
		return s.Redeem(ctx, req)
	}
	return g.Redeem(ctx, req)
}

// Redeem is Core.Redeem, in a group with concurrent redemptions.
func (g *RedeemGroup[T]) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	if err := req.Validate(); err != nil {
		return promo.RedeemOutcome{}, err
	}
	m := &groupMember{ctx: ctx, req: req, done: make(chan promo.RedeemResult, 1)}
	if g.oneWriter {
		m.ev = cutEvent(req)
	}
	g.mu.Lock()
	if g.inflight < g.flights && !g.shares(m) {
		g.inflight++
		g.hold([]*groupMember{m}, 1)
		g.mu.Unlock()
		g.write([]*groupMember{m}, true)
	} else {
		g.pending = append(g.pending, m)
		g.mu.Unlock()
		select {
		case r := <-m.done:
			return r.Outcome, r.Err
		case <-ctx.Done():
		}
		// Gone before its group started: leave the queue. Once it has
		// started, it is redeemed and answered, as a single redemption is.
		g.mu.Lock()
		i := slices.Index(g.pending, m)
		if i >= 0 {
			g.pending = slices.Delete(g.pending, i, i+1)
		}
		g.mu.Unlock()
		if i >= 0 {
			return promo.RedeemOutcome{}, ctx.Err()
		}
	}
	r := <-m.done
	return r.Outcome, r.Err
}

// GroupStats is what a RedeemGroup did (Fallbacks: groups redeemed one by
// one after their statement failed; Inserts: rowBatch's statements) and
// holds now (Pending, Inflight).
type GroupStats struct {
	Groups, Members, Savepoints, Statements, Inserts, Fallbacks int64
	Pending, Inflight                                           int
}

// Stats reports g's GroupStats.
func (g *RedeemGroup[T]) Stats() GroupStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return GroupStats{Groups: g.groups, Members: g.members, Savepoints: g.savepoints.Load(),
		Statements: g.statements.Load(), Inserts: g.inserts.Load(), Fallbacks: g.fallbacks.Load(), Pending: len(g.pending), Inflight: g.inflight}
}

// take ends a flight and shares the pending members out evenly among the
// free flights (at most max a group): the groups to write. mu held.
func (g *RedeemGroup[T]) take() [][]*groupMember {
	g.inflight--
	var out [][]*groupMember
	for len(g.pending) > 0 && g.inflight < g.flights {
		free := g.flights - g.inflight
		n := min(g.max, (len(g.pending)+free-1)/free)
		// Members sharing a row with a group in flight (never with one
		// flight) stay pending, in their order, for a later group.
		var group, rest []*groupMember
		for _, m := range g.pending {
			if len(group) < n && !g.shares(m) {
				group = append(group, m)
			} else {
				rest = append(rest, m)
			}
		}
		if len(group) == 0 {
			break
		}
		g.hold(group, 1)
		out = append(out, group)
		g.pending = rest
		g.inflight++
	}
	if len(g.pending) == 0 {
		g.pending = nil
	}
	return out
}

// rowsOf are the rows a member locks that another group could lock in
// another order (code, the user's allowances, key): two groups in flight
// that share none cannot deadlock.
func rowsOf(m *groupMember) []string {
	if m.rows == nil {
		m.rows = []string{"c\x00" + m.req.Code, "u\x00" + m.req.UserID}
		if m.req.IdempotencyKey != "" {
			m.rows = append(m.rows, "k\x00"+m.req.IdempotencyKey)
		}
	}
	return m.rows
}

// shares says whether m shares a row with a group in flight. mu held.
func (g *RedeemGroup[T]) shares(m *groupMember) bool {
	if g.flights == 1 {
		return false
	}
	for _, r := range rowsOf(m) {
		if g.busy[r] > 0 {
			return true
		}
	}
	return false
}

// hold counts ms's rows in flight (d 1) or no longer (d -1). mu held.
func (g *RedeemGroup[T]) hold(ms []*groupMember, d int) {
	if g.flights == 1 {
		return
	}
	if g.busy == nil {
		g.busy = map[string]int{}
	}
	for _, m := range ms {
		for _, r := range rowsOf(m) {
			if g.busy[r] += d; g.busy[r] <= 0 {
				delete(g.busy, r)
			}
		}
	}
}

// write writes ms, hands its flight to the next groups and answers ms once
// their commit is durable (wait: its flush, when the commit left it to the
// group). On a member's goroutine (caller) the next groups get goroutines
// of their own; on one of those it writes the first next group itself and
// answers from another goroutine: answering wakes a handler per member, and
// a new writer would queue behind them for a core while SQLite's one writer
// sits idle. So does the flush: the next group is written while it runs.
func (g *RedeemGroup[T]) write(ms []*groupMember, caller bool) {
	for {
		res, wait := g.writeOne(ms)
		g.mu.Lock()
		g.groups++
		g.members += int64(len(ms))
		g.hold(ms, -1)
		next := g.take()
		g.mu.Unlock()
		if caller || len(next) == 0 {
			for _, more := range next {
				go g.write(more, false)
			}
			answer(ms, res, wait)
			return
		}
		for _, more := range next[1:] {
			go g.write(more, false)
		}
		go answer(ms, res, wait)
		ms = next[0]
	}
}

// writeOne writes ms as one group and returns each member's result, and
// the wait for its commit's flush (nil: none).
func (g *RedeemGroup[T]) writeOne(ms []*groupMember) (res []promo.RedeemResult, wait waitFunc) {
	// The group's context ends when every member's has, or at groupTimeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ms[0].ctx), groupTimeout)
	defer cancel()
	var left atomic.Int64
	left.Store(int64(len(ms)))
	stops := make([]func() bool, len(ms))
	for i, m := range ms {
		stops[i] = context.AfterFunc(m.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	// A panic (a bug) is every member's error: the flight must be passed on,
	// or every later redemption would wait behind a group that never ends.
	defer func() {
		for _, stop := range stops {
			stop()
		}
		if p := recover(); p != nil {
			res, wait = failAll(len(ms), fmt.Errorf("redeem a group of %d: panic: %v", len(ms), p)), nil
		}
	}()
	return g.run(ctx, ms)
}

// waitFunc waits for a commit's flush to disk (Syncer).
type waitFunc func(context.Context) error

// answer hands each member its result, once the group's commit is durable
// (wait); a failed flush is every member's error: their redemptions may or
// may not have survived.
func answer(ms []*groupMember, res []promo.RedeemResult, wait waitFunc) {
	if wait != nil {
		if err := wait(context.Background()); err != nil {
			res = failAll(len(ms), fmt.Errorf("redeem a group of %d: %w", len(ms), err))
		}
	}
	for i, m := range ms {
		if res[i].Err != nil && m.ctx.Err() != nil && errors.Is(res[i].Err, context.Canceled) {
			// Each is answered with its own context's end, not the group's.
			res[i].Err = fmt.Errorf("%v: %w", res[i].Err, m.ctx.Err())
		}
		m.done <- res[i]
	}
}

// redeemGroup is the group's transaction: each member's redeem, then one
// commit. A member failing with a domain error (a key's conflict) having
// written nothing gets its error; one that (perhaps) wrote, or (OneWriter)
// met a database error, rolls the transaction back, and the group is
// written again with a savepoint per member, so that it is rolled back
// alone (the others answer as in the first run: same requests, same order,
// same state). The transaction's own error is every member's, and so is a
// member's error after which its savepoint is gone (SQLite rolled the
// whole transaction back).
func (s *Core[T]) redeemGroup(ctx context.Context, g *RedeemGroup[T], ms []*groupMember) ([]promo.RedeemResult, waitFunc) {
	res, wait, err := s.groupTx(ctx, g, ms, false)
	if errors.Is(err, errMemberFailed) {
		res, wait, err = s.groupTx(ctx, g, ms, true)
	}
	if err != nil {
		return failAll(len(ms), fmt.Errorf("redeem a group of %d: %w", len(ms), err)), nil
	}
	return res, wait
}

// failAll answers n members with err.
func failAll(n int, err error) []promo.RedeemResult {
	res := make([]promo.RedeemResult, n)
	for i := range res {
		res[i].Err = err
	}
	return res
}

// errMemberFailed stops a group written without savepoints at its first
// member that fails having written.
var errMemberFailed = errors.New("a member failed")

// groupTx writes ms in one transaction, with a savepoint per member if
// savepoints, else stopping with errMemberFailed at a member that failed
// having written. With OneWriter the statements run without ctx's end, so
// the driver watches no context per statement (a goroutine each): none can
// wait for a lock. The wait for the write lock, and the transaction, still
// end with ctx.
func (s *Core[T]) groupTx(ctx context.Context, g *RedeemGroup[T], ms []*groupMember, savepoints bool) ([]promo.RedeemResult, waitFunc, error) {
	res := make([]promo.RedeemResult, len(ms))
	sctx := ctx
	if g.oneWriter {
		sctx = context.WithoutCancel(ctx)
	}
	wait, err := s.inTxDeferred(ctx, func(tx T) error {
		mq := &memberQuerier{q: tx, n: &g.statements}
		x := s.on(mq)
		var b *rowBatch
		if g.oneWriter && !savepoints && g.texts != nil {
			b = &rowBatch{q: tx, texts: g.texts, n: &g.inserts}
		}
		for i, m := range ms {
			if savepoints {
				if _, err := tx.Exec(sctx, "SAVEPOINT member"); err != nil {
					return fmt.Errorf("savepoint: %w", err)
				}
				g.savepoints.Add(1)
			}
			mq.wrote = false
			out, err := x.redeem(sctx, m.req, m.ev, b)
			switch {
			case errors.Is(err, errMemberFailed): // b's rows failed
				return err
			case err != nil && !savepoints && (mq.wrote || g.oneWriter && promo.Code(err) == promo.EInternal):
				// On SQLite a statement's error can roll the whole
				// transaction back (SQLITE_IOERR, _FULL, _NOMEM, even for a
				// SELECT, which writes nothing): the next member would run
				// outside it, each statement committed on its own. Only the
				// savepoint pass can tell (below); a domain error (a key's
				// conflict) is no statement's and stays the member's.
				return errMemberFailed
			case err != nil && savepoints:
				if _, rerr := tx.Exec(sctx, "ROLLBACK TO SAVEPOINT member"); rerr != nil {
					// The savepoint is gone: SQLite rolled the transaction
					// back on err, the members before too. Every member
					// gets err; nothing more runs, nothing commits.
					return savepointGone(redeemErr(err, m.req), rerr)
				}
			}
			if savepoints {
				if _, err := tx.Exec(sctx, "RELEASE SAVEPOINT member"); err != nil {
					return fmt.Errorf("release savepoint: %w", err)
				}
			}
			res[i] = promo.RedeemResult{Outcome: out, Err: redeemErr(err, m.req)}
		}
		return b.flush(sctx)
	})
	return res, wait, err
}

// savepointGone is a group's error when the rollback to a failed member's
// savepoint failed (rerr) after its error err: err itself when it is the
// database's (so that SQLITE_IOERR, SQLITE_FULL answer as they would alone),
// else rerr.
func savepointGone(err, rerr error) error {
	if promo.Code(err) == promo.EInternal {
		return fmt.Errorf("%w (roll back to its savepoint: %v)", err, rerr)
	}
	return fmt.Errorf("roll back to savepoint after %v: %w", err, rerr)
}

// memberQuerier runs a member's statements, counting them, and sets wrote
// when one may have written: an Exec that changed rows or failed, or a
// query but a SELECT (... RETURNING).
type memberQuerier struct {
	q     Querier
	n     *atomic.Int64
	wrote bool
}

func (q *memberQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	q.n.Add(1)
	n, err := q.q.Exec(ctx, query, args...)
	if err != nil || n != 0 {
		q.wrote = true
	}
	return n, err
}

func (q *memberQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	q.query(query)
	return q.q.Query(ctx, query, args...)
}

func (q *memberQuerier) QueryRow(ctx context.Context, query string, args ...any) Row {
	q.query(query)
	return q.q.QueryRow(ctx, query, args...)
}

func (q *memberQuerier) query(query string) {
	q.n.Add(1)
	if !q.wrote {
		head := strings.TrimLeft(query, " \t\r\n(")
		q.wrote = len(head) < 6 || !strings.EqualFold(head[:6], "SELECT")
	}
}

// rowBatch is a group's audit rows and events (OneWriter, no savepoints),
// written by flush in a few multi-row inserts (power-of-two sizes: a
// handful of statement texts, prepared once) instead of two statements a
// member. A flush that fails is errMemberFailed: the group is written again
// member by member, each with a savepoint and its own inserts, so that only
// the member whose row fails is rolled back (TestGroupCommitFailingMember).
// A nil *rowBatch holds nothing.
type rowBatch struct {
	q        Querier // the transaction: a flush is not a member's write
	texts    *batchTexts
	n        *atomic.Int64 // statements run
	red, evs []any         // InsertRedemption's and InsertEvent's arguments
	rows     int
}

// batch adds r's audit row and its event ev to b.
func (x stmts[T]) batch(b *rowBatch, r promo.Redemption, ev promo.OutboxEvent) {
	b.red = x.redemptionArgs(b.red, r)
	b.evs = append(b.evs, x.d.VarChar(ev.Stream), ev.Key, string(ev.Payload), x.d.Time(time.Now()))
	b.rows++
}

// flush writes b's rows, the audit rows then their events, each in the
// order added, and empties b.
func (b *rowBatch) flush(ctx context.Context) error {
	if b == nil || b.rows == 0 {
		return nil
	}
	for _, t := range []struct {
		texts []string
		args  []any
	}{{b.texts.redemptions, b.red}, {b.texts.events, b.evs}} {
		cols := len(t.args) / b.rows
		for left := b.rows; left > 0; {
			k := bits.Len(uint(min(left, 1<<(len(t.texts)-1)))) - 1 // 2^k rows
			b.n.Add(1)
			if _, err := b.q.Exec(ctx, t.texts[k], t.args[:cols<<k]...); err != nil {
				return fmt.Errorf("%w: insert %d rows: %v", errMemberFailed, 1<<k, err)
			}
			t.args, left = t.args[cols<<k:], left-1<<k
		}
	}
	b.red, b.evs, b.rows = b.red[:0], b.evs[:0], 0
	return nil
}

// batchTexts are rowBatch's statements: texts[k] inserts 2^k rows.
type batchTexts struct{ redemptions, events []string }

// batchMax is the most rows (2^batchMax) a rowBatch statement inserts: 64
// audit rows are 1,088 parameters, SQLite allows 32,766.
const batchMax = 6

// newBatchTexts makes the multi-row forms of the one-row INSERTs redemption
// and event (SQLite's, OneWriter's only dialect). Only a VALUES tuple that
// binds each column once, in order, (?1, ?2, ..., ?n), has one: any other
// (an expression, a literal) is left to the member's own insert (nil).
func newBatchTexts(redemption, event string) *batchTexts {
	multi := func(one string) []string {
		i := strings.LastIndex(one, "VALUES (")
		cols := strings.Count(one[max(i, 0):], "?")
		var want strings.Builder
		for c := 1; c <= cols; c++ {
			fmt.Fprintf(&want, ", ?%d", c)
		}
		if i < 0 || cols == 0 || one[i:] != "VALUES ("+want.String()[2:]+")" {
			return nil
		}
		row := "(" + strings.Repeat("?, ", cols-1) + "?)"
		out := make([]string, batchMax+1)
		for k := range out {
			out[k] = one[:i] + "VALUES " + strings.Repeat(row+", ", 1<<k-1) + row
		}
		return out
	}
	return &batchTexts{multi(redemption), multi(event)}
}
