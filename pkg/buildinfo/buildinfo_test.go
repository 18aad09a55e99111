package buildinfo_test

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/buildinfo"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/promocodes/promocodes", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-30T18:00:00Z"},
			{Key: "vcs.modified", Value: "true"}}}
	in := buildinfo.FromBuildInfo(bi)
	if in.Revision != "0123456789abcdef0123" || !in.Dirty || in.Time != "2026-11-30T18:00:00Z" || in.Module != bi.Main.Path {
		t.Errorf("FromBuildInfo = %+v", in)
	}
	if got, want := in.Short(), "(devel)+0123456789ab-dirty"; got != want {
		t.Errorf("Short = %q, want %q", got, want)
	}
	if s := in.String(); !strings.Contains(s, "revision 0123456789abcdef0123") || !strings.Contains(s, "dirty") {
		t.Errorf("String = %q", s)
	}

	rel := buildinfo.FromBuildInfo(&debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.modified", Value: "false"}}})
	if rel.Short() != "v1.4.0" || rel.Dirty {
		t.Errorf("release build = %+v, Short %q", rel, rel.Short())
	}
}

// TestReadInTest: a test binary has build information too (no VCS stamp).
func TestReadInTest(t *testing.T) {
	if in := buildinfo.Read(); in.GoVersion == "" {
		t.Errorf("Read = %+v, want at least the Go version", in)
	}
}

// Go 1.24+ puts "+dirty" in the pseudo-version of a dirty tree; the short
// form must not say it twice ("+dirty-dirty", seen in the console footer).
func TestShortDirtyPseudoVersion(t *testing.T) {
	in := buildinfo.FromBuildInfo(&debug.BuildInfo{GoVersion: "go1.26.8",
		Main:     debug.Module{Path: "github.com/promocodes/promocodes", Version: "v0.0.0-20261130202626-19baed0cd6c4+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "19baed0cd6c4605dbcf0786425dc1666a9e49adb"}, {Key: "vcs.modified", Value: "true"}}})
	if got, want := in.Short(), "v0.0.0-20261130202626-19baed0cd6c4+dirty"; got != want {
		t.Fatalf("Short() = %q, want %q", got, want)
	}
	if s := in.String(); strings.Count(s, "dirty") != 1 {
		t.Fatalf("String() = %q: says dirty %d times", s, strings.Count(s, "dirty"))
	}
}
