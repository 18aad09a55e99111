//go:build integration

package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// rawDB opens path with a connection pool of the test's own.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// keyRecords reads and damages the idempotency records of the database db.
func keyRecords(db *sql.DB) storetest.KeyRecords {
	return storetest.KeyRecords{
		Orphans: func(ctx context.Context) (n int, err error) {
			err = db.QueryRowContext(ctx, storetest.OrphanKeys).Scan(&n)
			return n, err
		},
		DropRedemption: func(ctx context.Context, id string) error {
			_, err := db.ExecContext(ctx, "DELETE FROM redemptions WHERE id = ?", id)
			return err
		},
	}
}

func TestAdversarialIdempotencyKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "promocodes.db")
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	s = storetest.Migrated(t, s, err)
	storetest.AdversarialIdempotencyKeys(t, "sqlite", s, keyRecords(rawDB(t, path)))
}
