package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"modernc.org/sqlite"
)

// parsing is an SQLite driver that counts the statement texts it is given
// to parse: each prepared, and each run as text.
type parsing struct{ n *atomic.Int64 }

func (d parsing) Open(name string) (driver.Conn, error) {
	c, err := (&sqlite.Driver{}).Open(name)
	if err != nil {
		return nil, err
	}
	return parsingConn{c.(sqliteConn), d.n}, nil
}

type sqliteConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
}

type parsingConn struct {
	sqliteConn
	n *atomic.Int64
}

func (c parsingConn) Prepare(query string) (driver.Stmt, error) {
	c.n.Add(1)
	return c.sqliteConn.Prepare(query)
}

func (c parsingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.n.Add(1)
	return c.sqliteConn.PrepareContext(ctx, query)
}

func (c parsingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.n.Add(1)
	return c.sqliteConn.ExecContext(ctx, query, args)
}

func (c parsingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.n.Add(1)
	return c.sqliteConn.QueryContext(ctx, query, args)
}

type parsingConnector struct {
	name string
	d    parsing
}

func (c parsingConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.name) }
func (c parsingConnector) Driver() driver.Driver                        { return c.d }

// A pool with a statement cache parses each statement text about once,
// however many transactions run it, on a pool of one connection (SQLite's
// writer, held by the transaction that first meets a text), and each run
// still sees the transaction's own writes.
func TestStmtCacheParsesOnce(t *testing.T) {
	ctx := context.Background()
	var parsed atomic.Int64
	db := sql.OpenDB(parsingConnector{name: filepath.Join(t.TempDir(), "t.db"), d: parsing{&parsed}})
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (v INTEGER NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	pool := NewSQLDB(db, nil).Cached(16)
	defer pool.Cache().Close()
	parsed.Store(0)
	const runs = 50
	for i := range runs {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := tx.Exec(ctx, "INSERT INTO t (v) VALUES (?)", i); err != nil || n != 1 {
			t.Fatalf("insert: %d rows, %v", n, err)
		}
		var count int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM t WHERE v >= ?", 0).Scan(&count); err != nil {
			t.Fatal(err)
		}
		if count != i+1 {
			t.Fatalf("run %d counts %d rows, want %d", i, count, i+1)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var total int
	if err := pool.QueryRow(ctx, "SELECT sum(v) FROM t").Scan(&total); err != nil || total != runs*(runs-1)/2 {
		t.Fatalf("sum %d, %v; want %d", total, err, runs*(runs-1)/2)
	}
	// Two texts in the transactions, each run as text until its
	// preparation (in the background) got the connection, then prepared
	// once; a few runs of slack.
	if n := parsed.Load(); n > 10 {
		t.Errorf("%d transactions of 2 statements parsed %d statement texts, want about 2", runs, n)
	}
	t.Logf("%d transactions of 2 statements: %d statement texts parsed", runs, parsed.Load())
}

// Closing the cache ends its background preparations and waits for them: a
// preparation left waiting for the pool would take a connection (and, on
// SQLite, open the database file) after the store that owns the pool closed.
func TestStmtCacheCloseWaitsForPreparations(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	pool := NewSQLDB(db, nil).Cached(16)
	tx, err := pool.Begin(ctx) // holds the pool's one connection
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SELECT 1").Scan(new(int)); err != nil { // its preparation waits for the connection
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { pool.Cache().Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for a preparation that waits for the pool")
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "StmtCache).prepare") {
		t.Errorf("a preparation runs on after Close:\n%s", stacks)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
