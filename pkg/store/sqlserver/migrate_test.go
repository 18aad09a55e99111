package sqlserver_test

import (
	"context"
	"testing"

	"github.com/promocodes/promocodes/pkg/store/sqlserver"
	"github.com/promocodes/promocodes/pkg/store/sqlserver/sqlservertest"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

func TestMigrations(t *testing.T) {
	sqlservertest.DSN(t) // skip once, here, with the reason
	storetest.RunMigrations(t, func(t *testing.T) storetest.MigrationDB {
		s, err := sqlserver.Open(context.Background(), sqlserver.Config{DSN: sqlservertest.Database(t), MaxConns: 4})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(s.Close)
		return storetest.MigrationDB{Migrations: s.Migrations(), DB: s.DB()}
	})
}
