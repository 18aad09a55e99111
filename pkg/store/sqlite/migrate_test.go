package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

func TestCanonicalCodesMigration(t *testing.T) {
	storetest.RunCanonicalCodesMigration(t, migrationDB)
}

func TestTotalsMigration(t *testing.T) {
	storetest.RunTotalsMigration(t, migrationDB)
}

// migrationDB opens a fresh, unmigrated database file for the migration tests.
func migrationDB(t *testing.T) storetest.MigrationDB {
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "old.db")})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	db := sqlite.Writer(s)
	return storetest.MigrationDB{
		MigrateTo:     func(ctx context.Context, v int64) error { return sqlite.MigrateTo(ctx, s, v) },
		MigrateDownTo: func(ctx context.Context, v int64) error { return sqlite.MigrateDownTo(ctx, s, v) },
		Exec: func(ctx context.Context, q string) error {
			_, err := db.ExecContext(ctx, q)
			return err
		},
		Rows: func(ctx context.Context, q string) ([][]string, error) {
			rows, err := db.QueryContext(ctx, q)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			cols, err := rows.Columns()
			if err != nil {
				return nil, err
			}
			var out [][]string
			for rows.Next() {
				r := make([]string, len(cols))
				ptrs := make([]any, len(cols))
				for i := range r {
					ptrs[i] = &r[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					return nil, err
				}
				out = append(out, r)
			}
			return out, rows.Err()
		},
	}
}
