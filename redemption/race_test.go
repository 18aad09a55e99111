//go:build race

package redemption_test

// raceEnabled: the race detector slows every request ~10×.
const raceEnabled = true
