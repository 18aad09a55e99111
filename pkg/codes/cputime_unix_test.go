//go:build unix

package codes

import "syscall"

// processCPU returns the process's user+system CPU time in seconds, so
// benchmarks can report a rate that time-slicing on a shared machine does
// not distort (it still counts a slowed core, e.g. a busy hyperthread sibling).
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
