//go:build integration

package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

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
