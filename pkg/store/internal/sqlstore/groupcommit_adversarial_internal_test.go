//go:build integration

package sqlstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

// TestAdversarialGroupTake drives take (with its single-flight special
// case gone) through random arrivals and flight ends, for one and for
// several flights: no group has more than max members, no two groups in
// flight share a row (code, user, key) when flights > 1, every member is
// handed out once and in its arrival order among those sharing its rows,
// and pending members never stall while a flight is free.
func TestAdversarialGroupTake(t *testing.T) {
	for _, flights := range []int{1, 2, 3} {
		for seed := range uint64(20) {
			rng := rand.New(rand.NewPCG(seed, uint64(flights)))
			g := &RedeemGroup[*SQLTx]{max: 4, flights: flights}
			var active [][]*groupMember
			seen := map[*groupMember]bool{}
			n := 0
			arrive := func(k int) {
				for range k {
					n++
					req := promo.RedeemRequest{Code: fmt.Sprintf("C%d", rng.IntN(5)), UserID: fmt.Sprintf("u%d", rng.IntN(4))}
					if rng.IntN(3) == 0 {
						req.IdempotencyKey = fmt.Sprintf("k%d", rng.IntN(3))
					}
					req.ID = fmt.Sprint(n)
					g.pending = append(g.pending, &groupMember{req: req})
				}
			}
			g.inflight = 1 // a flight about to end, holding nothing
			arrive(10)
			for step := 0; step < 400 && (len(g.pending) > 0 || len(active) > 0 || step == 0); step++ {
				for _, grp := range g.take() {
					if len(grp) > g.max {
						t.Fatalf("adversarial: group take [flights %d seed %d]: a group of %d, max %d", flights, seed, len(grp), g.max)
					}
					for _, m := range grp {
						if seen[m] {
							t.Fatalf("adversarial: group take [flights %d seed %d]: member %s handed out twice", flights, seed, m.req.ID)
						}
						seen[m] = true
					}
					active = append(active, grp)
				}
				if len(active) > g.flights || g.inflight != len(active) {
					t.Fatalf("adversarial: group take [flights %d seed %d]: %d groups active, inflight %d, flights %d",
						flights, seed, len(active), g.inflight, g.flights)
				}
				if flights > 1 {
					rows := map[string]int{}
					for i, grp := range active {
						for _, m := range grp {
							for _, r := range rowsOf(m) {
								if j, ok := rows[r]; ok && j != i {
									t.Fatalf("adversarial: group take [flights %d seed %d]: row %q in two groups in flight", flights, seed, r)
								}
								rows[r] = i
							}
						}
					}
				}
				if len(active) == 0 {
					if len(g.pending) > 0 {
						t.Fatalf("adversarial: group take [flights %d seed %d]: %d pending, no flight", flights, seed, len(g.pending))
					}
					break
				}
				if step < 100 {
					arrive(rng.IntN(6))
				}
				// A random group in flight ends.
				i := rng.IntN(len(active))
				g.hold(active[i], -1)
				active = slices.Delete(active, i, i+1)
			}
			if len(seen) != n || len(g.pending) != 0 {
				t.Fatalf("adversarial: group take [flights %d seed %d]: %d of %d handed out, %d pending", flights, seed, len(seen), n, len(g.pending))
			}
		}
		t.Logf("adversarial: group take [flights %d]: at most max a group, no row shared in flight, no stall (20 seeds)", flights)
	}
}
