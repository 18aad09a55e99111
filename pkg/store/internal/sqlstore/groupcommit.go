package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// RedeemGroup is group commit for a database with one writer (SQLite):
// concurrent redemptions in this process, of any codes, are redeemed in one
// write transaction and so share one commit (one WAL flush) instead of
// queueing for the write lock one commit each.
//
// A redemption that arrives while no group is being written starts one at
// once, alone: a quiet store adds no wait. Those arriving while a group is
// being written gather; when it has committed they (up to max) are the next
// group. A request therefore waits at most for the group in flight before
// its own.
//
// Each member keeps Redeem's exact semantics: it runs Redeem's very
// statements (every limit, live reservations, the user's allowance, the
// idempotency record, the refusal reason) after the members before it in
// the same transaction, which is what it would have seen had they committed
// one after another, since one writer serialises them anyway. A member that
// fails rolls the transaction back and the group is written again with each
// member inside its own SAVEPOINT: the failing one is rolled back to it
// alone and answered with its error, the others stay (redeemGroup). The
// group commits all or nothing, and no member is answered before the commit
// returned: a crash loses only unanswered requests, whole.
//
// Concurrency: safe for concurrent use; one group is written at a time.
type RedeemGroup[T Tx] struct {
	core *Core[T]
	max  int
	db   *sql.DB // the write pool, when it is database/sql's (SQLite)
	// oneWriter: the group's transaction holds the database's only write
	// lock, so no statement of it waits for a lock (see OneWriter).
	oneWriter bool

	stmtMu sync.Mutex
	shared map[string]*sql.Stmt // prepared on db, kept for the next groups

	mu      sync.Mutex
	busy    bool // a group is being written
	pending []*groupMember
	groups  int64 // groups written
	members int64 // their members

	// Statement counts, for tests: statements prepared, savepoints taken
	// and statements run by the groups' transactions.
	prepared, savepoints, statements atomic.Int64
}

type groupMember struct {
	ctx  context.Context
	req  promo.RedeemRequest
	done chan promo.RedeemResult // buffered: a group never blocks on a member
}

// groupTimeout bounds a group's transaction while any member's context
// has not ended.
const groupTimeout = 30 * time.Second

// NewRedeemGroup returns group commit on s for groups of up to max
// redemptions.
func NewRedeemGroup[T Tx](s *Core[T], max int) *RedeemGroup[T] {
	g := &RedeemGroup[T]{core: s, max: max, shared: map[string]*sql.Stmt{}}
	if d, ok := any(s.w).(SQLDB); ok {
		g.db = d.db
	}
	return g
}

// OneWriter says that the group's transaction holds the database's one
// write lock (SQLite's BEGIN IMMEDIATE), so that its statements never wait
// for a lock: they then run without a watcher of the group's context each
// (see groupTx). It returns g.
func (g *RedeemGroup[T]) OneWriter() *RedeemGroup[T] {
	g.oneWriter = true
	return g
}

// Close closes the statements the groups kept prepared (the pool stays
// open).
func (g *RedeemGroup[T]) Close() {
	g.stmtMu.Lock()
	defer g.stmtMu.Unlock()
	for q, st := range g.shared {
		st.Close()
		delete(g.shared, q)
	}
}

func (g *RedeemGroup[T]) sharedStmt(query string) *sql.Stmt {
	g.stmtMu.Lock()
	defer g.stmtMu.Unlock()
	return g.shared[query]
}

func (g *RedeemGroup[T]) countPrepare()   { g.prepared.Add(1) }
func (g *RedeemGroup[T]) countStatement() { g.statements.Add(1) }

// share prepares queries on the write pool (its one connection, free now
// that a group is done) and keeps them for the next groups. database/sql
// prepares such a statement again, by itself, on a new connection should
// the pool replace its connection.
func (g *RedeemGroup[T]) share(ctx context.Context, queries []string) {
	if g.db == nil || len(queries) == 0 {
		return
	}
	g.stmtMu.Lock()
	defer g.stmtMu.Unlock()
	for _, q := range queries {
		if _, ok := g.shared[q]; ok {
			continue
		}
		if st, err := g.db.PrepareContext(ctx, q); err == nil {
			g.prepared.Add(1)
			g.shared[q] = st
		}
	}
}

