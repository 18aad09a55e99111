package console_test

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// redeemFor redeems code for user through the API and returns the
// redemption's id.
func (s *site) redeemFor(code, user, key string) string {
	s.t.Helper()
	status, m := s.apiCall(http.MethodPost, "/v1/codes/"+url.PathEscape(code)+"/redemptions",
		fmt.Sprintf(`{"userId":%q,"orderId":"order-%s"}`, user, key), http.Header{"Idempotency-Key": {key}})
	if status != http.StatusCreated {
		s.t.Fatalf("redeem %s for %s = %d %v", code, user, status, m)
	}
	return m["id"].(string)
}

// firstCode is the first code of a generated promotion's export.
func (s *site) firstCode(id string) string {
	s.t.Helper()
	_, body := s.get("/console/promotions/" + id + "/codes.csv")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) < 2 {
		s.t.Fatalf("export of %s: %v\n%.300s", id, err, body)
	}
	return rows[1][0]
}

// records sets up two promotions with redemptions by two users and a live
// reservation, as the records pages show them.
func records(t *testing.T) (s *site, vanity, generated, genCode string, ids map[string]string) {
	s = newSite(t, true, true)
	vanity = s.createPromotion(`{"name":"records vanity","code":"RECORDS42","maxUsagePerCode":5,"perUserLimit":0}`)
	generated = s.createPromotion(`{"name":"records generated","codeCount":1000,"format":{"charset":"alnum","length":10,"prefix":"REC-","separator":"-","groupSize":5}}`)
	s.generate(generated, 0)
	genCode = s.firstCode(generated)
	ids = map[string]string{}
	ids["ann-vanity"] = s.redeemFor("RECORDS42", "ann", "k1")
	time.Sleep(2 * time.Millisecond)
	ids["bob-vanity"] = s.redeemFor("records-42", "bob", "k2")
	time.Sleep(2 * time.Millisecond)
	ids["ann-generated"] = s.redeemFor(strings.ToLower(genCode), "ann", "k3")
	if status, m := s.apiCall(http.MethodPost, "/v1/codes/RECORDS42/reservations", `{"userId":"cat","ttl":"10m"}`, nil); status != http.StatusCreated {
		t.Fatalf("reserve = %d %v", status, m)
	}
	return
}

