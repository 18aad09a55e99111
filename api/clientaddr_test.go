package api

import (
	"net/http"
	"testing"
)

// A forwarded address counts only from a trusted proxy, and then the
// rightmost one that is not a proxy itself (an earlier one is the client's
// own claim).
func TestClientAddress(t *testing.T) {
	c, err := newClientAddress([]string{"10.0.0.0/8"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ peer, xff, want string }{
		{"198.51.100.1:1234", "", "198.51.100.1"},
		{"198.51.100.1:1234", "203.0.113.9", "198.51.100.1"}, // not a proxy: its header is ignored
		{"10.1.2.3:1234", "203.0.113.9", "203.0.113.9"},
		{"10.1.2.3:1234", "1.1.1.1, 203.0.113.9, 10.9.9.9", "203.0.113.9"}, // 1.1.1.1 is the client's claim
		{"10.1.2.3:1234", "", "10.1.2.3"},
		{"10.1.2.3:1234", "garbage", "10.1.2.3"},
		{"[2001:db8::1]:443", "203.0.113.9", "2001:db8::1"},
	} {
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := c.of(r); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %q, want %q", tc.peer, tc.xff, got, tc.want)
		}
	}
	for _, bad := range [][2][]string{{{"not-an-address"}, nil}, {nil, {"X-Forwarded-For"}}} {
		if _, err := newClientAddress(bad[0], bad[1]); err == nil {
			t.Errorf("newClientAddress(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
