package postgres

import (
	"context"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Redeem uses a code once for a user (the core's Redeem). Each redemption
// alone is one statement (redeem_code) and one commit, a WAL flush; the
// redemptions concurrent in this process, of any codes, are instead sent
// together as one statement (redeem_codes, migration 00018): one round trip,
// one transaction, one commit for the group (group commit,
// sqlstore.NewRedeemGroupOnce). A redemption that finds fewer than
// Config.RedeemFlights groups in flight goes at once; the others gather
// into the next group (at most Config.RedeemGroup). Each member is answered
// exactly as alone. A request with shopper fields takes the core's
// statement path as before. Config.RedeemGroup -1 turns grouping off.
func (s *Store) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	if s.group == nil || req.Shopper != nil {
		return s.Core.Redeem(ctx, req)
	}
	return s.group.Redeem(ctx, req)
}
