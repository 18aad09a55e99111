package sqlite

import (
	"context"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Redeem uses a code once for a user (the core's Redeem). With one writer,
// a redemption's cost is its commit (a WAL flush at synchronous FULL), and
// concurrent redemptions would queue for the write lock one commit each:
// instead those of this process share a write transaction and its commit
// (group commit, sqlstore.RedeemGroup), each with the core's statements
// after the ones before it (a failing one rolled back alone, to a savepoint),
// so each is answered exactly as alone, only after the commit that holds it.
// Config.RedeemGroup -1 turns it off.
func (s *Store) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	if s.group == nil {
		return s.Core.Redeem(ctx, req)
	}
	return s.group.Redeem(ctx, req)
}
