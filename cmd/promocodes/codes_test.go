package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func runCodes(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func TestCodesPreviewAndCheck(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	out, _, err := runCodes(t, "codes", "preview", "--prefix", "WNTR-", "--separator", "-", "--group-size", "4",
		"--count", "3", "--for", "5000000", "--secret", secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"819,628,286,980,801 codes", "fits the limit 1e-06", "shortest length that fits: 9"} {
		if !strings.Contains(out, want) {
			t.Errorf("preview output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, secret) {
		t.Error("preview prints the secret")
	}
	var sample, canonical string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "  WNTR-") {
			if f := strings.Fields(line); len(f) == 2 {
				sample, canonical = f[0], f[1]
			}
			break
		}
	}
	if len(sample) != len("WNTR-XXXX-XXXX-XXX") || canonical != strings.ReplaceAll(sample, "-", "") {
		t.Fatalf("no sample code (display, canonical) in:\n%s", out)
	}
	flags := []string{"--prefix", "WNTR-", "--separator", "-", "--group-size", "4"}
	for _, typed := range []string{strings.ToLower(sample), canonical, " " + strings.ReplaceAll(sample, "-", "_ ") + " "} {
		out, _, err = runCodes(t, append([]string{"codes", "check", typed}, flags...)...)
		if err != nil || strings.TrimSpace(out) != canonical {
			t.Errorf("check %q: out %q, err %v; want %s", typed, out, err, canonical)
		}
	}
	// A swapped pair is invalid: exit status 1 with the reason.
	bad := []byte(sample)
	bad[5], bad[6] = bad[6], bad[5]
	if bad[5] == bad[6] {
		bad[5], bad[6] = bad[6], bad[7]
	}
	_, _, err = runCodes(t, append([]string{"codes", "check", string(bad)}, flags...)...)
	var ex *exitError
	if !errors.As(err, &ex) || ex.code != 1 || !strings.Contains(ex.msg, "invalid code") {
		t.Errorf("check %q: %v", bad, err)
	}
	_, _, err = runCodes(t, "codes", "check", "X", "--length", "2")
	if !errors.As(err, &ex) || ex.code != 2 || !strings.Contains(ex.msg, "format.length") {
		t.Errorf("bad format: %v", err)
	}
	_, _, err = runCodes(t, "codes", "check", "X", "--charset", "abcdABCD")
	if !errors.As(err, &ex) || ex.code != 2 || !strings.Contains(ex.msg, "case-insensitively") {
		t.Errorf("case-sensitive charset: %v", err)
	}
}