// Redeem is Core.Redeem, written in a group with the redemptions that are
// concurrent with it.
func (g *RedeemGroup[T]) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	if err := checkRedeemRequest(req); err != nil {
		return promo.RedeemOutcome{}, err
	}
	m := &groupMember{ctx: ctx, req: req, done: make(chan promo.RedeemResult, 1)}
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		g.write([]*groupMember{m})
		r := <-m.done
		return r.Outcome, r.Err
	}
	g.pending = append(g.pending, m)
	g.mu.Unlock()
	select {
	case r := <-m.done:
		return r.Outcome, r.Err
	case <-ctx.Done():
	}
	// Gone before its group started: leave the queue. Once its group has
	// started it is redeemed and answered (its client may no longer
	// listen, as with a single redemption in flight).
	g.mu.Lock()
	for i, o := range g.pending {
		if o == m {
			g.pending = append(g.pending[:i], g.pending[i+1:]...)
			g.mu.Unlock()
			return promo.RedeemOutcome{}, ctx.Err()
		}
	}
	g.mu.Unlock()
	r := <-m.done
	return r.Outcome, r.Err
}

// Stats reports the groups written so far, their members, the redemptions
// waiting for a group now, and whether a group is being written.
func (g *RedeemGroup[T]) Stats() (groups, members int64, pending int, busy bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.groups, g.members, len(g.pending), g.busy
}

// Statements reports how many statements the groups prepared, how many
// savepoints they took and how many statements they ran, so far.
func (g *RedeemGroup[T]) Statements() (prepared, savepoints, statements int64) {
	return g.prepared.Load(), g.savepoints.Load(), g.statements.Load()
}

// next writes the next group of pending members, or marks the store idle.
func (g *RedeemGroup[T]) next() {
	g.mu.Lock()
	if len(g.pending) == 0 {
		g.busy = false
		g.mu.Unlock()
		return
	}
	n := min(len(g.pending), g.max)
	ms := g.pending[:n:n]
	g.pending = append([]*groupMember(nil), g.pending[n:]...)
	g.mu.Unlock()
	g.write(ms)
}

// write writes ms as one group, answers each member after the commit, then
// hands the writer to the next group (in a goroutine of its own: the
// members just answered return at once).
func (g *RedeemGroup[T]) write(ms []*groupMember) {
	// The group's context ends when every member's has (nobody waits for
	// its answers any more: a lone redemption ends with its caller's
	// context, as Core.Redeem does), or at groupTimeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ms[0].ctx), groupTimeout)
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
	res := g.core.redeemGroup(ctx, g, ms)
	for _, stop := range stops {
		stop()
	}
	cancel()
	g.mu.Lock()
	g.groups++
	g.members += int64(len(ms))
	more := len(g.pending) > 0
	if !more {
		g.busy = false
	}
	g.mu.Unlock()
	if more {
		go g.next()
	}
	for i, m := range ms {
		if res[i].Err != nil && m.ctx.Err() != nil && errors.Is(res[i].Err, context.Canceled) {
			// The group stopped because every member's context ended: each
			// member is answered with its own context's end (its deadline,
			// which callers report as the database not answering in time),
			// not with the group's cancellation.
			res[i].Err = fmt.Errorf("%v: %w", res[i].Err, m.ctx.Err())
		}
		m.done <- res[i]
	}
}

// redeemGroup is the group's transaction: each member's Redeem, one after
// another, then one commit. A member normally runs without a savepoint: a
// member that fails (an error, not a refusal) having changed nothing is
// answered with its error and the group goes on; one that fails having
// written (or perhaps written) rolls the whole transaction back, and the group is written again with each member in a savepoint of
// its own, so that the failing one is rolled back alone and the others
// commit (the second run gives the others the answers the first gave: the
// same requests, in the same order, on the same committed state). An error
// of the transaction itself (begin, a savepoint, the commit) is every
// member's answer: none of them committed.
func (s *Core[T]) redeemGroup(ctx context.Context, g *RedeemGroup[T], ms []*groupMember) []promo.RedeemResult {
	res, err := s.groupTx(ctx, g, ms, false)
	if errors.Is(err, errMemberFailed) {
		res, err = s.groupTx(ctx, g, ms, true)
	}
	if err != nil {
		err = fmt.Errorf("redeem a group of %d: %w", len(ms), err)
		for i := range res {
			res[i] = promo.RedeemResult{Err: err}
		}
	}
	return res
}

// errMemberFailed stops a group written without savepoints at its first
// failing member.
var errMemberFailed = errors.New("a member failed")

