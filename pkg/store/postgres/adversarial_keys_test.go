//go:build integration

package postgres_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
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

// envCrashChild makes the test binary the process TestAdversarialCrash
// kills: it redeems in this schema until killed.
const envCrashChild = "PROMOCODES_ADV_CRASH_CHILD"

// TestAdversarialCrash kills (SIGKILL) a process redeeming with keys (group
// commit, and the statement path for a third), three times: every answer it
// gave is replayed as given, no key record names a missing redemption, and
// uses equal audit rows.
func TestAdversarialCrash(t *testing.T) {
	ctx := context.Background()
	if schema := os.Getenv(envCrashChild); schema != "" {
		s, err := postgres.Open(ctx, postgres.Config{DSN: postgrestest.DSN(t), Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		storetest.CrashLoad(ctx, s, strings.Fields(os.Getenv(envCrashChild+"_CODES")), os.Stdout)
		return
	}
	schema := postgrestest.Schema(t)
	s, err := postgres.Open(ctx, postgres.Config{DSN: postgrestest.DSN(t), Schema: schema})
	s = storetest.Migrated(t, s, err)
	for round := range 3 {
		codes := storetest.CrashCodes(t, s)
		lines := storetest.KillChild(t, "^TestAdversarialCrash$",
			[]string{envCrashChild + "=" + schema, envCrashChild + "_CODES=" + strings.Join(codes, " ")},
			time.Duration(1000+rand.IntN(800))*time.Millisecond)
		// The server ends the killed process's sessions (rolling back what
		// they had not committed) once it sees their sockets close.
		time.Sleep(200 * time.Millisecond)
		summary := storetest.CheckAfterCrash(t, s, keyRecords(postgres.Pool(s)), codes, lines)
		state := ""
		if t.Failed() {
			state = "FAILED: "
		}
		t.Logf("adversarial: SIGKILL mid-redemption, round %d [postgres]: %s%s", round, state, summary)
	}
}

func TestAdversarialKeysCancelled(t *testing.T) {
	s := open(t)
	storetest.AdversarialKeysCancelled(t, "postgres", s, keyRecords(postgres.Pool(s)))
}
