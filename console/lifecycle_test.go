package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// apiCall calls the API directly (not through the console), as a shop or
// a script would.
func (s *site) apiCall(method, path, body string, header http.Header) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (s *site) createPromotion(body string) string {
	s.t.Helper()
	status, m := s.apiCall(http.MethodPost, "/v1/promotions", body, nil)
	if status != http.StatusAccepted && status != http.StatusCreated {
		s.t.Fatalf("create %s = %d %v", body, status, m)
	}
	return m["id"].(string)
}

// act posts an action's form from the promotion's page, as the browser
// does (same origin), and returns the answer (a 303 on success).
func (s *site) act(id, action string, form url.Values) (*http.Response, string) {
	s.t.Helper()
	return s.post("/console/promotions/"+id+"/"+action, form, http.Header{"Origin": {s.srv.URL}, "Sec-Fetch-Site": {"same-origin"}})
}

// actOK posts an action and follows its redirect: the page with its flash.
func (s *site) actOK(id, action string, form url.Values, flash string) string {
	s.t.Helper()
	resp, body := s.act(id, action, form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/promotions/"+id {
		s.t.Fatalf("%s %v = %d → %q, want 303 → the promotion's page:\n%.2000s", action, form, resp.StatusCode,
			resp.Header.Get("Location"), body)
	}
	_, page := s.get(resp.Header.Get("Location"))
	if !strings.Contains(page, `id="flash"`) || !strings.Contains(page, flash) {
		s.t.Errorf("after %s the page lacks the flash %q:\n%.1500s", action, flash, page)
	}
	// The flash is shown once.
	if _, again := s.get("/console/promotions/" + id); strings.Contains(again, `id="flash"`) {
		s.t.Errorf("after %s the flash is shown twice", action)
	}
	return page
}

func (s *site) redeem(code, key string) (int, string) {
	s.t.Helper()
	status, m := s.apiCall(http.MethodPost, "/v1/codes/"+url.PathEscape(code)+"/redemptions",
		fmt.Sprintf(`{"userId":"u-%s","orderId":"o-%s"}`, key, key), http.Header{"Idempotency-Key": {key}})
	reason, _ := m["reason"].(string)
	return status, reason
}

