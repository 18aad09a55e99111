package api_test

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// createVanity creates a vanity promotion and returns its id.
func (e *env) createVanity(body string) string {
	e.t.Helper()
	r := e.post(body, nil)
	if r.StatusCode != http.StatusAccepted && r.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST /v1/promotions %s = %d %s", body, r.StatusCode, r.body)
	}
	var c created
	decodeJSON(e.t, r.body, &c)
	return c.ID
}

type receipt struct {
	ID          string    `json:"id"`
	Code        string    `json:"code"`
	PromotionID string    `json:"promotionId"`
	UserID      string    `json:"userId"`
	RedeemedAt  time.Time `json:"redeemedAt"`
}

func (e *env) redeemAs(code, user, key string) receipt {
	e.t.Helper()
	r := e.do(http.MethodPost, "/v1/codes/"+url.PathEscape(code)+"/redemptions", fmt.Sprintf(`{"userId":%q}`, user),
		http.Header{"Idempotency-Key": {key}})
	if r.StatusCode != http.StatusCreated {
		e.t.Fatalf("redeem %s as %s = %d %s", code, user, r.StatusCode, r.body)
	}
	var rc receipt
	decodeJSON(e.t, r.body, &rc)
	return rc
}

func (e *env) redemptionIDs(path string) []string {
	e.t.Helper()
	r := e.do(http.MethodGet, path, "", nil)
	if r.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s = %d %s", path, r.StatusCode, r.body)
	}
	var page struct {
		Redemptions []receipt `json:"redemptions"`
	}
	decodeJSON(e.t, r.body, &page)
	var ids []string
	for _, rc := range page.Redemptions {
		ids = append(ids, rc.ID)
	}
	return ids
}

