//go:build integration

package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// TestAdversarialTxStmtsEviction: a transaction binds each cached statement
// once (txStmts) while a cache of two texts evicts and closes the statements
// it bound, during its runs (the cache's preparations run between the
// transactions, on the writer's one connection):
// every run answers with the transaction's own writes, nothing fails, and
// the totals are exact.
func TestAdversarialTxStmtsEviction(t *testing.T) {
	ctx := context.Background()
	var parsed atomic.Int64
	db := sql.OpenDB(parsingConnector{name: filepath.Join(t.TempDir(), "t.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)&_txlock=immediate",
		d: parsing{&parsed}})
	defer db.Close()
	db.SetMaxOpenConns(1) // SQLite's writer pool: the transactions take turns
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (w INTEGER NOT NULL, v INTEGER NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	pool := NewSQLDB(db, nil).Cached(2)
	defer pool.Cache().Close()
	const writers, txs, runs = 1, 80, 30
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for k := range txs {
				tx, err := pool.Begin(ctx)
				if err != nil {
					errs <- fmt.Errorf("begin: %w", err)
					return
				}
				for i := range runs {
					// Three texts through a cache of two.
					if _, err := tx.Exec(ctx, "INSERT INTO t (w, v) VALUES (?, ?)", w, 1); err != nil {
						errs <- fmt.Errorf("insert: %w", err)
						_ = tx.Rollback(ctx)
						return
					}
					// The insert's text stays cached (bound once, run every
					// time); the two queries take turns in the other place,
					// each evicting (closing) the other while it is bound.
					query := "SELECT count(*) FROM t WHERE w = ?"
					if i%2 == 1 {
						query = "SELECT sum(v) FROM t WHERE w = ? AND v > 0"
					}
					var n int
					if err := tx.QueryRow(ctx, query, w).Scan(&n); err != nil || n != k*runs+i+1 {
						errs <- fmt.Errorf("writer %d run %d: %d rows, %v; want %d", w, i, n, err, k*runs+i+1)
						_ = tx.Rollback(ctx)
						return
					}
				}
				if err := tx.Commit(ctx); err != nil {
					errs <- fmt.Errorf("commit: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var total int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&total); err != nil || total != writers*txs*runs {
		t.Errorf("rows %d, %v; want %d", total, err, writers*txs*runs)
	}
	// Parsed: the two queries' texts at every run (each evicts the other, so
	// neither stays prepared: one per run) and as many
	// preparations started for them and thrown away once they got the
	// connection; the insert's text once or twice. Had the insert not run
	// bound (prepared) too, a third as many again.
	if p, n := parsed.Load(), int64(writers*txs*runs); p > 2*n+n/2 {
		t.Errorf("%d texts parsed for %d runs of the insert: it did not run bound to its transaction", p, n)
	}
	outcome := "held"
	if t.Failed() {
		outcome = "FAILED"
	}
	t.Logf("adversarial: transaction-bound statements under eviction [sqlite]: %s: %d transactions of %d runs of 3 texts "+
		"through a cache of 2, %d rows, %d texts parsed", outcome, writers*txs, runs, total, parsed.Load())
}
