package promo

import (
	"strings"
	"testing"
)

func TestScopedKey(t *testing.T) {
	long := strings.Repeat("k", 200)
	for _, c := range []struct{ owner, key string }{{"bob", "order-1001"}, {"mallory", "order-1001"},
		{strings.Repeat("u", 200), long}, {"", "k"}} {
		s := ScopedKey(c.owner, c.key)
		if ClientKey(s) != c.key {
			t.Errorf("ClientKey(ScopedKey(%q, %q)) = %q", c.owner, c.key, ClientKey(s))
		}
		if len(s) > len(c.key)+23 {
			t.Errorf("ScopedKey(%q, %q) is %d characters: more than the key and 23", c.owner, c.key, len(s))
		}
	}
	if ScopedKey("bob", "order-1001") == ScopedKey("mallory", "order-1001") {
		t.Error("two owners' keys are recorded under one")
	}
	if ScopedKey("bob", "k") != ScopedKey("bob", "k") {
		t.Error("one owner's key is recorded under two")
	}
	if ScopedKey("bob", "") != "" {
		t.Error("no key scoped to something")
	}
	if ClientKey("order-1001") != "order-1001" {
		t.Error("an unscoped key changed")
	}
}
