//go:build race

package redemption

// raceBuild: the race detector makes loops ~10x slower; big loops shrink.
const raceBuild = true
