package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// MigrateTo applies the migrations up to version: tests build a database as
// an older release left it.
func MigrateTo(ctx context.Context, s *Store, version int64) error { return s.migrate(ctx, version) }

// Pool is the store's pool, for tests that drive it with plain SQL.
func Pool(s *Store) *pgxpool.Pool { return s.pool }
