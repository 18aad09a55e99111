// Package buildinfo tells which build of promocodes is running: the module
// version, the VCS revision and whether the work tree was dirty, read from
// the build information the Go toolchain embeds in every binary (no
// -ldflags needed). It is safe for concurrent use.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Info is what the binary knows about its own build.
type Info struct {
	Module    string `json:"module"`
	Version   string `json:"version"`  // module version, "(devel)" for a local build
	Revision  string `json:"revision"` // VCS commit, "" when built without VCS information
	Time      string `json:"time"`     // commit time, RFC 3339
	Dirty     bool   `json:"dirty"`    // built from a work tree with uncommitted changes
	GoVersion string `json:"goVersion"`
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown"}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts Info from the toolchain's build information.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Dirty = s.Value == "true"
		}
	}
	return in
}

// Short is the one-word version: "v1.2.3", or "(devel)+abcdef123456[-dirty]".
func (in Info) Short() string {
	v := in.Version
	if in.Revision != "" && (v == "(devel)" || v == "") {
		rev := in.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += "+" + rev
	}
	if in.dirtyUnstamped() {
		v += "-dirty"
	}
	return v
}

// String is the line `promocodes version` prints.
func (in Info) String() string {
	s := fmt.Sprintf("promocodes %s", in.Version)
	if in.Revision != "" {
		s += " revision " + in.Revision
	}
	if in.Time != "" {
		s += " (" + in.Time + ")"
	}
	if in.dirtyUnstamped() {
		s += " dirty"
	}
	return s + " " + in.GoVersion
}

// dirtyUnstamped reports a dirty tree that the version does not already
// say: Go 1.24+ stamps it into the pseudo-version itself
// ("v0.0.0-20261130202626-19baed0cd6c4+dirty"), and it is said once.
func (in Info) dirtyUnstamped() bool {
	return in.Dirty && !strings.HasSuffix(in.Version, "+dirty")
}
