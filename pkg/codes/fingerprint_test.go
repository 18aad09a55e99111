package codes

import (
	"strings"
	"testing"
)

func TestKeyFingerprint(t *testing.T) {
	a, b := []byte("0123456789abcdef0123456789abcdef"), []byte("0123456789abcdef0123456789abcdeF")
	fa, fb := KeyFingerprint(a), KeyFingerprint(b)
	if len(fa) != 16 || strings.Trim(fa, "0123456789abcdef") != "" {
		t.Fatalf("fingerprint %q: want 16 hex characters", fa)
	}
	if fa != KeyFingerprint(a) {
		t.Fatal("fingerprint is not deterministic")
	}
	if fa == fb {
		t.Fatal("keys that differ in one bit share a fingerprint")
	}
	if strings.Contains(fa, "0123456789abcdef") || strings.Contains(string(a), fa) {
		t.Fatal("fingerprint contains the key")
	}
}
