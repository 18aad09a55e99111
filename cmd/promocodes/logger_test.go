package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Log colours only on a terminal: a file (or a pipe, as under systemd,
// Kubernetes or `2>log`) gets plain levels, and NO_COLOR turns them off.
func TestColoursOnlyOnATerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if colours(f) {
		t.Error("colours(file) = true, want false")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if colours(w) {
		t.Error("colours(pipe) = true, want false")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		t.Setenv("NO_COLOR", "1")
		if colours(tty) {
			t.Error("colours(tty) with NO_COLOR = true, want false")
		}
	} else {
		t.Logf("no controlling terminal here (%v): the terminal case is not exercised", err)
	}
}
