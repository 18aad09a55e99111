package app

import (
	"os"
	"runtime/debug"
)

// APIGCPercent is the garbage collector's target percent in a process that
// serves the API (promocodes api and dev), unless GOGC is set.
//
// The API's live heap is small when it is quiet and grows with the
// connections it holds: in a burst of 10,000 connections most of the heap is
// live (each held request's state and buffers), so at the default 100 the
// collector ran 9 times in a burst, scanning ~20,000 goroutine stacks each
// time, to free little. At 300 it ran 3 times; the API's CPU per burst fell
// by 4-5 % and its RSS peak did not rise (docs/performance.md,
// "Bursts"). A quiet API's heap may grow to four times its live size instead
// of two: a few tens of MiB. GOMEMLIMIT, which the shipped manifests set
// below the container's limit, still bounds the heap as the limit nears.
const APIGCPercent = 300

// TuneGC sets the process's GC percent to APIGCPercent unless the
// environment sets GOGC. Call it once, at the start of a process that serves
// the API.
func TuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(APIGCPercent)
	}
}
