//go:build integration

package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// keyRecords reads and damages the idempotency records through pool.
func keyRecords(pool *pgxpool.Pool) storetest.KeyRecords {
	return storetest.KeyRecords{
		Orphans: func(ctx context.Context) (n int, err error) {
			err = pool.QueryRow(ctx, storetest.OrphanKeys).Scan(&n)
			return n, err
		},
		DropRedemption: func(ctx context.Context, id string) error {
			_, err := pool.Exec(ctx, "DELETE FROM redemptions WHERE id = $1", id)
			return err
		},
	}
}

func TestAdversarialIdempotencyKeys(t *testing.T) {
	s := open(t)
	storetest.AdversarialIdempotencyKeys(t, "postgres", s, keyRecords(postgres.Pool(s)))
}
