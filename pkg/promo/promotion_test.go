package promo

import "testing"

func TestBatchCount(t *testing.T) {
	for _, tc := range []struct {
		n, size int64
		want    int
	}{{10_000_000, 50_000, 200}, {120_001, 50_000, 3}, {1, 50_000, 1}, {50_000, 50_000, 1}} {
		if got := BatchCount(tc.n, tc.size); got != tc.want {
			t.Errorf("BatchCount(%d, %d) = %d, want %d", tc.n, tc.size, got, tc.want)
		}
	}
}
