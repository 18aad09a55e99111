package codes

import (
	"runtime"
	"sync"
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

// TestTenMillionDistinct derives the codes of 10,000,000 consecutive sequence
// numbers of a 10-character alnum format and checks that they are all
// different. Under the race detector (make test) it takes 1,000,000: the
// race build is about 6 times slower and the 10M run would take ~40 s of the
// 2-core machine; distinctCount is set by distinct_race_test.go and
// distinct_norace_test.go. Each canonical code (10 body characters and the check character,
// 5 bits each with the test's own character table) is packed into a uint64,
// which is injective on codes; the packed values are radix-sorted (two 80 MB
// slices) and compared with their neighbours.
func TestTenMillionDistinct(t *testing.T) {
	const n = distinctCount
	e := must(New(promo.Format{Charset: PresetAlnum, Length: 10}, []byte("ten-million-distinct-ten-million-distinct")))
	l := e.Layout()
	var idx [256]uint64
	for i := range idx {
		idx[i] = 1 << 63
	}
	for i := 0; i < len(presets[PresetAlnum]); i++ {
		idx[presets[PresetAlnum][i]] = uint64(i)
	}
	packed := make([]uint64, n)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			const chunk = 4096
			cl := l.CodeLen()
			buf := make([]byte, 0, chunk*cl)
			for start := w * chunk; start < n; start += workers * chunk {
				k := min(chunk, n-start)
				buf = e.AppendCodes(buf[:0], uint64(start), k)
				for i := range k {
					var p uint64
					for _, c := range buf[i*cl : (i+1)*cl] {
						p = p<<5 | idx[c]
					}
					packed[start+i] = p
				}
			}
		})
	}
	wg.Wait()
	sorted := radixSort(packed, make([]uint64, n))
	for i, v := range sorted {
		if v>>63 != 0 {
			t.Fatalf("code %d has a character outside the charset", i)
		}
		if i > 0 && sorted[i-1] == v {
			t.Fatalf("duplicate code (packed %#x)", v)
		}
	}
	t.Logf("%d consecutive sequence numbers gave %d distinct codes", n, len(sorted))
}

// radixSort sorts a 55-bit keys by 11-bit digits, LSD first, using tmp.
func radixSort(a, tmp []uint64) []uint64 {
	for shift := uint(0); shift < 64; shift += 11 {
		var count [1 << 11]int
		for _, v := range a {
			count[(v>>shift)&(1<<11-1)]++
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, v := range a {
			d := (v >> shift) & (1<<11 - 1)
			tmp[count[d]] = v
			count[d]++
		}
		a, tmp = tmp, a
	}
	return a
}
