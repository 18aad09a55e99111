package contract

import (
	"context"
	"fmt"

	"github.com/promocodes/promocodes/pkg/promo"
)

// RevocationReader reads a code's revocation (RedemptionTx has it).
type RevocationReader interface {
	Revocation(ctx context.Context, code string) (r promo.Revocation, revoked, found bool, err error)
}

// ReadRevocation is a store's Revocation: the code's revocation and whether
// it is revoked; ENotFound for no such code.
func ReadRevocation(ctx context.Context, q RevocationReader, code string) (promo.Revocation, bool, error) {
	r, revoked, found, err := q.Revocation(ctx, code)
	if err != nil {
		return r, false, fmt.Errorf("read revocation of code %s: %w", code, err)
	}
	if !found {
		return r, false, promo.Errorf(promo.ENotFound, "no code %s", code)
	}
	return r, revoked, nil
}
