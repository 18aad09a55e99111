package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

func TestCanonicalCodesMigration(t *testing.T) {
	postgrestest.DSN(t) // skip once, here, with the reason
	storetest.RunCanonicalCodesMigration(t, migrationDB)
}

func TestTotalsMigration(t *testing.T) {
	postgrestest.DSN(t) // skip once, here, with the reason
	storetest.RunTotalsMigration(t, migrationDB)
}

// migrationDB opens a fresh, unmigrated schema for the migration tests.
func migrationDB(t *testing.T) storetest.MigrationDB {
	s, err := postgres.Open(context.Background(), postgres.Config{DSN: postgrestest.DSN(t), Schema: postgrestest.Schema(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	pool := postgres.Pool(s)
	return storetest.MigrationDB{
		MigrateTo:     postgres.Migrations(s).UpTo,
		MigrateDownTo: postgres.Migrations(s).DownTo,
		Exec: func(ctx context.Context, q string) error {
			_, err := pool.Exec(ctx, q)
			return err
		},
		Rows: func(ctx context.Context, q string) ([][]string, error) {
			rows, err := pool.Query(ctx, q)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(row pgx.CollectableRow) ([]string, error) {
				r := make([]string, len(row.FieldDescriptions()))
				ptrs := make([]any, len(r))
				for i := range r {
					ptrs[i] = &r[i]
				}
				return r, row.Scan(ptrs...)
			})
		},
	}
}
