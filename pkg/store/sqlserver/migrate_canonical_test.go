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
	m := sqlserver.Migrations(s)
	return storetest.SQLMigrationDB(sqlserver.DB(s), m.UpTo, m.DownTo)
}
