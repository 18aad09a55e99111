package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// MigrateTo applies the migrations up to version: tests build a database as
// an older release left it.
func MigrateTo(ctx context.Context, s *Store, version int64) error {
	return s.migrations(nil).UpTo(ctx, version)
}

// Pool is the store's pool, for tests that drive it with plain SQL.
func Pool(s *Store) *pgxpool.Pool { return s.pool }

// MigrateDownTo rolls back the migrations above version.
func MigrateDownTo(ctx context.Context, s *Store, version int64) error {
	return s.migrations(nil).DownTo(ctx, version)
}

// OpenTuned is Open with a hook on the pool's configuration.
func OpenTuned(ctx context.Context, cfg Config, tune func(*pgxpool.Config)) (*Store, error) {
	return open(ctx, cfg, tune)
}
