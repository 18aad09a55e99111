package sqlserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/store/sqlserver"
	"github.com/promocodes/promocodes/pkg/store/sqlserver/sqlservertest"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// open returns a migrated store on dsn.
func open(tb testing.TB, dsn string) *sqlserver.Store {
	tb.Helper()
	s, err := sqlserver.Open(context.Background(), sqlserver.Config{DSN: dsn, MaxConns: 8})
	return storetest.Migrated(tb, s, err)
}

// TestContract runs the store contract on one database shared by the
// parallel subtests (they keep their data apart), as production shares one.
func TestContract(t *testing.T) {
	dsn := sqlservertest.Database(t) // skip once, here, rather than in every subtest
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, dsn) })
}

// Processes migrating one database at once wait for the lock and find
// nothing to do.
func TestConcurrentMigrate(t *testing.T) {
	dsn := sqlservertest.Database(t)
	open(t, dsn)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			o, err := sqlserver.Open(context.Background(), sqlserver.Config{DSN: dsn})
			if err != nil {
				errs <- err
				return
			}
			defer o.Close()
			errs <- o.Migrate(context.Background())
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []sqlserver.Config{{}, {DSN: "sqlserver://h", MaxConns: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
	if err := (sqlserver.Config{DSN: "sqlserver://sa:pw@h:1433?database=promocodes"}).Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}

// Runs without a server: the connection is refused (or the DSN rejected),
// and the error must not show the password.
func TestOpenErrorsHideDSN(t *testing.T) {
	const secret = "s3cr3t-Pw"
	storetest.OpenErrorsHideDSN(t, secret, func(ctx context.Context, dsn string) error {
		_, err := sqlserver.Open(ctx, sqlserver.Config{DSN: dsn})
		return err
	}, "sqlserver://sa:"+secret+"@127.0.0.1:1?database=promocodes&dial+timeout=2&encrypt=disable",
		"sqlserver://sa:"+secret+"@[bad",
		"server=127.0.0.1;port=1;user id=sa;password="+secret+";database=promocodes;dial timeout=2;encrypt=disable",
		"sqlserver://sa:"+secret+"@127.0.0.1:1?timezone=Nowhere/Nothing")
}

func TestClocks(t *testing.T) {
	sqlservertest.ServerDSN(t)
	storetest.RunClocks(t, storetest.OneDatabase(func(t *testing.T) string { return sqlservertest.Database(t) },
		func(dsn string, clock func() time.Time) (storetest.MigratingStore, error) {
			return sqlserver.Open(context.Background(), sqlserver.Config{DSN: dsn, Clock: clock})
		}))
}

func TestBacklog(t *testing.T) {
	dsn := sqlservertest.Database(t) // a database of its own: Backlog counts all of it
	storetest.RunBacklog(t, func(t *testing.T) storetest.BacklogStore { return open(t, dsn) })
}

func TestMigrations(t *testing.T) {
	sqlservertest.ServerDSN(t) // skip once, here, with the reason
	storetest.RunMigrations(t, func(t *testing.T) storetest.MigrationDB {
		s, err := sqlserver.Open(context.Background(), sqlserver.Config{DSN: sqlservertest.Database(t), MaxConns: 4})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(s.Close)
		return storetest.MigrationDB{Migrations: s.Migrations(), DB: s.DB()}
	})
}
