//go:build race

package codes

// distinctCount is how many consecutive codes TestTenMillionDistinct checks;
// the race build is too slow for 10M on 2 cores (see distinct_test.go).
const distinctCount = 1_000_000
