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

// GroupStats reports the redemption group's groups, members, pending
// redemptions, whether one is in flight, and its fallbacks to one by one.
func (s *Store) GroupStats() (groups, members int64, pending int, busy bool, fallbacks int64) {
	st := s.group.Stats()
	return st.Groups, st.Members, st.Pending, st.Inflight > 0, st.Fallbacks
}

// GroupInflight is how many redemption groups are being written.
func GroupInflight(s *Store) int { return s.group.Stats().Inflight }
