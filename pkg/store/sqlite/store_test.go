package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

func open(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "promocodes.db")})
	return storetest.Migrated(t, s, err)
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t) })
}

func TestAdversarialSQLConditions(t *testing.T) {
	storetest.AdversarialSQLConditions(t, "sqlite", open(t))
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []sqlite.Config{{}, {Path: "a", DSN: "b"}, {Path: ":memory:"}, {DSN: "file:x?mode=memory"}, {Path: "a", MaxReadConns: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
	if err := (sqlite.Config{Path: "/tmp/x.db"}).Validate(); err != nil {
		t.Errorf("Validate(path) = %v", err)
	}
}

func TestClocks(t *testing.T) {
	storetest.RunClocks(t, storetest.OneDatabase(
		func(t *testing.T) string { return filepath.Join(t.TempDir(), "promocodes.db") },
		func(path string, clock func() time.Time) (storetest.MigratingStore, error) {
			return sqlite.Open(context.Background(), sqlite.Config{Path: path, Clock: clock})
		}))
}

func TestBacklog(t *testing.T) {
	storetest.RunBacklog(t, func(t *testing.T) storetest.BacklogStore { return open(t) })
}

func TestMigrations(t *testing.T) {
	storetest.RunMigrations(t, func(t *testing.T) storetest.MigrationDB {
		s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "old.db")})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(s.Close)
		return storetest.MigrationDB{Migrations: s.Migrations(), DB: s.DB()}
	})
}
