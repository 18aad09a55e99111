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
	for _, c := range []postgres.Config{{}, {DSN: "x", MaxConns: -1}, {DSN: "x", Schema: "Bad-Name"}, {DSN: "x", Schema: "a; drop"},
		{DSN: "x", RedeemGroup: -2}, {DSN: "x", RedeemFlights: -1}, {DSN: "x", MaxConns: 8, RedeemFlights: 9},
		{DSN: "x", RedeemFlights: postgres.DefaultMaxConns + 1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
	for _, c := range []postgres.Config{{DSN: "postgres://h/db", Schema: "tenant_1"},
		{DSN: "x", RedeemGroup: -1}, {DSN: "x", MaxConns: 8, RedeemGroup: 16, RedeemFlights: 8}} {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", c, err)
		}
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

// Migrating down from 00018 drops redeem_codes; down from 00014 drops
// redeem_code_batch and leaves redeem_code as
// 00013_personal_codes made it (13 arguments); down from 00013 restores
// 00012's (11); up again brings both back.
func TestMigrationsDownRestoreRedeemFunctions(t *testing.T) {
	postgrestest.DSN(t) // skip once, here, with the reason
	s := open(t)
	ctx, m, db := context.Background(), s.Migrations(), s.DB()
	functions := func(when, want string) {
		t.Helper()
		var got string
		err := db.QueryRow(ctx, `SELECT string_agg(proname || '/' || pronargs, ',' ORDER BY proname)
FROM pg_proc WHERE pronamespace = current_schema()::regnamespace AND proname LIKE 'redeem_code%'`).Scan(&got)
		if err != nil || got != want {
			t.Fatalf("functions %s: %q, %v; want %q", when, got, err, want)
		}
	}
	functions("migrated", "redeem_code/13,redeem_code_batch/14,redeem_codes/13")
	if err := m.DownTo(ctx, 17); err != nil {
		t.Fatal(err)
	}
	functions("down to 00017", "redeem_code/13,redeem_code_batch/14")
	if err := m.DownTo(ctx, 13); err != nil {
		t.Fatal(err)
	}
	functions("down to 00013", "redeem_code/13")
	if err := m.DownTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	functions("down to 00012", "redeem_code/11")
	if err := m.UpTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	functions("up again", "redeem_code/13,redeem_code_batch/14")
}
