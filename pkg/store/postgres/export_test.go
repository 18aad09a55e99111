package postgres

import (
	"context"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// MigrateTo applies the migrations up to version: tests build a database as
// an older release left it.
func MigrateTo(ctx context.Context, s *Store, version int64) error {
	_, _, err := s.migrate(ctx, version)
	return err
}

// Pool is the store's pool, for tests that drive it with plain SQL.
func Pool(s *Store) *pgxpool.Pool { return s.pool }

// MigrateDownTo rolls back the migrations above version.
func MigrateDownTo(ctx context.Context, s *Store, version int64) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.DownTo(ctx, version)
	return err
}

// InStatementTx runs fn on the store's redemption statements in one
// transaction, then rolls it back (storetest.StatementStore).
func (s *Store) InStatementTx(ctx context.Context, fn func(tx contract.RedemptionTx) error) error {
	return contract.RunRolledBack(ctx, s.redemptionTx, fn)
}
