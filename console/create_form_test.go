package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestNewFormCreatesAVanityPromotion: the new-promotion form with a vanity
// code leads to the new promotion's page (the API answers a vanity create
// 201 completed, a generated one 202 pending; both are successes).
func TestNewFormCreatesAVanityPromotion(t *testing.T) {
	s := newSite(t, true, true)
	s.get("/console/new")
	form := url.Values{"kind": {"vanity"}, "name": {"vanity form"}, "code": {"FORMVANITY7"}, "maxUsagePerCode": {"5"},
		"perUserLimit": {"1"}, "nonce": {"v1"}}
	resp, body := s.post("/console/new", form, http.Header{"Origin": {s.srv.URL}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/promotions/") {
		t.Fatalf("vanity through the form = %d → %q:\n%.600s", resp.StatusCode, loc, body)
	}
	if _, page := s.get(loc); !strings.Contains(page, "vanity form") || !strings.Contains(page, "completed") {
		t.Errorf("the promotion page lacks the vanity promotion:\n%.800s", page)
	}
}
