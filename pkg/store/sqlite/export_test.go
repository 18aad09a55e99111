package sqlite

import (
	"context"
	"database/sql"
)

// MigrateTo applies the migrations up to version: tests build a database as
// an older release left it.
func MigrateTo(ctx context.Context, s *Store, version int64) error {
	return s.migrations().UpTo(ctx, version)
}

// Writer is the store's write pool, for tests that drive it with plain SQL.
func Writer(s *Store) *sql.DB { return s.w }

// MigrateDownTo rolls back the migrations above version.
func MigrateDownTo(ctx context.Context, s *Store, version int64) error {
	return s.migrations().DownTo(ctx, version)
}
