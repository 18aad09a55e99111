//go:build !race

package redemption

const raceBuild = false