// groupTx writes ms in one transaction, each member in a savepoint of its
// own if savepoints, else stopping with errMemberFailed at the first member
// that fails.
//
// With OneWriter the members' statements run on the group's context
// without its end (ctx.Done is nil): the driver then watches no context per
// statement (a goroutine each), and none of them can wait for a lock. The
// transaction still ends with ctx: beginning it (the wait for the write
// lock) is cancelled with ctx, and database/sql rolls it back when ctx
// ends, after which the next statement fails.
func (s *Core[T]) groupTx(ctx context.Context, g *RedeemGroup[T], ms []*groupMember, savepoints bool) ([]promo.RedeemResult, error) {
	res := make([]promo.RedeemResult, len(ms))
	sctx := ctx
	if g.oneWriter {
		sctx = context.WithoutCancel(ctx)
	}
	var missing []string
	err := s.inTx(ctx, func(tx T) error {
		var (
			q  Querier = tx
			gq *groupQuerier
		)
		if t, ok := any(tx).(*SQLTx); ok {
			gq = &groupQuerier{g: g, tx: t.Tx, stmts: map[string]*sql.Stmt{}}
			defer func() { missing = gq.missing }()
			q = sqlQuerier{gq}
		}
		x := s.on(q)
		for i, m := range ms {
			if savepoints {
				if _, err := q.Exec(sctx, "SAVEPOINT member"); err != nil {
					return fmt.Errorf("savepoint: %w", err)
				}
				g.savepoints.Add(1)
			}
			if gq != nil {
				gq.wrote = false
			}
			out, err := x.redeem(sctx, m.req)
			if err != nil && !savepoints {
				if gq == nil || gq.wrote {
					return errMemberFailed
				}
				// It failed having changed nothing (an idempotency
				// conflict): nothing to undo, the group goes on.
				res[i] = promo.RedeemResult{Err: wrap(err, "redeem %q for %q", m.req.Code, m.req.UserID)}
				continue
			}
			if err != nil {
				if _, rerr := q.Exec(sctx, "ROLLBACK TO SAVEPOINT member"); rerr != nil {
					return fmt.Errorf("roll back to savepoint after %v: %w", err, rerr)
				}
			}
			if savepoints {
				if _, err := q.Exec(sctx, "RELEASE SAVEPOINT member"); err != nil {
					return fmt.Errorf("release savepoint: %w", err)
				}
			}
			res[i] = promo.RedeemResult{Outcome: out,
				Err: wrap(err, "redeem %q for %q", m.req.Code, m.req.UserID)}
		}
		return nil
	})
	g.share(ctx, missing)
	return res, err
}

// groupQuerier runs a group's statements on its database/sql transaction.
// Each statement text is prepared once for the writer connection and kept
// (RedeemGroup.shared); a text met for the first time is prepared on the
// transaction for this group, then on the pool once the group is done
// (preparing the same few statements for every member was most of a
// member's cost on SQLite; for every group, still a twentieth of it).
type groupQuerier struct {
	g       groupStmts
	tx      *sql.Tx
	stmts   map[string]*sql.Stmt
	missing []string
	// wrote: a statement since it was last cleared may have changed the
	// database: an Exec that changed rows or failed, or any query but a
	// SELECT (an UPDATE or INSERT ... RETURNING).
	wrote bool
}

// groupStmts is the statements a RedeemGroup keeps.
type groupStmts interface {
	sharedStmt(query string) *sql.Stmt
	countPrepare()
	countStatement()
}

func (q *groupQuerier) stmt(ctx context.Context, query string) *sql.Stmt {
	q.g.countStatement()
	if s, ok := q.stmts[query]; ok {
		return s
	}
	var s *sql.Stmt
	if p := q.g.sharedStmt(query); p != nil {
		s = q.tx.StmtContext(ctx, p) // prepared on this connection already
	} else {
		var err error
		if s, err = q.tx.PrepareContext(ctx, query); err != nil {
			return nil // run unprepared: the statement reports the error
		}
		q.g.countPrepare()
		q.missing = append(q.missing, query)
	}
	q.stmts[query] = s
	return s
}

func (q *groupQuerier) ExecContext(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	if s := q.stmt(ctx, query); s != nil {
		res, err = s.ExecContext(ctx, args...)
	} else {
		res, err = q.tx.ExecContext(ctx, query, args...)
	}
	if err != nil {
		q.wrote = true
	} else if n, nerr := res.RowsAffected(); n != 0 || nerr != nil {
		q.wrote = true
	}
	return res, err
}

func (q *groupQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q.query(query)
	if s := q.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return q.tx.QueryContext(ctx, query, args...)
}

func (q *groupQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	q.query(query)
	if s := q.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return q.tx.QueryRowContext(ctx, query, args...)
}

// query notes a query that may write: anything but a SELECT.
func (q *groupQuerier) query(query string) {
	if !q.wrote {
		head := strings.TrimLeft(query, " \t\r\n(")
		q.wrote = len(head) < 6 || !strings.EqualFold(head[:6], "SELECT")
	}
}
