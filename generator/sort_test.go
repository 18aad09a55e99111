package generator

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// The sorter must agree with a plain byte-order sort of whole codes, for
// shared prefixes of every length (including none and the whole code) and
// codes shorter than the 8-byte key.
func TestCodeSorterMatchesByteOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s CodeSorter
	for _, tc := range []struct{ l, prefix, n int }{
		{13, 3, 10_000}, {13, 0, 1000}, {4, 0, 1000}, {4, 2, 500}, {20, 15, 1000}, {9, 9, 10}, {1, 0, 300}, {12, 3, 1},
	} {
		src := make([]byte, 0, tc.l*tc.n)
		for i := 0; i < tc.n; i++ {
			for j := 0; j < tc.l; j++ {
				if j < tc.prefix {
					src = append(src, 'P')
				} else {
					src = append(src, "AB9Z"[r.IntN(4)]) // few letters: many equal keys
				}
			}
		}
		want := make([][]byte, tc.n)
		for i := range want {
			want[i] = src[i*tc.l : (i+1)*tc.l]
		}
		slices.SortFunc(want, bytes.Compare)
		orig := bytes.Clone(src)
		got := s.Sort(src, tc.l, tc.n)
		if !bytes.Equal(got, bytes.Join(want, nil)) {
			t.Fatalf("l=%d prefix=%d n=%d: not in byte order", tc.l, tc.prefix, tc.n)
		}
		if !bytes.Equal(src, orig) {
			t.Fatalf("l=%d: source modified", tc.l)
		}
	}
}

func BenchmarkCodeSorter(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const l, n = 13, 10_000
	src := make([]byte, 0, l*n)
	for i := 0; i < n; i++ {
		src = append(src, "E2E"...)
		for j := 3; j < l; j++ {
			src = append(src, "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"[r.IntN(34)])
		}
	}
	var s CodeSorter
	b.SetBytes(l * n)
	for b.Loop() {
		s.Sort(src, l, n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/code")
}
