package sqlserver_test

import (
	"context"
	"testing"

	"github.com/promocodes/promocodes/pkg/store/sqlserver"
	"github.com/promocodes/promocodes/pkg/store/sqlserver/sqlservertest"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

func TestCanonicalCodesMigration(t *testing.T) {
	sqlservertest.DSN(t) // skip once, here, with the reason
	storetest.RunCanonicalCodesMigration(t, migrationDB)
}

func TestTotalsMigration(t *testing.T) {
	sqlservertest.DSN(t) // skip once, here, with the reason
	storetest.RunTotalsMigration(t, migrationDB)
}

// migrationDB opens a fresh, unmigrated database for the migration tests.
func migrationDB(t *testing.T) storetest.MigrationDB {
	s, err := sqlserver.Open(context.Background(), sqlserver.Config{DSN: sqlservertest.Database(t), MaxConns: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	db := sqlserver.DB(s)
	return storetest.MigrationDB{
		MigrateTo:     func(ctx context.Context, v int64) error { return sqlserver.MigrateTo(ctx, s, v) },
		MigrateDownTo: func(ctx context.Context, v int64) error { return sqlserver.MigrateDownTo(ctx, s, v) },
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
