package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

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
