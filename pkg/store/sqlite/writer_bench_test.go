package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/promocodes/promocodes/pkg/store/sqlite"
)

// BenchmarkWriterCommit times small write transactions on the store's
// writer settings (sqlite.WriterParams) over a file of 300,000 codes and
// 100,000 keyed rows: each transaction updates 16 random codes and inserts
// 16 rows into a WITHOUT ROWID table (as a redemption group does), with keys
// drawn at random (as redemption ids and idempotency keys are) or ascending.
//
// It reproduces a fixed cost SQLite adds to the commit of a database under
// 1 GiB, which docs/store.md ("SQLite") describes. See it in the profile:
//
//	go test -run '^$' -bench WriterCommit -cpuprofile /tmp/w.prof ./pkg/store/sqlite
//	go tool pprof -top -tagfocus keys=random-keys /tmp/w.prof | grep -e pcache1TruncateUnsafe -e Showing
//
// With random keys a page split renumbers pages through the lock-byte
// page's number, and pcache1TruncateUnsafe then scans the writer's whole
// page cache at the commit; with ascending keys it does not run.
func BenchmarkWriterCommit(b *testing.B) {
	for _, ascending := range []bool{false, true} {
		name := map[bool]string{false: "random-keys", true: "ascending-keys"}[ascending]
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			path := filepath.Join(b.TempDir(), "writer.db")
			db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&"+sqlite.WriterParams)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			var seq uint64
			key := func() string {
				if ascending {
					seq++
					return fmt.Sprintf("%016x", seq)
				}
				return fmt.Sprintf("%016x", rand.Uint64())
			}
			const codes = 300_000
			for _, q := range []string{
				`CREATE TABLE codes (code TEXT NOT NULL UNIQUE, promotion_id INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0, pad TEXT)`,
				`CREATE TABLE keyed (id TEXT NOT NULL PRIMARY KEY, code TEXT NOT NULL, at TEXT NOT NULL) WITHOUT ROWID`,
				`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ` + strconv.Itoa(codes) + `)
INSERT INTO codes (code, promotion_id, pad) SELECT 'C' || n, n % 10, hex(randomblob(40)) FROM g`,
			} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					b.Fatalf("%s: %v", q, err)
				}
			}
			write := func(n int) {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer tx.Rollback() //nolint:errcheck // a no-op after Commit
				for range n {
					code := "C" + strconv.Itoa(1+rand.IntN(codes))
					if _, err := tx.ExecContext(ctx, `UPDATE codes SET used = used + 1 WHERE code = ?1`, code); err != nil {
						b.Fatal(err)
					}
					if _, err := tx.ExecContext(ctx, `INSERT INTO keyed VALUES (?1, ?2, '2026-01-01T00:00:00Z')`, key(), code); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			for range 100 {
				write(1000)
			}
			// The label tells the two runs apart in one profile (-tagfocus).
			pprof.Do(ctx, pprof.Labels("keys", name), func(context.Context) {
				for b.Loop() {
					write(16)
				}
			})
		})
	}
}
