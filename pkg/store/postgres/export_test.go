package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool is the store's pool, for tests that drive it with plain SQL.
func Pool(s *Store) *pgxpool.Pool { return s.pool }

// OpenTuned is Open with a hook on the pool's configuration.
func OpenTuned(ctx context.Context, cfg Config, tune func(*pgxpool.Config)) (*Store, error) {
	return open(ctx, cfg, tune)
}
