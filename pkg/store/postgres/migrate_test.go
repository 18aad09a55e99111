package postgres_test

import (
	"context"
	"testing"

	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

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
