package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// SQLDB is the database/sql executor: a pool whose transactions begin with
// Opts (SQLite's write pool takes BEGIN IMMEDIATE from its DSN).
type SQLDB struct {
	sqlQuerier // its cache nil: every statement is prepared where it runs
	db         *sql.DB
	opts       *sql.TxOptions
	// sync, if set, makes what db commits durable (Durable).
	sync *Syncer
}

// NewSQLDB returns the executor of db.
func NewSQLDB(db *sql.DB, opts *sql.TxOptions) SQLDB {
	return SQLDB{sqlQuerier: sqlQuerier{q: db}, db: db, opts: opts}
}

// Ping checks that the pool reaches the database.
func (d SQLDB) Ping(ctx context.Context) error { return d.db.PingContext(ctx) }

// Cached is d with a StmtCache of size texts.
func (d SQLDB) Cached(size int) SQLDB {
	d.cache = NewStmtCache(d.db, size)
	return d
}

// Cache is d's statement cache (nil: none).
func (d SQLDB) Cache() *StmtCache { return d.cache }

// Durable is d on a pool whose commits are not flushed (SQLite's writer at
// synchronous=NORMAL): every commit, and every statement run on the pool
// outside a transaction, returns once sync has flushed it; a group commit
// (CommitDeferred) waits for its flush itself.
func (d SQLDB) Durable(sync *Syncer) SQLDB {
	d.sync = sync
	return d
}

// Begin begins a transaction.
func (d SQLDB) Begin(ctx context.Context) (*SQLTx, error) {
	tx, err := d.db.BeginTx(ctx, d.opts)
	if err != nil {
		return nil, err
	}
	return &SQLTx{sqlQuerier: sqlQuerier{q: tx, tx: tx, cache: d.cache, txStmts: map[*sql.Stmt]*sql.Stmt{}}, Tx: tx,
		sync: d.sync}, nil
}

// Exec runs a statement on the pool (made durable: Durable).
func (d SQLDB) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	n, err := d.sqlQuerier.Exec(ctx, query, args...)
	if err == nil && d.sync != nil {
		err = d.sync.Wait(context.WithoutCancel(ctx))
	}
	return n, err
}

// Query runs a statement on the pool; with Durable, the rows' end (Next
// false) waits for its flush, and Err reports a failed one.
func (d SQLDB) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	rows, err := d.sqlQuerier.Query(ctx, query, args...)
	if err != nil || d.sync == nil {
		return rows, err
	}
	return &durableRows{Rows: rows, ctx: ctx, sync: d.sync}, nil
}

// QueryRow runs a statement on the pool; with Durable, Scan waits for its
// flush.
func (d SQLDB) QueryRow(ctx context.Context, query string, args ...any) Row {
	row := d.sqlQuerier.QueryRow(ctx, query, args...)
	if d.sync == nil {
		return row
	}
	return durableRow{row: row, ctx: ctx, sync: d.sync}
}

// durableRow is a pool's row whose statement (committed when Scan returns)
// is flushed before Scan returns.
type durableRow struct {
	row  Row
	ctx  context.Context
	sync *Syncer
}

func (r durableRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if werr := r.sync.Wait(context.WithoutCancel(r.ctx)); err == nil {
		err = werr
	}
	return err
}

// durableRows are a pool's rows whose statement (committed once they are
// read or closed) is flushed when they end.
type durableRows struct {
	Rows
	ctx    context.Context
	sync   *Syncer
	waited bool
	err    error
}

func (r *durableRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.end()
	return false
}

func (r *durableRows) end() {
	if !r.waited {
		r.waited = true
		r.Rows.Close()
		r.err = r.sync.Wait(context.WithoutCancel(r.ctx))
	}
}

func (r *durableRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

func (r *durableRows) Close() { r.end() }

// SQLTx is a database/sql transaction; bulk paths use Tx directly.
type SQLTx struct {
	sqlQuerier
	Tx   *sql.Tx
	sync *Syncer // Durable's
}

// Commit commits the transaction, and returns once it is durable (Durable).
func (t *SQLTx) Commit(ctx context.Context) error {
	wait, err := t.CommitDeferred(ctx)
	if err != nil {
		return err
	}
	return wait(context.WithoutCancel(ctx))
}

// CommitDeferred commits the transaction and returns the wait for its
// flush (Durable; else nothing to wait for): what the commit wrote must not
// be acknowledged before wait returns nil.
func (t *SQLTx) CommitDeferred(context.Context) (wait func(context.Context) error, err error) {
	if err := t.Tx.Commit(); err != nil {
		return nil, err
	}
	if t.sync == nil {
		return func(context.Context) error { return nil }, nil
	}
	ticket := t.sync.Ticket()
	return func(ctx context.Context) error { return t.sync.WaitFor(ctx, ticket) }, nil
}

// Rollback rolls it back (a no-op after Commit).
func (t *SQLTx) Rollback(context.Context) error { return t.Tx.Rollback() }

// sqlQuerier adapts *sql.DB and *sql.Tx to Querier, running the statements
// its cache has prepared as prepared statements.
type sqlQuerier struct {
	q     runner
	tx    *sql.Tx    // set when q is a transaction
	cache *StmtCache // nil: none
	// txStmts are the cache's statements bound to tx, each once: a group
	// commit runs the same few a hundred times in one transaction.
	txStmts map[*sql.Stmt]*sql.Stmt
}

type runner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// stmtRunner runs its prepared statement whatever the text.
type stmtRunner struct{ *sql.Stmt }

func (s stmtRunner) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return s.Stmt.ExecContext(ctx, args...)
}
func (s stmtRunner) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return s.Stmt.QueryContext(ctx, args...)
}
func (s stmtRunner) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return s.Stmt.QueryRowContext(ctx, args...)
}

