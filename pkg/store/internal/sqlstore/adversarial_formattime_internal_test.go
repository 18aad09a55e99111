//go:build integration

package sqlstore

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestAdversarialFormatTime: FormatTime against time.Format on the edges
// the random test of FormatTime does not reach (years 0 to 1969, single
// digits anywhere, nanoseconds that round up at the microsecond, zones with
// odd offsets that move the date across a year, monotonic readings), and
// SQL's text order of the results against the instants' order: SQLite
// compares stored times as text.
func TestAdversarialFormatTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	zones := []*time.Location{time.UTC, time.FixedZone("w", -(11*3600 + 59*60)), time.FixedZone("e", 14*3600+45*60)}
	minT, maxT := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	lo, hi := minT.Unix(), maxT.Unix()
	times := []time.Time{minT, maxT, time.Now(), time.Now().Add(time.Hour), // monotonic readings
		time.Date(999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 999999000, time.UTC), time.Date(1900, 2, 28, 0, 0, 0, 1000, time.UTC),
		time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC).In(zones[2]), time.Date(2027, 1, 1, 0, 10, 0, 0, time.UTC).In(zones[1])}
	for range 20000 {
		at := time.Unix(lo+rng.Int64N(hi-lo), rng.Int64N(1e9)).In(zones[rng.IntN(len(zones))])
		if rng.IntN(4) == 0 {
			at = at.Truncate(time.Second).Add(time.Duration(rng.IntN(10)) * time.Microsecond * 100000)
		}
		times = append(times, at)
	}
	for i, at := range times {
		got, want := FormatTime(at), at.UTC().Format(TimeLayout)
		if got != want {
			t.Fatalf("FormatTime(%v) = %s, want %s", at, got, want)
		}
		prev := times[(i+len(times)-1)%len(times)]
		a, b := prev.Truncate(time.Microsecond), at.Truncate(time.Microsecond) // what the store keeps
		if (a.Before(b)) != (FormatTime(prev) < got) || a.Equal(b) != (FormatTime(prev) == got) {
			t.Fatalf("text order of %s and %s is not the order of %v and %v", FormatTime(prev), got, prev, at)
		}
	}
	t.Logf("adversarial: FormatTime edges and text order [sqlite]: held on %d times (years 0-9999, zones, monotonic)", len(times))
}
