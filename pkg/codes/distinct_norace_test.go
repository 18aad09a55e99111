//go:build !race

package codes

// distinctCount is how many consecutive codes TestTenMillionDistinct checks.
const distinctCount = 10_000_000
