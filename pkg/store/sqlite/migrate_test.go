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
	m := sqlite.Migrations(s)
	return storetest.SQLMigrationDB(sqlite.Writer(s), m.UpTo, m.DownTo)
}
