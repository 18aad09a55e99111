package sqlstore

import (
	"math/rand/v2"
	"testing"
	"time"
)

// FormatTime writes what time.Format writes in TimeLayout, in any zone, for
// years from 0 to 9999 and past them.
func TestFormatTime(t *testing.T) {
	zone := time.FixedZone("x", -(3*3600 + 1800))
	times := []time.Time{{}, time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 7, 3, 4, 5, 6789, zone), time.Now()}
	for range 10000 {
		times = append(times, time.Unix(rand.Int64N(253402300800), rand.Int64N(1e9)).In(zone))
	}
	for _, at := range times {
		if got, want := FormatTime(at), at.UTC().Format(TimeLayout); got != want {
			t.Fatalf("FormatTime(%v) = %s, want %s", at, got, want)
		}
	}
}
