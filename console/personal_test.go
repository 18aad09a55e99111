package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Personal codes in the console: the promotion page shows the eligibility
// rules and issues codes to a customer (a refusal inline); the user page
// lists the codes issued to them; analytics shows redemptions by segment.
func TestPersonalCodesInTheConsole(t *testing.T) {
	s := newSite(t, true, true)
	id := s.createPromotion(`{"name":"personal","codeCount":3,"format":{"charset":"alnum","length":10},` +
		`"perUserLimit":0,"eligibility":{"segments":["vip"],"countries":["DE"]}}`)
	s.generate(id, 0)
	_, page := s.get("/console/promotions/" + id)
	if !strings.Contains(page, `id="issue-form"`) || !strings.Contains(page, `segments <code>vip</code>; countries DE;`) {
		t.Fatalf("promotion page lacks the issue form or the rules:\n%.4000s", page)
	}
	page = s.actOK(id, "issue", url.Values{"userId": {"ann"}, "count": {"2"}, "nonce": {"n1"}}, "Issued to ann: ")
	resp, body := s.act(id, "issue", url.Values{"userId": {"bob"}, "count": {"2"}, "nonce": {"n2"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, `id="err-issue"`) {
		t.Errorf("issuing 2 of 1 left = %d, want 409 inline", resp.StatusCode)
	}
	_, user := s.get("/console/users/ann")
	if !strings.Contains(user, `id="user-issued"`) || strings.Count(user, ">redeemable</td>") != 2 {
		t.Errorf("user page lacks ann's 2 issued codes:\n%.3000s", user)
	}
	code := s.firstCode(id)
	status, m := s.apiCall(http.MethodPost, "/v1/codes/"+code+"/redemptions",
		`{"userId":"zed","segments":["vip","new"],"country":"de","order":{"amount":"80","currency":"EUR","discount":"8"}}`, nil)
	if status != http.StatusCreated && !(status == http.StatusForbidden && m["reason"] == "not_your_code") {
		t.Fatalf("redeem = %d %v", status, m)
	}
	if status == http.StatusForbidden {
		// The first code went to ann: redeem hers as ann.
		if status, m = s.apiCall(http.MethodPost, "/v1/codes/"+code+"/redemptions",
			`{"userId":"ann","segments":["vip","new"],"country":"de","order":{"amount":"80","currency":"EUR","discount":"8"}}`, nil); status != http.StatusCreated {
			t.Fatalf("redeem as ann = %d %v", status, m)
		}
	}
	_, an := s.get("/console/analytics?p=" + id)
	if !strings.Contains(an, `id="segments"`) || !strings.Contains(an, "100.0 %") || !strings.Contains(an, "80.00 EUR") {
		t.Errorf("analytics lacks the segments table:\n%.6000s", an)
	}
}
