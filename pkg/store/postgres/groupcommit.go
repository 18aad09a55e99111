package postgres

import (
	"context"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Redeem uses a code once for a user (the core's Redeem). The redemptions
// concurrent in this process, of any codes, are sent together as one
// statement (redeem_codes, migration 00018): one round trip, one
// transaction, one commit for the group (group commit,
// sqlstore.NewRedeemGroupOnce; docs/store.md). A request with shopper
// fields takes the core's statement path. Config.RedeemGroup -1 turns
// grouping off.
func (s *Store) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	if s.group == nil || req.Shopper != nil {
		return s.Core.Redeem(ctx, req)
	}
	return s.group.Redeem(ctx, req)
}
