//go:build !race

package redemption_test

const raceEnabled = false