// A code's page, from any spelling (and from the search box): its
// promotion, state, uses, live reservations and redemptions, each linked;
// rollback and revoke from there.
func TestCodePage(t *testing.T) {
	s, vanity, _, _, ids := records(t)
	resp, _ := s.get("/console/codes/" + url.PathEscape("records 42"))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/codes/RECORDS42" {
		t.Fatalf("a code typed another way = %d → %q, want 303 → its page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := s.get("/console/find?q=records-42"); resp.Header.Get("Location") != "/console/codes/RECORDS42" {
		t.Errorf("search for the code → %q", resp.Header.Get("Location"))
	}
	_, page := s.get("/console/codes/RECORDS42")
	for _, want := range []string{
		`href="/console/promotions/` + vanity + `" id="code-promotion"`,
		`<dd id="code-uses">2 of 5 used, 2 left, 1 held by reservations</dd>`,
		`<dd id="code-state">redeemable</dd>`,
		`<a class="mono" href="/console/users/cat">cat</a>`,
		`id="r-` + ids["ann-vanity"] + `"`, `id="r-` + ids["bob-vanity"] + `"`,
		`<a class="mono" href="/console/users/bob">bob</a>`,
		`id="code-revoke-form"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("code page lacks %s", want)
		}
	}
	if strings.Contains(page, ids["ann-generated"]) {
		t.Errorf("code page lists another code's redemption")
	}

	// Roll back bob's redemption from the code page: back to it, with a flash.
	resp, _ = s.post("/console/redemptions/"+ids["bob-vanity"]+"/rollback",
		url.Values{"reason": {"order cancelled"}, "back": {"/console/codes/RECORDS42"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/codes/RECORDS42" {
		t.Fatalf("rollback = %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = s.get("/console/codes/RECORDS42")
	if !strings.Contains(page, "Rolled back redemption "+ids["bob-vanity"]) || !strings.Contains(page, "1 of 5 used") ||
		!strings.Contains(page, `class="rolledback"`) || !strings.Contains(page, "order cancelled") {
		t.Errorf("after the rollback the code page lacks the flash, the new count or the rolled-back row:\n%.4000s", page)
	}
	if _, m := s.apiCall(http.MethodGet, "/v1/promotions/"+vanity+"/redemptions?userId=bob", "", nil); m["redemptions"].([]any)[0].(map[string]any)["rolledBackAt"] == nil {
		t.Errorf("the API does not have the rollback: %v", m)
	}
	// Again (a stale page): the API answers it was rolled back; nothing more.
	s.post("/console/redemptions/"+ids["bob-vanity"]+"/rollback", url.Values{"back": {"/console/codes/RECORDS42"}}, nil)
	if _, page = s.get("/console/codes/RECORDS42"); !strings.Contains(page, "had been rolled back already") || !strings.Contains(page, "1 of 5 used") {
		t.Errorf("a second rollback: the page lacks the word or the count moved")
	}
	// An unknown redemption: an error page with a way back.
	resp, body := s.post("/console/redemptions/no-such-id/rollback", url.Values{"back": {"/console/codes/RECORDS42"}}, nil)
	if resp.StatusCode != http.StatusNotFound || !isHTML(resp) || !strings.Contains(body, `href="/console/codes/RECORDS42" id="back"`) {
		t.Errorf("rollback of an unknown redemption = %d:\n%.800s", resp.StatusCode, body)
	}

	// Revoke from the code page.
	resp, _ = s.post("/console/codes/RECORDS42/revoke", url.Values{"reason": {"leaked"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke = %d", resp.StatusCode)
	}
	_, page = s.get("/console/codes/RECORDS42")
	if !strings.Contains(page, "Revoked RECORDS42") || !strings.Contains(page, `id="code-revoked"`) || !strings.Contains(page, ": leaked") ||
		strings.Contains(page, `id="code-revoke-form"`) || !strings.Contains(page, `<dd id="code-state">revoked</dd>`) {
		t.Errorf("after the revoke the code page lacks the flash or the revocation, or still offers revoke:\n%.3000s", page)
	}
	if status, reason := s.redeem("RECORDS42", "after-revoke"); status != http.StatusGone || reason != "revoked" {
		t.Errorf("redeem after the console's revoke = %d %q", status, reason)
	}
	// A code that does not exist, and a typo: error pages.
	for _, code := range []string{"NOSUCHCODE99", "REC-XXXXX-XXXXX"} {
		if resp, _ := s.get("/console/codes/" + code); resp.StatusCode < 400 || !isHTML(resp) {
			t.Errorf("GET /console/codes/%s = %d %s", code, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// A user's page: their redemptions and codes across promotions, linked;
// rollback from there; their CSV; the search box finds them.
func TestUserPage(t *testing.T) {
	s, vanity, generated, genCode, ids := records(t)
	if resp, _ := s.get("/console/find?q=ann"); resp.Header.Get("Location") != "/console/users/ann" {
		t.Errorf("search for a user → %q", resp.Header.Get("Location"))
	}
	if resp, body := s.get("/console/find?q=nobody-at-all"); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no user") {
		t.Errorf("search for nothing = %d", resp.StatusCode)
	}
	_, page := s.get("/console/users/ann")
	for _, want := range []string{
		`id="r-` + ids["ann-vanity"] + `"`, `id="r-` + ids["ann-generated"] + `"`,
		`href="/console/promotions/` + vanity + `"`, `href="/console/promotions/` + generated + `"`,
		`href="/console/codes/RECORDS42"`, `href="/console/codes/` + genCode + `"`,
		`id="user-csv" href="/console/users/ann/redemptions.csv"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("user page lacks %s", want)
		}
	}
	if strings.Contains(page, ids["bob-vanity"]) {
		t.Errorf("ann's page lists bob's redemption")
	}
	resp, _ := s.post("/console/redemptions/"+ids["ann-generated"]+"/rollback", url.Values{"back": {"/console/users/ann"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/users/ann" {
		t.Fatalf("rollback from the user page = %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, page := s.get("/console/users/ann"); !strings.Contains(page, "Rolled back redemption "+ids["ann-generated"]) {
		t.Errorf("user page after the rollback lacks the flash")
	}
	resp, body := s.get("/console/users/ann/redemptions.csv")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || resp.StatusCode != http.StatusOK || len(rows) != 3 || rows[0][0] != "id" ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "user-redemptions.csv") {
		t.Errorf("user CSV = %d %q %v:\n%s", resp.StatusCode, resp.Header.Get("Content-Disposition"), err, body)
	}
	// A user id with a slash and spaces has a page too.
	odd := "team/a b"
	s.redeemFor("RECORDS42", odd, "k-odd")
	if resp, page := s.get("/console/users/" + url.PathEscape(odd)); resp.StatusCode != http.StatusOK || !strings.Contains(page, `<span class="mono" id="user">team/a b</span>`) {
		t.Errorf("user page of %q = %d", odd, resp.StatusCode)
	}
}

// A promotion's redemption log: filter by user, code (any spelling) and
// time; user and code together are refused beside the form; CSV of the
// filtered log.
func TestRedemptionLog(t *testing.T) {
	s, vanity, _, _, ids := records(t)
	if _, page := s.get("/console/promotions/" + vanity); !strings.Contains(page, `href="/console/promotions/`+vanity+`/redemptions" id="log-link"`) {
		t.Errorf("the promotion page does not link to its redemption log")
	}
	count := func(page string) int { return strings.Count(page, `<tr id="r-`) }
	_, page := s.get("/console/promotions/" + vanity + "/redemptions")
	if count(page) != 2 || !strings.Contains(page, `id="log-csv"`) {
		t.Errorf("log shows %d redemptions, want 2", count(page))
	}
	_, page = s.get("/console/promotions/" + vanity + "/redemptions?user=bob")
	if count(page) != 1 || !strings.Contains(page, ids["bob-vanity"]) {
		t.Errorf("log by user bob shows %d", count(page))
	}
	if !strings.Contains(page, `href="/console/promotions/`+vanity+`/redemptions.csv?user=bob"`) {
		t.Errorf("the CSV link does not carry the filter")
	}
	_, page = s.get("/console/promotions/" + vanity + "/redemptions?code=" + url.QueryEscape("records 42"))
	if count(page) != 2 {
		t.Errorf("log by code (another spelling) shows %d", count(page))
	}
	future := time.Now().UTC().Add(time.Hour).Format("2006-01-02T15:04")
	if _, page = s.get("/console/promotions/" + vanity + "/redemptions?from=" + future); count(page) != 0 {
		t.Errorf("log from an hour ahead shows %d", count(page))
	}
	if _, page = s.get("/console/promotions/" + vanity + "/redemptions?to=" + future); count(page) != 2 {
		t.Errorf("log to an hour ahead shows %d", count(page))
	}
	resp, page := s.get("/console/promotions/" + vanity + "/redemptions?user=bob&code=RECORDS42")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="log-error"`) {
		t.Errorf("user and code together = %d, want 422 beside the form", resp.StatusCode)
	}
	if resp, _ := s.get("/console/promotions/" + vanity + "/redemptions?from=yesterday"); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a bad time = %d, want 422", resp.StatusCode)
	}
	resp, body := s.get("/console/promotions/" + vanity + "/redemptions.csv?user=bob")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || resp.StatusCode != http.StatusOK || len(rows) != 2 || rows[1][0] != ids["bob-vanity"] ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "promotion-"+vanity+"-redemptions.csv") {
		t.Errorf("log CSV = %d %q %v:\n%s", resp.StatusCode, resp.Header.Get("Content-Disposition"), err, body)
	}
}

// Edit a promotion's name and window from its page: only what changed is
// sent (PATCH); an emptied bound is cleared; the API's refusal is beside
// its field.
func TestEditPromotion(t *testing.T) {
	s := newSite(t, true, true)
	id := s.createPromotion(`{"name":"to edit","code":"EDITME42"}`)
	_, page := s.get("/console/promotions/" + id + "/edit")
	if !strings.Contains(page, `id="edit-name" value="to edit"`) {
		t.Fatalf("edit page lacks the current name:\n%.1500s", page)
	}
	expires := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Minute)
	resp, _ := s.post("/console/promotions/"+id+"/edit", url.Values{"name": {"edited"}, "startsAt": {""},
		"expiresAt": {expires.Format("2006-01-02T15:04")}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/promotions/"+id {
		t.Fatalf("save = %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, m := s.apiCall(http.MethodGet, "/v1/promotions/"+id, "", nil)
	if m["name"] != "edited" || m["expiresAt"] != expires.Format(time.RFC3339) || m["startsAt"] != nil {
		t.Errorf("after the edit the API has %v %v %v", m["name"], m["expiresAt"], m["startsAt"])
	}
	if _, page := s.get("/console/promotions/" + id); !strings.Contains(page, "Saved: “edited”") {
		t.Errorf("no flash after the save")
	}
	if _, m := s.apiCall(http.MethodGet, "/v1/promotions/"+id+"/audit", "", nil); !strings.Contains(fmt.Sprint(m), "promotion.updated") {
		t.Errorf("the edit is not in the audit log: %v", m)
	}
	// Clear the expiry.
	s.post("/console/promotions/"+id+"/edit", url.Values{"name": {"edited"}, "expiresAt": {""}}, nil)
	if _, m := s.apiCall(http.MethodGet, "/v1/promotions/"+id, "", nil); m["expiresAt"] != nil {
		t.Errorf("emptied expiry not cleared: %v", m["expiresAt"])
	}
	// A window that ends before it starts: the API's refusal beside the field.
	start := time.Now().UTC().Add(72 * time.Hour).Format("2006-01-02T15:04")
	resp, page = s.post("/console/promotions/"+id+"/edit", url.Values{"name": {"edited"}, "startsAt": {start},
		"expiresAt": {expires.Format("2006-01-02T15:04")}}, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="err-expiresAt"`) {
		t.Errorf("an empty window = %d, want 422 beside expiresAt:\n%.2000s", resp.StatusCode, page)
	}
	if resp, page := s.post("/console/promotions/"+id+"/edit", url.Values{"name": {"edited"}, "startsAt": {"soon"}}, nil); resp.StatusCode != http.StatusUnprocessableEntity ||
		!strings.Contains(page, `id="err-startsAt"`) {
		t.Errorf("a bad time = %d", resp.StatusCode)
	}
	resp, _ = s.post("/console/promotions/"+id+"/edit", url.Values{"name": {"edited"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("nothing changed = %d", resp.StatusCode)
	}
	if _, page := s.get("/console/promotions/" + id); !strings.Contains(page, "Nothing to change.") {
		t.Errorf("no word when nothing changed")
	}
}

// Eligibility rules are edited on the same page: set, shown again, refused
// beside their field, and cleared; a form without the rules leaves them.
func TestEditEligibility(t *testing.T) {
	s := newSite(t, true, true)
	id := s.createPromotion(`{"name":"rules","code":"RULES42"}`)
	rules := url.Values{"name": {"rules"}, "rules": {"1"}, "segments": {"vip, new"}, "countries": {"de, fr"},
		"minAmount": {"25.50"}, "minCurrency": {"eur"}, "firstOrderOnly": {"1"}}
	if resp, page := s.post("/console/promotions/"+id+"/edit", rules, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save rules = %d:\n%.2000s", resp.StatusCode, page)
	}
	_, m := s.apiCall(http.MethodGet, "/v1/promotions/"+id, "", nil)
	want := `map[countries:[DE FR] firstOrderOnly:true minOrderAmount:map[amount:25.50 currency:EUR] segments:[new vip]]`
	if got := fmt.Sprint(m["eligibility"]); got != want {
		t.Errorf("after the edit the API has eligibility %s, want %s", got, want)
	}
	_, page := s.get("/console/promotions/" + id + "/edit")
	if !strings.Contains(page, `id="edit-segments" value="new, vip"`) || !strings.Contains(page, `id="edit-countries" value="DE, FR"`) ||
		!strings.Contains(page, `id="edit-first-order" value="1" checked`) {
		t.Errorf("the edit page does not show the rules:\n%.3000s", page)
	}
	if resp, _ := s.post("/console/promotions/"+id+"/edit", url.Values{"name": {"renamed"}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("rename = %d", resp.StatusCode)
	}
	if _, m := s.apiCall(http.MethodGet, "/v1/promotions/"+id, "", nil); fmt.Sprint(m["eligibility"]) != want {
		t.Errorf("a form without the rules changed them: %v", m["eligibility"])
	}
	bad := url.Values{"name": {"renamed"}, "rules": {"1"}, "countries": {"Germany"}}
	if resp, page := s.post("/console/promotions/"+id+"/edit", bad, nil); resp.StatusCode != http.StatusUnprocessableEntity ||
		!strings.Contains(page, `id="err-countries"`) {
		t.Errorf("a bad country = %d, want 422 beside countries:\n%.3000s", resp.StatusCode, page)
	}
	clear := url.Values{"name": {"renamed"}, "rules": {"1"}}
	if resp, _ := s.post("/console/promotions/"+id+"/edit", clear, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("clear rules = %d", resp.StatusCode)
	}
	if _, m := s.apiCall(http.MethodGet, "/v1/promotions/"+id, "", nil); m["eligibility"] != nil {
		t.Errorf("emptied rules not cleared: %v", m["eligibility"])
	}
}
