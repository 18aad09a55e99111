package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// open returns a migrated store in a schema of its own.
func open(tb testing.TB) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{DSN: postgrestest.DSN(tb), Schema: postgrestest.Schema(tb)})
	return storetest.Migrated(tb, s, err)
}

func TestContract(t *testing.T) {
	postgrestest.DSN(t) // skip once, here, rather than in every subtest
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t) })
}

func TestAdversarialSQLConditions(t *testing.T) {
	storetest.AdversarialSQLConditions(t, "postgres", open(t))
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []postgres.Config{{}, {DSN: "x", MaxConns: -1}, {DSN: "x", Schema: "Bad-Name"}, {DSN: "x", Schema: "a; drop"}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
	if err := (postgres.Config{DSN: "postgres://h/db", Schema: "tenant_1"}).Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}

func TestOpenErrorsHideDSN(t *testing.T) {
	storetest.OpenErrorsHideDSN(t, "s3cr3t-pw", func(ctx context.Context, dsn string) error {
		_, err := postgres.Open(ctx, postgres.Config{DSN: dsn})
		return err
	}, "postgres://user:s3cr3t-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "postgres://user:s3cr3t-pw@[bad")
}

func TestClocks(t *testing.T) {
	postgrestest.DSN(t)
	storetest.RunClocks(t, storetest.OneDatabase(
		func(t *testing.T) postgres.Config {
			return postgres.Config{DSN: postgrestest.DSN(t), Schema: postgrestest.Schema(t)}
		},
		func(cfg postgres.Config, clock func() time.Time) (storetest.MigratingStore, error) {
			cfg.Clock = clock
			return postgres.Open(context.Background(), cfg)
		}))
}

func TestBacklog(t *testing.T) {
	storetest.RunBacklog(t, func(t *testing.T) storetest.BacklogStore { return open(t) })
}

func TestMigrations(t *testing.T) {
	postgrestest.DSN(t) // skip once, here, with the reason
	storetest.RunMigrations(t, func(t *testing.T) storetest.MigrationDB {
		s, err := postgres.Open(context.Background(), postgres.Config{DSN: postgrestest.DSN(t), Schema: postgrestest.Schema(t)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(s.Close)
		return storetest.MigrationDB{Migrations: s.Migrations(), DB: s.DB()}
	})
}
