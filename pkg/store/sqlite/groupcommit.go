package sqlite

import (
	"context"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Redeem uses a code once for a user (the core's Redeem). With one writer
// a redemption's cost is its commit, so the concurrent redemptions of this
// process share a write transaction and its commit (group commit,
// sqlstore.RedeemGroup; docs/store.md). Config.RedeemGroup -1 turns it off.
func (s *Store) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	if s.group == nil {
		return s.Core.Redeem(ctx, req)
	}
	return s.group.Redeem(ctx, req)
}
