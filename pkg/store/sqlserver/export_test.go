package sqlserver

import (
	"context"
	"database/sql"
)

// MigrateTo applies the migrations up to version: tests build a database as
// an older release left it.
func MigrateTo(ctx context.Context, s *Store, version int64) error {
	return s.migrations().UpTo(ctx, version)
}

// DB is the store's pool, for tests that drive it with plain SQL.
func DB(s *Store) *sql.DB { return s.db }

// MigrateDownTo rolls back the migrations above version.
func MigrateDownTo(ctx context.Context, s *Store, version int64) error {
	return s.migrations().DownTo(ctx, version)
}
