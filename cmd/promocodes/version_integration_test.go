//go:build integration

package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/buildinfo"
)

// TestVersionOfBuiltBinary: a binary built from the git work tree (make
// build) carries its module, VCS revision and dirty flag; `version`,
// `version --json` and `--version` print them.
func TestVersionOfBuiltBinary(t *testing.T) {
	out, err := exec.Command(binary, "version", "--json").Output()
	if err != nil {
		t.Fatalf("%s version --json: %v", binary, err)
	}
	var in buildinfo.Info
	if err := json.Unmarshal(out, &in); err != nil {
		t.Fatalf("version --json %q: %v", out, err)
	}
	if in.Module != "github.com/promocodes/promocodes" || in.Version == "" || in.GoVersion == "" {
		t.Errorf("version --json = %+v, want the module, a version and the Go version", in)
	}
	if in.Revision == "" {
		t.Logf("no VCS revision stamped (built outside a git work tree?): %+v", in)
	} else if len(in.Revision) < 40 {
		t.Errorf("revision %q is not a full commit hash", in.Revision)
	}
	line, err := exec.Command(binary, "--version").Output()
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	if want := in.String(); strings.TrimSpace(string(line)) != want {
		t.Errorf("--version = %q, want %q", line, want)
	}
}
