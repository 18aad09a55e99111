package storetest

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Replicas opens one store per clock, all on one fresh migrated database:
// the processes of a deployment whose hosts' clocks disagree. A store's
// clock is the one it stamps times with itself (the Clock field of its
// Config).
type Replicas func(t *testing.T, clocks ...func() time.Time) []Store

// MigratingStore is a store that can create its schema and be closed.
type MigratingStore interface {
	Store
	Migrate(ctx context.Context) error
	Close()
}

// OneDatabase is Replicas for a store package: database names a fresh
// database once per case (a file, a schema), open opens a store on it with
// a clock; the first store opened migrates it.
func OneDatabase[D any](database func(t *testing.T) D, open func(db D, clock func() time.Time) (MigratingStore, error)) Replicas {
	return func(t *testing.T, clocks ...func() time.Time) []Store {
		db := database(t)
		var out []Store
		for i, c := range clocks {
			s, err := open(db, c)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			t.Cleanup(s.Close)
			if i == 0 {
				if err := s.Migrate(context.Background()); err != nil {
					t.Fatalf("migrate: %v", err)
				}
			}
			out = append(out, s)
		}
		return out
	}
}

// Skew is how far off the skewed replicas' clocks are.
const Skew = 2 * time.Hour

// RunClocks is the part of the contract about clocks: leases (the batch
// outbox's and the redemption events') are on the database's clock, so a
// replica whose clock is Skew fast or slow neither holds its leases for
// hours nor takes over the leases of others. Each case opens its own
// replicas.
func RunClocks(t *testing.T, open Replicas) {
	exact := time.Now
	fast := func() time.Time { return time.Now().Add(Skew) }
	slow := func() time.Time { return time.Now().Add(-Skew) }
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, exact, fast, slow *harness)
	}{
		{"BatchLeasesAcrossSkewedClocks", testBatchLeasesAcrossSkewedClocks},
		{"EventLeasesAcrossSkewedClocks", testEventLeasesAcrossSkewedClocks},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, exact, fast, slow)
			tc.fn(t, newHarness(t, s[0]), newHarness(t, s[1]), newHarness(t, s[2]))
		})
	}
}

// leaseWait is longer than the 1 s leases these cases take.
const leaseWait = 1500 * time.Millisecond

func testBatchLeasesAcrossSkewedClocks(t *testing.T, exact, fast, slow *harness) {
	claim := func(h *harness, lease time.Duration, id int64) []int {
		t.Helper()
		bs, err := h.s.ClaimPendingBatches(h.ctx, 100, lease)
		if err != nil {
			t.Fatalf("ClaimPendingBatches: %v", err)
		}
		return claimedOf(bs, id)
	}
	all := []int{0, 1, 2}
	// A lease taken on a good clock is not taken over by a fast replica
	// (it used to see the lease as ended two hours early: two publishers).
	p := exact.create(exact.generated("lease-exact", 30, 10))
	if got := claim(exact, time.Hour, p.ID); !slices.Equal(got, all) {
		t.Fatalf("claim = %v, want %v", got, all)
	}
	if got := claim(fast, time.Hour, p.ID); len(got) != 0 {
		t.Fatalf("a replica %s fast took over live leases: %v", Skew, got)
	}
	// A fast replica's 1 s lease ends after 1 s, not Skew later.
	q := fast.create(fast.generated("lease-fast", 30, 10))
	if got := claim(fast, time.Second, q.ID); !slices.Equal(got, all) {
		t.Fatalf("fast claim = %v, want %v", got, all)
	}
	if got := claim(exact, time.Hour, q.ID); len(got) != 0 {
		t.Fatalf("claimed %v under the fast replica's live lease", got)
	}
	time.Sleep(leaseWait)
	if got := claim(exact, time.Hour, q.ID); !slices.Equal(got, all) {
		t.Fatalf("after the fast replica's 1 s lease: claimed %v, want %v (the lease ran %s long?)", got, all, Skew)
	}
	// A slow replica's 1 s lease is not over at once (it used to be over
	// before it was taken: two publishers).
	r := slow.create(slow.generated("lease-slow", 30, 10))
	if got := claim(slow, time.Second, r.ID); !slices.Equal(got, all) {
		t.Fatalf("slow claim = %v, want %v", got, all)
	}
	if got := claim(exact, time.Hour, r.ID); len(got) != 0 {
		t.Fatalf("took over %v from the slow replica's live lease", got)
	}
	time.Sleep(leaseWait)
	if got := claim(exact, time.Hour, r.ID); !slices.Equal(got, all) {
		t.Fatalf("after the slow replica's 1 s lease: claimed %v, want %v", got, all)
	}
}

func testEventLeasesAcrossSkewedClocks(t *testing.T, exact, fast, slow *harness) {
	claim := func(h *harness, lease time.Duration) []int64 {
		t.Helper()
		evs, err := h.s.ClaimEvents(h.ctx, 100, lease)
		if err != nil {
			t.Fatalf("ClaimEvents: %v", err)
		}
		var seqs []int64
		for _, ev := range evs {
			seqs = append(seqs, ev.Seq)
		}
		return seqs
	}
	code := "V" + exact.tag + "LEASE"
	exact.create(exact.vanity(code, 10))
	exact.redeem(redeemReq(code, "u1")) // one event in the outbox
	for _, tc := range []struct {
		name   string
		holder *harness
	}{{"fast", fast}, {"slow", slow}} {
		got := claim(tc.holder, time.Second)
		if len(got) != 1 {
			t.Fatalf("%s replica claimed %v, want the one event", tc.name, got)
		}
		if again := claim(exact, time.Hour); len(again) != 0 {
			t.Fatalf("claimed %v under the %s replica's live lease", again, tc.name)
		}
		time.Sleep(leaseWait)
		if again := claim(exact, time.Second); !slices.Equal(again, got) {
			t.Fatalf("after the %s replica's 1 s lease: claimed %v, want %v", tc.name, again, got)
		}
		time.Sleep(leaseWait) // the exact replica's lease ends too
	}
}
