package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runAwk runs one of the Makefile's awk filters on input.
func runAwk(t *testing.T, script, input string, vars ...string) string {
	t.Helper()
	awk, err := exec.LookPath("awk")
	if err != nil {
		t.Skip("awk is not installed, so the Makefile's output filters cannot be checked here")
	}
	args := []string{"-f", filepath.Join("..", "..", ".ci", script)}
	for _, v := range vars {
		args = append(args, "-v", v)
	}
	cmd := exec.Command(awk, args...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("awk -f %s: %v\n%s", script, err, out)
	}
	return string(out)
}

// TestTestFilterShowsEachSkipReasonOnce: `make test` shows a skipped
// subtest's reason with it (go test prints the parent's result in between),
// each reason once with a count of the repeats at the end, and a failure
// with its log; passing tests' logs are dropped.
func TestTestFilterShowsEachSkipReasonOnce(t *testing.T) {
	const reason = "PostgreSQL tests skipped: PROMOCODES_TEST_POSTGRES_DSN is not set"
	var in strings.Builder
	for i := range 40 {
		fmt.Fprintf(&in, "=== RUN   TestH%d\n=== RUN   TestH%d/sqlite\n=== RUN   TestH%d/postgres\n", i, i, i)
		fmt.Fprintf(&in, "    h_test.go:%d: %s\n", 10+i, reason)
		fmt.Fprintf(&in, "--- PASS: TestH%d (0.10s)\n    --- PASS: TestH%d/sqlite (0.10s)\n    --- SKIP: TestH%d/postgres (0.00s)\n", i, i, i)
	}
	in.WriteString("=== RUN   TestBroken\n    b_test.go:3: want 3, got 4\n--- FAIL: TestBroken (0.00s)\n")
	in.WriteString("=== RUN   TestFine\n    f_test.go:9: noise\n--- PASS: TestFine (0.00s)\nFAIL\nFAIL\tpkg\t1.2s\n")
	out := runAwk(t, "testfilter.awk", in.String())
	if n := strings.Count(out, reason); n != 2 { // once with its test, once in the count line
		t.Errorf("the skip reason appears %d times, want 2:\n%s", n, out)
	}
	for _, want := range []string{"h_test.go:10: " + reason + "\n    --- SKIP: TestH0/postgres",
		"skipped 39 more tests for the reason shown above: " + reason,
		"b_test.go:3: want 3, got 4\n--- FAIL: TestBroken", "FAIL\tpkg\t1.2s"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "noise") || strings.Contains(out, "TestH1/postgres") {
		t.Errorf("output shows a passing test's log or a repeated skip:\n%s", out)
	}
}

// TestProgressFilter: a cold build's package list becomes a line every 25
// packages and a total; errors pass through at once; a warm build prints
// nothing.
func TestProgressFilter(t *testing.T) {
	var in strings.Builder
	for i := range 60 {
		fmt.Fprintf(&in, "example.com/mod/p%d\n", i)
		if i == 30 {
			in.WriteString("# example.com/mod/p30\n./x.go:3:1: undefined: y\n")
		}
	}
	out := runAwk(t, "progress.awk", in.String(), "what=compile")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"compile: 1 package compiled (example.com/mod/p0)", "compile: 25 packages compiled (example.com/mod/p24)",
		"# example.com/mod/p30", "./x.go:3:1: undefined: y", "compile: 50 packages compiled (example.com/mod/p49)",
		"compile: 60 packages compiled"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress output:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	if out := runAwk(t, "progress.awk", ""); out != "" {
		t.Errorf("a warm build printed %q", out)
	}
}
