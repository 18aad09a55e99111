package sqlstore

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/promocodes/promocodes/pkg/promo"
)

func TestTruncateError(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int // length
	}{
		{"short", 5},
		{strings.Repeat("a", 2000), 1024},
		{strings.Repeat("é", 1000), 1024},               // 2-byte runes: 512 fit exactly
		{"x" + strings.Repeat("é", 1000), 1023},         // the 1024th byte would split a rune
		{"xy" + strings.Repeat("€", 1000), 1022},        // 3-byte runes
		{"bad \xff\xfe utf-8", len("bad \uFFFD utf-8")}, // invalid bytes replaced once
	} {
		got := truncateError(tc.in)
		if len(got) != tc.want || !utf8.ValidString(got) {
			t.Errorf("truncateError(%.20q...) has %d bytes (valid %v), want %d", tc.in, len(got), utf8.ValidString(got), tc.want)
		}
	}
}

func TestCheckReservation(t *testing.T) {
	if err := checkReservation(600, 400, 1000); err != nil {
		t.Errorf("exact fit: %v", err)
	}
	err := checkReservation(600, 401, 1000)
	if !promo.Is(err, promo.ECapacity) || !strings.Contains(err.Error(), "only 400 more") {
		t.Errorf("over the limit: %v", err)
	}
	if err := checkReservation(1200, 1, 1000); !strings.Contains(err.Error(), "only 0 more") {
		t.Errorf("past the limit: %v", err)
	}
}

func TestBatchCount(t *testing.T) {
	for _, tc := range []struct {
		n, size int64
		want    int
	}{{10_000_000, 50_000, 200}, {120_001, 50_000, 3}, {1, 50_000, 1}, {50_000, 50_000, 1}} {
		if got := batchCount(tc.n, tc.size); got != tc.want {
			t.Errorf("batchCount(%d, %d) = %d, want %d", tc.n, tc.size, got, tc.want)
		}
	}
}
