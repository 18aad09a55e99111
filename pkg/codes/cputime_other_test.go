//go:build !unix

package codes

func processCPU() float64 { return 0 }
