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

// Rows is a result set of either driver (database/sql's *sql.Rows,
// pgx.Rows); the caller closes it.
type Rows interface {
	Next() bool
	Err() error
}

// CollectRows reads every row of rows with scan (which scans the current
// row).
func CollectRows[T any](rows Rows, scan func() (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
