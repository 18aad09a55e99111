//go:build integration

package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/console"
	"github.com/promocodes/promocodes/pkg/kafka"
)

// hostile is text a stranger controls (a promotion's name typed by a
// careless admin, a shopper's user id, order id and metadata, a rollback or
// revoke reason, a query string) written to break out of every place a page
// shows it: an element, a quoted or unquoted attribute, a URL, a script's
// JSON, a template.
const hostile = `<script>alert(1)</script>"><img src=x onerror=alert(2)>'-alert(3)-'{{.}}javascript:alert(4)`

// markup is what hostile text would leave in a page if it were not escaped
// for where it is shown.
var markup = []string{"<script>alert", "<img src=x", `"javascript:`, `'javascript:`, "</script><img"}

// An attacker's text is shown on every page that shows it (the list, a
// promotion's page with its audit log and top users, the redemption log
// and its filter, a code's page, a user's page, analytics and its chart
// data, edit, the error pages that echo a query, the topic browser with
// headers and keys) as text: escaped for its context, never markup; and
// each page carries the console's Content-Security-Policy (no inline
// script runs even if something slipped through).
func TestAdversarialConsoleHostileText(t *testing.T) {
	r := newOpsRig(t)
	s := r.site
	body, _ := json.Marshal(map[string]any{"name": hostile, "code": "HOSTILEVANITY", "maxUsagePerCode": 10, "perUserLimit": 0})
	id := s.createPromotion(string(body))
	other := s.createPromotion(`{"name":"plain","code":"PLAINVANITY","maxUsagePerCode":10}`)
	red, _ := json.Marshal(map[string]any{"userId": hostile, "orderId": hostile, "metadata": map[string]string{hostile: hostile}})
	status, m := s.apiCall(http.MethodPost, "/v1/codes/HOSTILEVANITY/redemptions", string(red), http.Header{"Idempotency-Key": {"h-1"}})
	if status != http.StatusCreated {
		t.Fatalf("redeem with hostile user, order and metadata = %d %v", status, m)
	}
	rid := m["id"].(string)
	s.redeemFor("HOSTILEVANITY", "javascript:alert(5)", "h-2")
	reason, _ := json.Marshal(map[string]string{"reason": hostile})
	if status, m := s.apiCall(http.MethodPost, "/v1/redemptions/"+rid+"/rollback", string(reason), nil); status != http.StatusOK {
		t.Fatalf("rollback with a hostile reason = %d %v", status, m)
	}
	if status, m := s.apiCall(http.MethodPost, "/v1/codes/PLAINVANITY/revoke", string(reason), nil); status != http.StatusOK {
		t.Fatalf("revoke with a hostile reason = %d %v", status, m)
	}
	hostileEvent := kafka.Message{Topic: r.ops.RedemptionsTopic, Key: []byte(hostile), Value: []byte(hostile)}
	hostileEvent.SetHeader("x-error", hostile)
	r.publish(hostileEvent)

	q := url.QueryEscape(hostile)
	pages := []string{"/console/", "/console/rows", "/console/?name=" + q, "/console/promotions/" + id,
		"/console/promotions/" + other, "/console/promotions/" + id + "/redemptions",
		"/console/promotions/" + id + "/redemptions?user=" + q, "/console/codes/HOSTILEVANITY",
		"/console/users/" + url.PathEscape(hostile), "/console/users/" + url.PathEscape("javascript:alert(5)"),
		"/console/analytics?p=" + id, "/console/analytics?p=" + id + "&p=" + other, "/console/analytics?name=" + q,
		"/console/promotions/" + id + "/edit", "/console/promotions/" + id + "/delete",
		"/console/promotions/" + id + "?bucket=" + q, "/console/find?q=" + q, "/console/codes/" + url.PathEscape(hostile),
		"/console/ops/topics?topic=redemptions", "/console/ops/topics?topic=" + q, "/console/" + url.PathEscape(hostile)}
	shown := 0
	for _, p := range pages {
		resp, page := s.get(p)
		if resp.StatusCode == http.StatusSeeOther {
			resp, page = s.get(resp.Header.Get("Location"))
		}
		csp := resp.Header.Get("Content-Security-Policy")
		var leaked []string
		for _, mk := range markup {
			if strings.Contains(page, mk) {
				leaked = append(leaked, mk)
			}
		}
		echoed := strings.Contains(page, "alert(2)")
		if echoed {
			shown++
		}
		if len(leaked) > 0 || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s (%d): markup %q in the page, CSP %q", p, resp.StatusCode, leaked, csp)
		}
		t.Logf("adversarial: hostile text on %s [sqlite]: %d, text shown escaped %v, markup found %d, CSP script-src 'self'",
			truncated(p), resp.StatusCode, echoed, len(leaked))
	}
	if shown < len(pages)/2 {
		t.Errorf("the hostile text appears (escaped) on only %d of %d pages: the test is not looking where it is shown", shown, len(pages))
	}
}

