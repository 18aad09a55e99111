package sqlite

import (
	"database/sql"

	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// Migrations are the store's migrations, for tests that build a database as
// an older release left it.
func Migrations(s *Store) sqlstore.Migrations { return s.migrations() }

// Writer is the store's write pool, for tests that drive it with plain SQL.
func Writer(s *Store) *sql.DB { return s.w }
