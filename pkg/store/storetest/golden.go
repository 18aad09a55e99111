package storetest

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// EnvUpdateGolden, set to 1, makes GoldenStatements rewrite its file instead
// of comparing with it.
const EnvUpdateGolden = "PROMOCODES_UPDATE_GOLDEN"

// GoldenStatements pins a dialect's statement texts: every string field of
// stmts (its composed statements, walked field by field, maps in key order)
// and every text of extra (statements the dialect builds at run time, by
// name) must equal the golden file at path byte for byte. A dialect whose
// statements are composed from shared text (Compose, Rebind) then cannot
// change one without changing that file in the same diff, which matters
// most where no server runs the statements in the tests (SQL Server).
func GoldenStatements(t *testing.T, path string, stmts any, extra map[string]string) {
	t.Helper()
	got := map[string]string{}
	walkStrings(got, "", reflect.ValueOf(stmts))
	for name, q := range extra {
		got[name] = q
	}
	if os.Getenv(EnvUpdateGolden) == "1" {
		if err := os.WriteFile(path, []byte(formatGolden(got)), 0o644); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s (%s=1 writes it): %v", path, EnvUpdateGolden, err)
	}
	want := parseGolden(string(b))
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range got {
			if !yield(n) {
				return
			}
		}
	})
	for n := range want {
		if _, ok := got[n]; !ok {
			names = append(names, n)
		}
	}
	for _, n := range names {
		g, inGot := got[n]
		w, inWant := want[n]
		switch {
		case !inWant:
			t.Errorf("%s: a statement the golden file lacks:\n%s", n, g)
		case !inGot:
			t.Errorf("%s: in the golden file, no longer made", n)
		case g != w:
			t.Errorf("%s changed:\n got %q\nwant %q", n, g, w)
		}
	}
	if t.Failed() {
		t.Logf("a deliberate change of statement text: rerun with %s=1 and review the file's diff", EnvUpdateGolden)
	}
}

// walkStrings adds every string reachable from v to out, named by its path.
func walkStrings(out map[string]string, name string, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.Anonymous { // embedded: its fields are the outer's
				walkStrings(out, name, v.Field(i))
				continue
			}
			walkStrings(out, strings.TrimPrefix(name+"."+f.Name, "."), v.Field(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walkStrings(out, fmt.Sprintf("%s[%v]", name, k), v.MapIndex(k))
		}
	case reflect.String:
		out[name] = v.String()
	}
}

// The golden file: "=== name" lines, each followed by its text (which never
// holds such a line) and a blank line.
const goldenMark = "=== "

func formatGolden(texts map[string]string) string {
	var b strings.Builder
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range texts {
			if !yield(n) {
				return
			}
		}
	}) {
		b.WriteString(goldenMark + n + "\n" + texts[n] + "\n\n")
	}
	return b.String()
}

func parseGolden(s string) map[string]string {
	out := map[string]string{}
	for _, e := range strings.Split(strings.TrimSuffix(s, "\n\n"), "\n\n"+goldenMark) {
		name, text, _ := strings.Cut(strings.TrimPrefix(e, goldenMark), "\n")
		out[name] = text
	}
	return out
}