func truncated(s string) string {
	if len(s) > 70 {
		return fmt.Sprintf("%s… (%d bytes)", s[:70], len(s))
	}
	return s
}

// Another site's forms (a cross-site POST with the admin's cookie, which a
// SameSite=Strict cookie would not even carry) are refused on every form the
// console takes, with a page, and change nothing; and the redirect after a
// sign-in or a rollback never leaves the console, whatever target the form
// names.
func TestAdversarialConsoleCrossSiteFormsAndRedirects(t *testing.T) {
	s := newSite(t, true, true)
	id := s.createPromotion(`{"name":"target","code":"TARGET42","maxUsagePerCode":10}`)
	rid := s.redeemFor("TARGET42", "victim", "x-1")
	forms := map[string]url.Values{
		"/console/promotions/" + id + "/active":     {"active": {"false"}},
		"/console/promotions/" + id + "/edit":       {"name": {"pwned"}},
		"/console/promotions/" + id + "/delete":     {"confirm": {"yes"}},
		"/console/promotions/" + id + "/revoke":     {"code": {"TARGET42"}, "reason": {"x"}},
		"/console/codes/TARGET42/revoke":            {"reason": {"x"}},
		"/console/redemptions/" + rid + "/rollback": {"reason": {"x"}},
		"/console/new":        {"kind": {"vanity"}, "name": {"pwned"}, "code": {"PWNED42"}},
		"/console/ops/replay": {"action": {"confirm"}},
		"/console/signout":    {},
	}
	for _, h := range []http.Header{{"Origin": {"https://evil.example"}}, {"Sec-Fetch-Site": {"cross-site"}},
		{"Origin": {"null"}}, {"Sec-Fetch-Site": {"same-site"}, "Origin": {"https://sub.evil.example"}}} {
		refused := 0
		for path, form := range forms {
			resp, page := s.post(path, form, h)
			if resp.StatusCode == http.StatusForbidden && isHTML(resp) && strings.Contains(page, "another site") {
				refused++
			} else {
				t.Errorf("cross-site POST %s with %v = %d %s, want a 403 page", path, h, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		}
		t.Logf("adversarial: cross-site form with %v [sqlite]: %d of %d forms refused with a 403 page", h, refused, len(forms))
	}
	status, m := s.apiCall(http.MethodGet, "/v1/promotions/"+id, "", nil)
	if status != http.StatusOK || m["name"] != "target" || m["active"] != true || m["status"] != "completed" {
		t.Errorf("after the cross-site forms the promotion is %d %v, want it unchanged", status, m)
	}

	// The targets go to the handlers directly (a client would refuse to
	// send some of them, or to read the answer's Location); a sign-in needs
	// a console that is not open, each from its own address (the limit).
	closed := newSite(t, false, true)
	base, _ := url.Parse("http://console.example")
	for i, target := range []string{"//evil.example/", "https://evil.example/console/", "/console//evil.example",
		`/console/\evil.example`, "/console/\t/evil.example", "/console/\r\nLocation: https://evil.example/",
		"/console/../../evil", "/console/%2e%2E/%2e%2e/evil", `/\/evil.example`, "/console/%2F%2Fevil.example", "javascript:alert(1)", "/console/@evil.example"} {
		for _, step := range []struct {
			c    *console.Console
			path string
			form url.Values
		}{
			{s.console, "/console/redemptions/" + rid + "/rollback", url.Values{"reason": {"x"}, "back": {target}}},
			{closed.console, "/console/signin", url.Values{"token": {adminToken}, "next": {target}}},
		} {
			req := httptest.NewRequest(http.MethodPost, base.String()+step.path, strings.NewReader(step.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.RemoteAddr = fmt.Sprintf("198.51.100.%d:1000", i+1)
			for _, c := range s.c.Jar.Cookies(&url.URL{Scheme: "http", Host: strings.TrimPrefix(s.srv.URL, "http://"), Path: "/console/"}) {
				req.AddCookie(c)
			}
			rec := httptest.NewRecorder()
			step.c.ServeHTTP(rec, req)
			raw := rec.Header().Get("Location")
			loc, err := base.Parse(raw)
			if rec.Code != http.StatusSeeOther || err != nil || loc.Host != base.Host || !strings.HasPrefix(loc.Path, "/console/") ||
				strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Errorf("%s with target %q = %d → %q (%v), want a redirect into the console, no control characters",
					step.path, target, rec.Code, raw, err)
			}
			t.Logf("adversarial: redirect target %q after %s [sqlite]: %d → %q", target, step.path[strings.LastIndex(step.path, "/")+1:],
				rec.Code, raw)
		}
	}
}
