package redemption_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// FuzzRedeemRequest: whatever the path's code and the body, the API answers
// 201 or a 4xx problem document, and only a 201 uses the code.
func FuzzRedeemRequest(f *testing.F) {
	for _, seed := range []struct{ code, body string }{
		{"FUZZ2026", `{"userId":"u"}`},
		{"fuzz-2026", `{"userId":"u","orderId":"o","metadata":{"a":[1,{"b":null}]}}`},
		{"FUZZ2026", `{"userId":"u","metadata":"x"}`},
		{"FUZZ2026", `{"userId":"\u0000"}`},
		{"\x00\xff", `{}`},
		{strings.Repeat("Z", 300), `{"userId":"u"}`},
		{"FUZZ2026", `{"userId":"u","userId":"v"}`},
		{"FUZZ2026", `[]`},
		{"FUZZ2026", `{"userId":"u"}{"userId":"v"}`},
	} {
		f.Add(seed.code, seed.body)
	}
	// One server for the whole run (a database per input would make fuzzing
	// crawl); its code allows a billion uses.
	h := newHarnessOn(f, openStore(f, "sqlite", 4), noGuessLimit, zaptest.NewLogger(f, zaptest.Level(zap.ErrorLevel)))
	h.vanity("FUZZ2026", 1_000_000_000, 0)
	f.Fuzz(func(t *testing.T, code, body string) {
		h.t = t
		before := h.used([]string{"FUZZ2026"})
		r, err := h.try("POST", "/v1/codes/"+url.PathEscape(code)+"/redemptions", redeemToken, body, nil)
		if err != nil {
			t.Fatalf("transport: %v", err)
		}
		after := h.used([]string{"FUZZ2026"})
		switch {
		case r.status == http.StatusCreated:
			if after != before+1 {
				t.Fatalf("201 but used went %d → %d", before, after)
			}
		case r.status >= 400 && r.status < 500:
			reasonOf(t, r) // a problem document
			if after != before {
				t.Fatalf("%d but used went %d → %d", r.status, before, after)
			}
		default:
			t.Fatalf("code %q body %q: %d %s", code, body, r.status, r.body)
		}
	})
}
