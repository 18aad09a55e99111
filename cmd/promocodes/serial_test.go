package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// The serial style in the CLI: preview shows the known-answer codes and the
// capacity advice in tail length and serial digits; check verifies the check
// character offline and, with the secret, the tail; create sends the format.
func TestCodesSerialPreviewCheckCreate(t *testing.T) {
	t.Setenv("PROMOCODES_CODES_SECRET", "")
	const secret = "0123456789abcdef0123456789abcdef"
	spring := []string{"--style", "serial", "--serial-digits", "6", "--tail-length", "5", "--prefix", "SPRING-", "--separator", "-"}
	out, _, err := runCodes(t, append(append([]string{"codes", "preview"}, spring...), "--count", "2", "--for", "100000",
		"--secret", secret)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SPRING-000001-EADP8H  SPRING000001EADP8H", "SPRING-000002-N5NNW4",
		"serials:  999,999 (6 digits), tails: 28,629,151 (31^5)", "1 in 28,629,151", "fits the limit 1e-06",
		"shortest tail length that fits: 5", "fewest serial digits for 100,000 codes: 6"} {
		if !strings.Contains(out, want) {
			t.Errorf("preview lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCodes(t, append(append([]string{"codes", "preview"}, spring...), "--for", "10000000",
		"--max-density", "1e-9", "--secret", secret)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"does NOT fit", "use a tailLength of at least 7", "use at least 8 serialDigits",
		"shortest tail length that fits: 7", "fewest serial digits for 10,000,000 codes: 8"} {
		if !strings.Contains(out, want) {
			t.Errorf("preview at 1e-9 for 10,000,000 lacks %q:\n%s", want, out)
		}
	}
	_, _, err = runCodes(t, "codes", "preview", "--style", "serial", "--tail-length", "4", "--for", "1000")
	if err == nil || !strings.Contains(err.Error(), "format.tailLength: 4 is too short for the density limit 1e-06: use a tailLength of at least 5") {
		t.Errorf("tail 4: %v", err)
	}

	check := func(code string, extra ...string) (string, error) {
		out, _, err := runCodes(t, append(append([]string{"codes", "check", code}, spring...), extra...)...)
		return strings.TrimSpace(out), err
	}
	if out, err := check("spring 000001 eadp8h"); err != nil || out != "SPRING000001EADP8H" {
		t.Errorf("check a valid code: %q, %v", out, err)
	}
	var ex *exitError
	if _, err := check("SPRING-000001-EADQ8H"); !errors.As(err, &ex) || ex.code != 1 || !strings.Contains(ex.msg, "check character") {
		t.Errorf("check a typo: %v", err)
	}
	// A forged tail with a fitting check character passes offline, and is
	// refused once the secret is given.
	l, err := codes.NewLayout(promo.Format{Style: promo.StyleSerial, Charset: "alnum", SerialDigits: 6, TailLength: 5, Prefix: "SPRING-"})
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte("SPRING000001EADP9H")
	for _, c := range []byte(l.Charset() + "01") {
		forged[len(forged)-1] = c
		if shape, err := l.Check(string(forged)); shape && err == nil {
			break
		}
	}
	if out, err := check(string(forged)); err != nil || out != string(forged) {
		t.Errorf("a forged tail without the secret: %q, %v (only the check character can be checked)", out, err)
	}
	if _, err := check(string(forged), "--secret", secret); !errors.As(err, &ex) || ex.code != 1 ||
		!strings.Contains(ex.msg, "tail does not belong to the serial") {
		t.Errorf("a forged tail with the secret: %v", err)
	}
	if out, err := check("SPRING-000001-EADP8H", "--secret", secret); err != nil || out != "SPRING000001EADP8H" {
		t.Errorf("a valid code with the secret: %q, %v", out, err)
	}
	if _, err := check("X", "--length", "10"); !errors.As(err, &ex) || ex.code != 2 || !strings.Contains(ex.msg, "format.length") {
		t.Errorf("--length with style serial: %v", err)
	}
	if _, _, err := runCodes(t, "codes", "check", "X", "--tail-length", "5"); !errors.As(err, &ex) || ex.code != 2 ||
		!strings.Contains(ex.msg, "format.tailLength") {
		t.Errorf("--tail-length with style random: %v", err)
	}

	url := apiServer(t)
	out, _, err = runCodes(t, append([]string{"promotions", "create", "--api-url", url, "--name", "spring", "--count", "300"},
		spring...)...)
	if err != nil || out != "1\n" {
		t.Fatalf("create: %q, %v", out, err)
	}
	out, _, err = runCodes(t, "promotions", "status", "1", "--json", "--api-url", url)
	if err != nil || !strings.Contains(out, `"style":"serial"`) || !strings.Contains(out, `"serialDigits":6`) ||
		!strings.Contains(out, `"tailLength":5`) || strings.Contains(out, `"length"`) {
		t.Errorf("status: %s, %v", out, err)
	}
}
