package sqlite

import (
	"context"
	"database/sql"

	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// Migrations are the store's migrations, for tests that build a database as
// an older release left it.
func Migrations(s *Store) sqlstore.Migrations { return s.migrations() }

// Writer is the store's write pool, for tests that drive it with plain SQL.
func Writer(s *Store) *sql.DB { return s.w }

// InStatementTx runs fn on the store's redemption statements in one
// transaction, then rolls it back (storetest.StatementStore).
func (s *Store) InStatementTx(ctx context.Context, fn func(sqlstore.StatementTx) error) error {
	return sqlstore.RunRolledBack(ctx, s.Core, fn)
}

// SingleWriter says that one write lock covers the whole database
// (storetest.SingleWriter).
func (s *Store) SingleWriter() bool { return true }