// on is what runs query: its prepared statement when the cache has one (on
// the transaction's connection for a transaction), else q.
func (q sqlQuerier) on(ctx context.Context, query string) runner {
	st := q.cache.get(query)
	switch {
	case st == nil:
		return q.q
	case q.tx != nil:
		ts := q.txStmts[st]
		if ts == nil {
			ts = q.tx.StmtContext(ctx, st)
			q.txStmts[st] = ts
		}
		st = ts
	}
	return stmtRunner{st}
}

func (q sqlQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.on(ctx, query).ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	rows, err := q.on(ctx, query).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q sqlQuerier) QueryRow(ctx context.Context, query string, args ...any) Row {
	return q.on(ctx, query).QueryRowContext(ctx, query, args...)
}

// StmtCache keeps the statement texts a pool runs prepared across
// transactions, so that a statement is parsed once per connection, not at
// every run (docs/store.md, SQLite). A text runs as text the first time and
// is prepared on the pool in the background: the run that meets it may hold
// the pool's only connection (SQLite's writer), so preparing it there would
// wait for itself. A text that failed to prepare runs as text and is tried
// again after stmtRetry. At most size texts are kept; the least recently run
// is closed (database/sql closes it once no transaction uses it).
//
// Concurrency: safe for concurrent use. Close ends the preparations under
// way and waits for them, so that none takes a connection after the store
// that owns the pool closed.
type StmtCache struct {
	db      *sql.DB
	ctx     context.Context // ended by Close
	close   context.CancelFunc
	running sync.WaitGroup // preparations
	mu      sync.Mutex
	// texts holds a text's statement once prepared, nil while it is being
	// prepared or after it failed (then failed holds when).
	texts  *simplelru.LRU[string, *sql.Stmt]
	failed map[string]time.Time
}

// stmtRetry is how long a text that failed to prepare runs unprepared
// before it is prepared again.
const stmtRetry = 10 * time.Second

// NewStmtCache keeps up to size statement texts of db prepared.
func NewStmtCache(db *sql.DB, size int) *StmtCache {
	texts, err := simplelru.NewLRU[string, *sql.Stmt](size, func(_ string, st *sql.Stmt) {
		if st != nil {
			_ = st.Close()
		}
	})
	if err != nil { // size < 1
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &StmtCache{db: db, ctx: ctx, close: cancel, texts: texts, failed: map[string]time.Time{}}
}

// get returns query's prepared statement, or nil (run it as text; a nil
// cache too); the first call for a text starts preparing it.
func (c *StmtCache) get(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	st, ok := c.texts.Get(query)
	if ok || time.Since(c.failed[query]) < stmtRetry || c.ctx.Err() != nil {
		c.mu.Unlock()
		return st
	}
	delete(c.failed, query)
	c.texts.Add(query, nil) // being prepared
	c.running.Add(1)
	c.mu.Unlock()
	go c.prepare(query)
	return nil
}

func (c *StmtCache) prepare(query string) {
	defer c.running.Done()
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	st, err := c.db.PrepareContext(ctx, query)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.texts.Peek(query); !ok || cur != nil {
		// Evicted meanwhile (or, never, prepared twice): not kept.
		if st != nil {
			_ = st.Close()
		}
		return
	}
	if err != nil {
		c.texts.Remove(query)
		if len(c.failed) >= c.texts.Len()+64 {
			clear(c.failed) // texts that failed and were not run again
		}
		c.failed[query] = time.Now()
		return
	}
	c.texts.Add(query, st)
}

// Close ends the preparations under way, waits for them and closes the
// statements kept.
func (c *StmtCache) Close() {
	c.mu.Lock()
	c.close() // under mu: get starts no preparation after it
	c.mu.Unlock()
	c.running.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.texts.Purge()
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }
