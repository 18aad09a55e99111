package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// Migrations are the store's migrations, for tests that build a database as
// an older release left it.
func Migrations(s *Store) sqlstore.Migrations { return s.migrations(nil) }

// Pool is the store's pool, for tests that drive it with plain SQL.
func Pool(s *Store) *pgxpool.Pool { return s.pool }

// OpenTuned is Open with a hook on the pool's configuration.
func OpenTuned(ctx context.Context, cfg Config, tune func(*pgxpool.Config)) (*Store, error) {
	return open(ctx, cfg, tune)
}

// InStatementTx runs fn on the store's redemption statements in one
// transaction, then rolls it back (storetest.StatementStore).
func (s *Store) InStatementTx(ctx context.Context, fn func(sqlstore.StatementTx) error) error {
	return sqlstore.RunRolledBack(ctx, s.Core, fn)
}