// An admin's GET /v1/codes/{code} (any spelling) is the code's detail:
// committed uses, live reservations, revocation; a redeem token gets the
// validation view. The audit trail filters by code (any spelling) and by a
// time range; a user's redemptions are listed across promotions, as JSON
// pages and as CSV. Every answer conforms to the OpenAPI document.
func TestAdminViewsOfCodesAndUsers(t *testing.T) {
	e := newEnv(t, envConfig{AdminTokens: []string{"admin-token-0123456789"}, RedeemTokens: []string{"shop-token-0123456789"}}, nil)
	e.token = "admin-token-0123456789"
	p1 := e.createVanity(`{"name":"inspect","code":"INSPECTME42","maxUsagePerCode":10,"perUserLimit":0}`)
	p2 := e.createVanity(`{"name":"other","code":"OTHERCODE7","maxUsagePerCode":10,"perUserLimit":0}`)

	var mine []receipt // oldest first
	for i, r := range []struct{ code, user string }{
		{"inspect-me-42", "ann"}, {"OTHERCODE7", "ann"}, {"INSPECTME42", "bob"}, {"inspect me 42", "ann"},
		{"othercode7", "bob"}, {"INSPECT-ME-42", "ann"},
	} {
		mine = append(mine, e.redeemAs(r.code, r.user, fmt.Sprintf("k%d", i)))
		time.Sleep(3 * time.Millisecond) // ids (UUIDv7) and times a millisecond apart at least
	}
	if r := e.do(http.MethodPost, "/v1/codes/INSPECTME42/reservations", `{"userId":"cat","ttl":"10m"}`, nil); r.StatusCode != http.StatusCreated {
		t.Fatalf("reserve = %d %s", r.StatusCode, r.body)
	}

	// The code's detail, for an admin, from any spelling.
	r := e.do(http.MethodGet, "/v1/codes/inspect%20me-42", "", nil)
	var d struct {
		Code         string `json:"code"`
		PromotionID  string `json:"promotionId"`
		Used         int    `json:"used"`
		ReservedUses int    `json:"reservedUses"`
		UsesLeft     int    `json:"usesLeft"`
		Reservations []struct {
			UserID string `json:"userId"`
			Status string `json:"status"`
		} `json:"reservations"`
		RevokedAt    *time.Time `json:"revokedAt"`
		RevokeReason string     `json:"revokeReason"`
	}
	decodeJSON(t, r.body, &d)
	if r.StatusCode != http.StatusOK || d.Code != "INSPECTME42" || d.PromotionID != p1 || d.Used != 4 || d.ReservedUses != 1 ||
		d.UsesLeft != 5 || len(d.Reservations) != 1 || d.Reservations[0].UserID != "cat" || d.Reservations[0].Status != "held" ||
		d.RevokedAt != nil {
		t.Errorf("admin detail = %d %s", r.StatusCode, r.body)
	}
	// A shop (redeem token) sees the validation view only.
	shop := e.do(http.MethodGet, "/v1/codes/INSPECTME42", "", http.Header{"Authorization": {"Bearer shop-token-0123456789"}})
	if shop.StatusCode != http.StatusOK || strings.Contains(string(shop.body), `"used"`) || strings.Contains(string(shop.body), `"reservations"`) {
		t.Errorf("redeem-token look-up = %d %s, want the validation view", shop.StatusCode, shop.body)
	}
	if r := e.do(http.MethodPost, "/v1/codes/INSPECTME42/revoke", `{"reason":"leaked"}`, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("revoke = %d %s", r.StatusCode, r.body)
	}
	r = e.do(http.MethodGet, "/v1/codes/INSPECTME42", "", nil)
	decodeJSON(t, r.body, &d)
	if d.RevokedAt == nil || d.RevokeReason != "leaked" {
		t.Errorf("revoked code's detail = %s", r.body)
	}

	// The promotion's trail by code, any spelling: newest first.
	want := func(keep func(receipt) bool) []string {
		var ids []string
		for i := len(mine) - 1; i >= 0; i-- {
			if keep(mine[i]) {
				ids = append(ids, mine[i].ID)
			}
		}
		return ids
	}
	byCode := want(func(rc receipt) bool { return rc.PromotionID == p1 })
	if got := e.redemptionIDs("/v1/promotions/" + p1 + "/redemptions?code=inspect-me%2042"); !slices.Equal(got, byCode) {
		t.Errorf("by code = %v, want %v", got, byCode)
	}
	if got := e.redemptionIDs("/v1/promotions/" + p2 + "/redemptions?code=INSPECTME42"); len(got) != 0 {
		t.Errorf("another promotion's code = %v, want none", got)
	}
	for _, q := range []string{"code=INSPECTME42&userId=ann", "code=" + url.QueryEscape("INSPECT\x01ME"),
		"from=yesterday", "from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z"} {
		if r := e.do(http.MethodGet, "/v1/promotions/"+p1+"/redemptions?"+q, "", nil); r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("?%s = %d %s, want 422", q, r.StatusCode, r.body)
		}
	}

	// A time range: from the 2nd redemption (inclusive) to the 5th (exclusive).
	from, to := mine[1].RedeemedAt.Truncate(time.Millisecond), mine[4].RedeemedAt.Truncate(time.Millisecond)
	inRange := func(rc receipt) bool { return rc.ID >= mine[1].ID && rc.ID < mine[4].ID }
	rangeQ := "from=" + url.QueryEscape(from.Format(time.RFC3339Nano)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339Nano))
	wantRange := want(func(rc receipt) bool { return rc.PromotionID == p1 && inRange(rc) })
	if got := e.redemptionIDs("/v1/promotions/" + p1 + "/redemptions?" + rangeQ); !slices.Equal(got, wantRange) || len(got) != 2 {
		t.Errorf("promotion in [%s, %s) = %v, want %v", from, to, got, wantRange)
	}

	// A user's redemptions across promotions, paged, in a range, and as CSV.
	ann := want(func(rc receipt) bool { return rc.UserID == "ann" })
	if got := e.redemptionIDs("/v1/users/ann/redemptions"); !slices.Equal(got, ann) || len(ann) != 4 {
		t.Errorf("ann's redemptions = %v, want %v", got, ann)
	}
	r = e.do(http.MethodGet, "/v1/users/ann/redemptions?limit=3", "", nil)
	var page struct {
		Redemptions []receipt `json:"redemptions"`
		Next        string    `json:"next"`
	}
	decodeJSON(t, r.body, &page)
	if len(page.Redemptions) != 3 || page.Next != ann[2] {
		t.Fatalf("first page of 3 = %s", r.body)
	}
	if got := e.redemptionIDs("/v1/users/ann/redemptions?after=" + page.Next); !slices.Equal(got, ann[3:]) {
		t.Errorf("second page = %v, want %v", got, ann[3:])
	}
	annRange := want(func(rc receipt) bool { return rc.UserID == "ann" && inRange(rc) })
	if got := e.redemptionIDs("/v1/users/ann/redemptions?" + rangeQ); !slices.Equal(got, annRange) {
		t.Errorf("ann's in the range = %v, want %v", got, annRange)
	}
	if got := e.redemptionIDs("/v1/users/nobody/redemptions"); len(got) != 0 {
		t.Errorf("an unknown user = %v", got)
	}
	r = e.do(http.MethodGet, "/v1/users/ann/redemptions", "", http.Header{"Accept": {"text/csv"}})
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil || r.StatusCode != http.StatusOK || len(rows) != 5 || rows[0][0] != "id" || rows[1][0] != ann[0] ||
		!strings.Contains(r.Header.Get("Content-Disposition"), "user-redemptions.csv") {
		t.Errorf("ann's CSV = %d %q %v:\n%s", r.StatusCode, r.Header.Get("Content-Disposition"), err, r.body)
	}
	if r := e.do(http.MethodGet, "/v1/users/ann/redemptions?userId=x", "", nil); r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("unknown parameter = %d, want 422", r.StatusCode)
	}
	if r := e.do(http.MethodGet, "/v1/users/ann/redemptions", "", http.Header{"Authorization": {"Bearer shop-token-0123456789"}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("a redeem token reading a user's redemptions = %d, want 403", r.StatusCode)
	}
}
