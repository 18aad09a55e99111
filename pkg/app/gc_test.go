package app

import (
	"os"
	"runtime/debug"
	"testing"
)

// TuneGC sets the API's GC percent, and leaves one that GOGC sets alone.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100)) // this process's own, restored
	if v, ok := os.LookupEnv("GOGC"); ok {
		defer os.Setenv("GOGC", v)
	} else {
		defer os.Unsetenv("GOGC")
	}

	os.Unsetenv("GOGC")
	debug.SetGCPercent(100)
	TuneGC()
	if got := debug.SetGCPercent(100); got != APIGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, APIGCPercent)
	}

	os.Setenv("GOGC", "150")
	debug.SetGCPercent(150) // as the runtime read it at start
	TuneGC()
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GOGC=150: GC percent %d, want 150 left alone", got)
	}
}
