package main

import (
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	out, _, err := runCodes(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "promocodes ") || !strings.Contains(out, "go1.") {
		t.Errorf("version = %q, want \"promocodes <version> ... go1.x\"", out)
	}
	out, _, err = runCodes(t, "--version")
	if err != nil || !strings.HasPrefix(out, "promocodes ") {
		t.Errorf("--version = %q, %v", out, err)
	}
}
