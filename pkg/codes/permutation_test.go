package codes

import (
	"math/rand/v2"
	"testing"
)

// TestPermutationExhaustive checks on small spaces that forward is a
// bijection of [0, space) and inverse undoes it, for every element. The
// spaces cover exact powers of 4 (no cycle-walking), just above them (the
// most walking, up to 4 steps expected) and the 4-digit numeric space.
func TestPermutationExhaustive(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, space := range []uint64{2, 3, 4, 5, 17, 100, 1000, 1024, 1025, 10_000, 65_536, 65_537, 100_000} {
		p := newPermutation(space, testKeys(r))
		seen := make([]bool, space)
		fixed := 0
		for x := range space {
			y := p.forward(x)
			if y >= space {
				t.Fatalf("space %d: forward(%d) = %d out of range", space, x, y)
			}
			if seen[y] {
				t.Fatalf("space %d: forward(%d) = %d hit twice", space, x, y)
			}
			seen[y] = true
			if back := p.inverse(y); back != x {
				t.Fatalf("space %d: inverse(forward(%d)) = %d", space, x, back)
			}
			if y == x {
				fixed++
			}
		}
		// A random permutation has about 1 fixed point; far more means the
		// network is not mixing.
		if space >= 1000 && fixed > 10 {
			t.Errorf("space %d: %d fixed points", space, fixed)
		}
	}
}

func TestPermutationDomain(t *testing.T) {
	for _, tc := range []struct {
		space uint64
		half  uint
	}{{2, 1}, {4, 1}, {5, 2}, {16, 2}, {17, 3}, {1e6, 10}, {1 << 20, 10}, {1<<20 + 1, 11}, {1 << 63, 32}} {
		p := newPermutation(tc.space, [rounds]sipKey{})
		if p.half != tc.half {
			t.Errorf("space %d: half = %d, want %d", tc.space, p.half, tc.half)
		}
		if d := p.domain(); tc.half < 32 && (d < tc.space || d/4 >= tc.space) {
			t.Errorf("space %d: domain %d is not the smallest power of 4 ≥ space", tc.space, d)
		}
	}
}