// Every lifecycle action goes through the API from the promotion's page:
// deactivate/reactivate (and a redemption follows), revoke, cancel, top-up
// and the two-step delete, with the API's refusals inline.
func TestLifecycleActionsFromThePromotionPage(t *testing.T) {
	s := newSite(t, true, true)

	// A vanity promotion has its code at once: deactivate, reactivate, revoke.
	vid := s.createPromotion(`{"name":"vanity life","code":"LIFECYCLE21","maxUsagePerCode":10,"perUserLimit":0}`)
	_, page := s.get("/console/promotions/" + vid)
	for _, want := range []string{`id="active-form"`, `id="revoke-form"`, `id="delete"`, `id="active"`} {
		if !strings.Contains(page, want) {
			t.Errorf("promotion page lacks %s", want)
		}
	}
	if strings.Contains(page, `id="cancel-form"`) || strings.Contains(page, `id="topup-form"`) {
		t.Errorf("a vanity promotion's page offers cancel or top-up")
	}
	if !strings.Contains(page, `class="st st-active"`) || strings.Contains(page, `id="reactivate"`) {
		t.Errorf("a new promotion is not shown active with a deactivate button only")
	}

	page = s.actOK(vid, "active", url.Values{"active": {"false"}}, "Deactivated")
	if !strings.Contains(page, `class="st st-inactive"`) || !strings.Contains(page, `id="reactivate"`) || strings.Contains(page, `id="deactivate"`) {
		t.Errorf("after deactivation the page does not show inactive and a reactivate button:\n%.3000s", page)
	}
	if status, reason := s.redeem("lifecycle21", "r1"); status != http.StatusGone || reason != "deactivated" {
		t.Errorf("redeem while deactivated = %d %q, want 410 deactivated", status, reason)
	}
	s.actOK(vid, "active", url.Values{"active": {"true"}}, "Reactivated")
	if status, reason := s.redeem("lifecycle21", "r2"); status != http.StatusCreated {
		t.Errorf("redeem after reactivation = %d %q, want 201", status, reason)
	}
	if resp, _ := s.act(vid, "active", url.Values{"active": {"maybe"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("active=maybe = %d, want 422", resp.StatusCode)
	}

	// Revoke: an unknown code is the API's 404 inline; a code of another
	// promotion is not revoked from this page; the right one is.
	other := s.createPromotion(`{"name":"other","code":"OTHERCODE7"}`)
	resp, body := s.act(vid, "revoke", url.Values{"code": {"NOSUCHCODE9"}, "reason": {"leaked"}})
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `id="err-revoke"`) {
		t.Errorf("revoke an unknown code = %d, want 404 with the error inline", resp.StatusCode)
	}
	resp, body = s.act(vid, "revoke", url.Values{"code": {"OTHERCODE7"}, "reason": {"leaked"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "is a code of promotion "+other) {
		t.Errorf("revoke another promotion's code = %d, want 409 naming promotion %s:\n%.1000s", resp.StatusCode, other, body)
	}
	if status, _ := s.redeem("OTHERCODE7", "r3"); status != http.StatusCreated {
		t.Errorf("the other promotion's code was revoked (redeem = %d)", status)
	}
	resp, body = s.act(vid, "revoke", url.Values{"code": {"LIFECYCLE21"}, "reason": {""}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="err-revoke"`) || !strings.Contains(body, "reason") {
		t.Errorf("revoke without a reason = %d, want the API's 422 naming reason inline", resp.StatusCode)
	}
	s.actOK(vid, "revoke", url.Values{"code": {"lifecycle-21"}, "reason": {"leaked on a coupon site"}}, "Revoked LIFECYCLE21")
	if status, reason := s.redeem("LIFECYCLE21", "r4"); status != http.StatusGone || reason != "revoked" {
		t.Errorf("redeem a revoked code = %d %q, want 410 revoked", status, reason)
	}
	s.actOK(vid, "revoke", url.Values{"code": {"LIFECYCLE21"}, "reason": {"again"}}, "LIFECYCLE21 was already revoked (reason: leaked on a coupon site)")
	if _, page := s.get("/console/promotions/" + vid); !strings.Contains(page, `id="audit"`) || !strings.Contains(page, "code.revoked") {
		t.Errorf("the page's audit log lacks the revocation")
	}

	// A generated promotion with no generator running stays pending: cancel
	// is offered, works once, and is gone afterwards.
	gid := s.createPromotion(`{"name":"to cancel","codeCount":3000,"format":{"charset":"alnum","length":10}}`)
	_, page = s.get("/console/promotions/" + gid)
	if !strings.Contains(page, `id="cancel-form"`) || !strings.Contains(page, `class="st st-pending"`) {
		t.Fatalf("a pending promotion's page lacks the cancel form or the pending badge")
	}
	// Cancel asks first, like delete: its confirmation page, then the box.
	_, confirm := s.get("/console/promotions/" + gid + "/cancel")
	if !strings.Contains(confirm, `id="cancel-confirm"`) || !strings.Contains(confirm, "3,000 not yet generated") {
		t.Fatalf("cancel confirmation page lacks its box or what it does:\n%.1500s", confirm)
	}
	if resp, body := s.act(gid, "cancel", nil); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="cancel-error"`) {
		t.Errorf("cancel without the box ticked = %d, want 422 with the error", resp.StatusCode)
	}
	if _, m := s.apiCall(http.MethodGet, "/v1/promotions/"+gid, "", nil); m["status"] != "pending" {
		t.Fatalf("an unconfirmed cancel cancelled: %v", m["status"])
	}
	page = s.actOK(gid, "cancel", url.Values{"confirm": {"yes"}}, "Generation cancelled: 0 of 3,000 codes exist")
	if !strings.Contains(page, `class="st st-cancelled"`) || strings.Contains(page, `id="cancel-form"`) {
		t.Errorf("after cancel the page does not show cancelled, or still offers cancel")
	}
	if status, m := s.apiCall(http.MethodGet, "/v1/promotions/"+gid, "", nil); status != http.StatusOK || m["status"] != "cancelled" {
		t.Errorf("API status after the console's cancel = %d %v, want cancelled", status, m["status"])
	}
	// Cancelled again (a stale page): the API answers, the page says so.
	if resp, _ := s.act(gid, "cancel", url.Values{"confirm": {"yes"}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("second cancel = %d, want the API's idempotent answer (303)", resp.StatusCode)
	}

	// Top-up: the API's refusal of 0 inline, then 500 codes; the list of
	// top-ups and the new total show; a double submit adds once.
	tid := s.createPromotion(`{"name":"to top up","codeCount":1000,"format":{"charset":"alnum","length":10}}`)
	resp, body = s.act(tid, "topups", url.Values{"codeCount": {"0"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="err-topup"`) || !strings.Contains(body, "at least 1") {
		t.Errorf("top-up of 0 = %d, want the API's 422 inline:\n%.800s", resp.StatusCode, body)
	}
	_, page = s.get("/console/promotions/" + tid)
	f := url.Values{"codeCount": {"500"}, "nonce": {nonceOf(t, page)}}
	resp, _ = s.post("/console/promotions/"+tid+"/topups", f, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("top-up 500 = %d, want 303", resp.StatusCode)
	}
	_, page = s.get("/console/promotions/" + tid)
	if !strings.Contains(page, "Top-up #1: 500 codes added") || !strings.Contains(page, `id="topups"`) ||
		!strings.Contains(page, "0 / 1,500 codes") {
		t.Errorf("after the top-up the page lacks the flash, the top-ups table or the new total:\n%.3000s", page)
	}
	if resp, _ := s.post("/console/promotions/"+tid+"/topups", f, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("double-submitted top-up = %d, want 303", resp.StatusCode)
	}
	if status, m := s.apiCall(http.MethodGet, "/v1/promotions/"+tid+"/topups", "", nil); status != http.StatusOK || m["codeCount"] != float64(1500) {
		t.Errorf("top-ups after a double submit = %d %v, want one top-up (1,500 codes)", status, m)
	}

	// Delete: the first step is a page; the POST needs the box ticked; then
	// the promotion is deleting and, once the purger has run, deleted.
	_, confirm = s.get("/console/promotions/" + vid + "/delete")
	if !strings.Contains(confirm, `id="delete-confirm"`) {
		t.Fatalf("delete page lacks the confirmation box")
	}
	resp, body = s.post("/console/promotions/"+vid+"/delete", url.Values{}, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="delete-error"`) {
		t.Errorf("delete without the box ticked = %d, want 422 with the error", resp.StatusCode)
	}
	if _, m := s.apiCall(http.MethodGet, "/v1/promotions/"+vid, "", nil); m["deletion"] != nil {
		t.Fatalf("an unconfirmed delete requested the deletion: %v", m["deletion"])
	}
	resp, _ = s.post("/console/promotions/"+vid+"/delete", url.Values{"confirm": {"yes"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed delete = %d, want 303", resp.StatusCode)
	}
	_, page = s.get(resp.Header.Get("Location"))
	if !strings.Contains(page, "Deletion requested") || !strings.Contains(page, `id="deletion"`) ||
		!(strings.Contains(page, `class="st st-deleting"`) || strings.Contains(page, `class="st st-deleted"`)) ||
		strings.Contains(page, `id="actions"`) {
		t.Errorf("after the delete the page lacks the flash, the deletion or its badge, or still offers actions:\n%.3000s", page)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, page = s.get("/console/promotions/" + vid)
		if strings.Contains(page, `class="st st-deleted"`) && strings.Contains(page, "<strong>Deleted</strong>") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the promotion page never showed deleted:\n%.3000s", page)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Every lifecycle form another site sends is refused and changes nothing.
func TestLifecycleFormsRefuseOtherSites(t *testing.T) {
	s := newSite(t, true, true)
	id := s.createPromotion(`{"name":"cross-site","codeCount":2000,"format":{"charset":"alnum","length":10}}`)
	actions := map[string]url.Values{
		"active": {"active": {"false"}},
		"cancel": {},
		"topups": {"codeCount": {"100"}},
		"revoke": {"code": {"ANYCODE23"}, "reason": {"x"}},
		"delete": {"confirm": {"yes"}},
	}
	for action, form := range actions {
		for name, h := range map[string]http.Header{"Origin": {"Origin": {"https://evil.example"}},
			"Sec-Fetch-Site": {"Sec-Fetch-Site": {"cross-site"}}} {
			if resp, _ := s.post("/console/promotions/"+id+"/"+action, form, h); resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site (%s): POST %s = %d, want 403", name, action, resp.StatusCode)
			}
		}
	}
	status, m := s.apiCall(http.MethodGet, "/v1/promotions/"+id, "", nil)
	if status != http.StatusOK || m["status"] != string(promo.StatusPending) || m["codeCount"] != float64(2000) || m["deletion"] != nil {
		t.Errorf("refused posts changed the promotion: %v", m)
	}
	if status, m := s.apiCall(http.MethodGet, "/v1/promotions/"+id+"/audit", "", nil); status != http.StatusOK ||
		len(m["entries"].([]any)) != 0 {
		t.Errorf("refused posts left audit entries: %d %v", status, m)
	}
}

// The page shows the active flag as the API's status view reports it.
func TestActiveFlagFromTheStatusViewWins(t *testing.T) {
	s := newSiteWith(t, true, true, func(api http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v1/promotions/") || strings.Count(r.URL.Path, "/") != 3 {
				api.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, r)
			var v map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
				t.Errorf("status view: %v", err)
			}
			v["active"] = false // as a newer API would answer for a switched-off promotion
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rec.Code)
			_ = json.NewEncoder(w).Encode(v)
		})
	})
	id := s.createPromotion(`{"name":"flag","code":"FLAGCODE42"}`)
	_, page := s.get("/console/promotions/" + id)
	if !strings.Contains(page, `class="st st-inactive"`) || !strings.Contains(page, `id="reactivate"`) || strings.Contains(page, `id="deactivate"`) {
		t.Errorf("status view says active=false; the page does not show inactive with reactivate only:\n%.2500s", page)
	}
}

// The list shows each promotion's redeemed codes (and uses, when a code is
// used more than once) from the totals rollup, and filters by the active flag.
func TestListShowsRedeemedAndFiltersByActive(t *testing.T) {
	s := newSite(t, true, true)
	multi := s.createPromotion(`{"name":"multi use","code":"MULTIUSE42","maxUsagePerCode":10,"perUserLimit":0}`)
	single := s.createPromotion(`{"name":"single use","code":"SINGLEUSE42"}`)
	for i := range 3 {
		if status, reason := s.redeem("multiuse42", fmt.Sprintf("m%d", i)); status != http.StatusCreated {
			t.Fatalf("redeem MULTIUSE42 = %d %s", status, reason)
		}
	}
	cell := func(page, id string) string {
		i := strings.Index(page, `<tr data-id="`+id+`"`)
		if i < 0 {
			t.Fatalf("list lacks promotion %s:\n%.2000s", id, page)
		}
		row := page[i:]
		row = row[:strings.Index(row, "</tr>")]
		j := strings.Index(row, `class="num redeemed">`)
		if j < 0 {
			t.Fatalf("row of %s has no redeemed cell: %s", id, row)
		}
		c := row[j+len(`class="num redeemed">`):]
		return c[:strings.Index(c, "</td>")]
	}
	want := `1 <span class="muted">(3 uses)</span>`
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, page := s.get("/console/")
		got := cell(page, multi)
		if got == want {
			if c := cell(page, single); c != "0" {
				t.Errorf("unredeemed promotion's cell = %q, want 0", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redeemed cell = %q, want %q (totals rollup)", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.actOK(single, "active", url.Values{"active": {"false"}}, "Deactivated")
	_, page := s.get("/console/?active=false")
	if !strings.Contains(page, `data-id="`+single+`"`) || strings.Contains(page, `data-id="`+multi+`"`) {
		t.Errorf("active=false does not list exactly the deactivated promotion:\n%.2000s", page)
	}
	if !strings.Contains(page, `<option value="false" selected>`) {
		t.Errorf("the active filter does not show its choice")
	}
	_, page = s.get("/console/?active=true")
	if strings.Contains(page, `data-id="`+single+`"`) || !strings.Contains(page, `data-id="`+multi+`"`) {
		t.Errorf("active=true does not list exactly the active promotion")
	}
	_, page = s.get("/console/?status=deleting")
	if !strings.Contains(page, `<option selected>deleting</option>`) || strings.Contains(page, `data-id="`) {
		t.Errorf("status=deleting: not selected, or lists promotions that are not being deleted")
	}
}

// The export of a promotion that is not completed is refused with a page
// that says why in the console's words and offers the export of the codes
// that exist: a cancelled one will not complete (it said "export it once it
// is completed" and named the API's ?partial=true).
func TestExportRefusalOffersThePartialExport(t *testing.T) {
	s := newSite(t, true, true)
	id := s.createPromotion(`{"name":"stopped","codeCount":3000,"format":{"charset":"alnum","length":10}}`)
	s.generate(id, 0)
	for _, tc := range []struct{ step, want string }{
		{"generating", "it is still being generated"},
		{"cancelled", "it was cancelled and will not complete"},
	} {
		if tc.step == "cancelled" {
			s.act(id, "cancel", url.Values{"confirm": {"yes"}})
		}
		resp, page := s.get("/console/promotions/" + id + "/codes.csv")
		if resp.StatusCode != http.StatusConflict || !isHTML(resp) {
			t.Fatalf("%s: export = %d %s", tc.step, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		msg := page[strings.Index(page, `id="error">`):]
		msg = msg[:strings.Index(msg, "</p>")]
		if !strings.Contains(msg, tc.want) || !strings.Contains(msg, "1,000 of 3,000 codes") ||
			strings.Contains(msg, "partial=true") || (tc.step == "cancelled" && strings.Contains(msg, "once it is completed")) {
			t.Errorf("%s: the refusal says %q, want %q, the counts, and no API query string", tc.step, msg, tc.want)
		}
		if !strings.Contains(page, `href="/console/promotions/`+id+`/codes.csv?partial=true"`) {
			t.Errorf("%s: the refusal offers no export of the codes that exist:\n%.2000s", tc.step, page)
		}
	}
}
