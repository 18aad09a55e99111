package redemption_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/redemption"
)

// Personal codes over HTTP on each database: issuance (201, idempotent,
// pool_exhausted 409), a customer's codes, a bound code refused to anyone
// else (403 not_your_code, counted as a failed guess), eligibility refusals
// naming their rule (409 not_eligible) in redemption, reservation and
// validation, and the audit fields and stats they feed.
func TestPersonalCodesHTTP(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, redemption.Config{GuessLimit: 6, GuessWindow: time.Minute})
			p, all := h.seed(promotionSpec{n: 5, maxUsage: 1, perUser: 0})
			issue := func(body, key string) reply {
				hdr := map[string]string{}
				if key != "" {
					hdr["Idempotency-Key"] = key
				}
				return h.do("POST", "/v1/promotions/"+p.IDString()+"/issuances", redeemToken, body, hdr)
			}
			r := issue(`{"userId":"alice","count":2}`, "k1")
			if r.status != http.StatusCreated {
				t.Fatalf("issue: %d %s", r.status, r.body)
			}
			var iss struct {
				ID, PromotionID, UserID string
				Codes                   []string
			}
			decode(t, r.body, &iss)
			if len(iss.Codes) != 2 || iss.UserID != "alice" || iss.PromotionID != p.IDString() ||
				!slices.Contains(all, iss.Codes[0]) || !slices.Contains(all, iss.Codes[1]) {
				t.Fatalf("issuance %+v (codes of the promotion: %v)", iss, all)
			}
			again := issue(`{"userId":"alice","count":2}`, "k1")
			if again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" ||
				!strings.Contains(string(again.body), iss.Codes[0]) {
				t.Fatalf("replayed issuance: %d %s %v", again.status, again.body, again.header)
			}
			wantReason(t, "same key, other body", issue(`{"userId":"bob","count":2}`, "k1"), 409, "idempotency_conflict")
			wantReason(t, "4 of 3 left", issue(`{"userId":"bob","count":4}`, ""), 409, "pool_exhausted")
			if r := issue(`{"userId":"bob","count":0}`, ""); r.status != 422 {
				t.Errorf("count 0: %d %s", r.status, r.body)
			}
			if r := issue(`{"count":1}`, ""); r.status != 422 {
				t.Errorf("no user: %d %s", r.status, r.body)
			}
			if r := h.do("POST", "/v1/promotions/999999/issuances", redeemToken, `{"userId":"bob"}`, nil); r.status != 404 {
				t.Errorf("unknown promotion: %d %s", r.status, r.body)
			}

			list := h.do("GET", "/v1/users/alice/codes", redeemToken, "", nil)
			var mine struct {
				UserID string
				Codes  []promo.UserCode
			}
			decode(t, list.body, &mine)
			if list.status != 200 || len(mine.Codes) != 2 || mine.Codes[0].Status != promo.ReasonRedeemable {
				t.Fatalf("alice's codes: %d %s", list.status, list.body)
			}

			// Bound: bob is refused, counted as a failed guess; alice redeems.
			code := iss.Codes[0]
			from := map[string]string{"X-Forwarded-For": "203.0.113.50"}
			rr := h.do("POST", "/v1/codes/"+code+"/redemptions", redeemToken, `{"userId":"bob"}`, from)
			wantReason(t, "bob redeems alice's code", rr, 403, "not_your_code")
			if strings.Contains(string(rr.body), "alice") {
				t.Errorf("the refusal names the owner: %s", rr.body)
			}
			rv := h.do("GET", "/v1/codes/"+code+"?userId=bob", redeemToken, "", from)
			var v codeView
			decode(t, rv.body, &v)
			if rv.status != 200 || v.Status != "not_your_code" || strings.Contains(string(rv.body), "alice") {
				t.Errorf("validation for bob: %d %s", rv.status, rv.body)
			}
			wantReason(t, "bob reserves it", h.do("POST", "/v1/codes/"+code+"/reservations", redeemToken,
				`{"userId":"bob"}`, from), 403, "not_your_code")
			// GuessLimit 6: 3 at once; three failed look-ups used them up.
			wantReason(t, "after three failed look-ups", h.do("GET", "/v1/codes/"+code+"?userId=bob", redeemToken, "", from),
				429, "rate_limited")
			if r := h.do("POST", "/v1/codes/"+code+"/redemptions", redeemToken, `{"userId":"alice"}`,
				map[string]string{"User-Agent": "checkout/7"}); r.status != 201 {
				t.Fatalf("alice redeems: %d %s", r.status, r.body)
			}
			// Its one use taken, alice's list says code_exhausted: the
			// refusal reason a redemption would get, by the same name.
			list = h.do("GET", "/v1/users/alice/codes", redeemToken, "", nil)
			decode(t, list.body, &mine)
			used := slices.IndexFunc(mine.Codes, func(c promo.UserCode) bool { return c.Code == code })
			if list.status != 200 || used < 0 || mine.Codes[used].Status != promo.ReasonCodeExhausted {
				t.Errorf("alice's codes after she redeemed %s: %d %s, want it code_exhausted", code, list.status, list.body)
			}
		})
	}
}

func TestEligibilityHTTP(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, redemption.Config{GuessLimit: -1, GuessLimitPerToken: -1})
			rules := &promo.Eligibility{Segments: []string{"vip"}, Countries: []string{"DE"},
				MinOrderAmount: &promo.Money{Amount: 500000, Currency: "EUR"}}
			p, codes := h.seed(promotionSpec{n: 4, maxUsage: 1, perUser: 0, rules: rules})
			redeem := func(code, body string) reply {
				return h.do("POST", "/v1/codes/"+code+"/redemptions", redeemToken, body,
					map[string]string{"User-Agent": "shop/1.0", "X-Forwarded-For": "198.51.100.77"})
			}
			for _, tc := range []struct{ body, rule string }{
				{`{"userId":"u"}`, "segments"},
				{`{"userId":"u","segments":["vip"],"country":"fr"}`, "countries"},
				{`{"userId":"u","segments":["vip"],"country":"de","order":{"amount":"49.99","currency":"EUR"}}`, "minOrderAmount"},
				{`{"userId":"u","segments":["vip"],"country":"de","order":{"amount":60,"currency":"USD"}}`, "minOrderAmount"},
			} {
				r := redeem(codes[0], tc.body)
				wantReason(t, tc.body, r, 409, "not_eligible")
				var pd struct{ Rule string }
				decode(t, r.body, &pd)
				if pd.Rule != tc.rule {
					t.Errorf("%s: rule %q, want %q", tc.body, pd.Rule, tc.rule)
				}
			}
			q := "?userId=u&segments=new,vip&country=DE&orderAmount=49.99&currency=eur"
			var v codeView
			rv := h.do("GET", "/v1/codes/"+codes[0]+q, redeemToken, "", nil)
			decode(t, rv.body, &v)
			if rv.status != 200 || v.Status != "not_eligible" || !strings.Contains(string(rv.body), `"rule":"minOrderAmount"`) {
				t.Errorf("validation: %d %s", rv.status, rv.body)
			}
			rv = h.do("GET", "/v1/codes/"+codes[0]+strings.Replace(q, "49.99", "50", 1), redeemToken, "", nil)
			if decode(t, rv.body, &v); v.Status != "redeemable" {
				t.Errorf("validation of an eligible order: %s", rv.body)
			}
			wantReason(t, "reservation", h.do("POST", "/v1/codes/"+codes[1]+"/reservations", redeemToken,
				`{"userId":"u","segments":["new"]}`, nil), 409, "not_eligible")
			if r := redeem(codes[0], `{"userId":"u","order":{"amount":"1.5","currency":"EUR"},"firstOrder":true,`+
				`"segments":["x"],"country":"de"}`); r.status != 409 {
				t.Errorf("ineligible: %d", r.status)
			}
			if r := redeem(codes[0], `{"userId":"u","order":{"amount":"12.345678","currency":"EUR"}}`); r.status != 400 {
				t.Errorf("an amount with 6 decimals: %d %s", r.status, r.body)
			}
			if r := redeem(codes[0], `{"userId":"u","order":{"amount":"1","currency":"EURO"}}`); r.status != 422 {
				t.Errorf("a 4-letter currency: %d %s", r.status, r.body)
			}
			ok := `{"userId":"u","orderId":"o1","segments":["vip","new"],"country":"de","firstOrder":true,` +
				`"order":{"amount":"120.50","currency":"eur","discount":"12"}}`
			r := redeem(codes[0], ok)
			if r.status != 201 {
				t.Fatalf("eligible redemption: %d %s", r.status, r.body)
			}
			var red map[string]any
			decode(t, r.body, &red)
			order, _ := red["order"].(map[string]any)
			if red["clientAddress"] != "198.51.100.77" || red["userAgent"] != "shop/1.0" || red["country"] != "DE" ||
				order["amount"] != "120.50" || order["discount"] != "12.00" || order["currency"] != "EUR" {
				t.Errorf("redemption answer %s", r.body)
			}
			st := h.do("GET", "/v1/promotions/"+p.IDString()+"/stats", adminToken, "", nil)
			var stats struct {
				Orders   []promo.OrderTotals
				Segments []promo.SegmentStats
			}
			decode(t, st.body, &stats)
			if st.status != 200 || len(stats.Orders) != 1 || stats.Orders[0].OrderValue != "120.50" ||
				stats.Orders[0].Discount != "12.00" || len(stats.Segments) != 2 || stats.Segments[1].Segment != "vip" ||
				stats.Segments[1].Rate != 1 {
				t.Errorf("stats: %d %s", st.status, st.body)
			}
			// The event published for other services carries the order, not the client's address.
			evs, err := h.st.ClaimEvents(h.ctx, 100, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var seen bool
			for _, ev := range evs {
				var e promo.RedemptionEvent
				if json.Unmarshal(ev.Payload, &e) == nil && e.Type == promo.EventRedeemed {
					seen = true
					if e.Redemption.ClientAddr != "" || e.Redemption.UserAgent != "" || e.Redemption.Order == nil {
						t.Errorf("event %s", ev.Payload)
					}
				}
			}
			if !seen {
				t.Error(fmt.Sprintf("no %s event among %d", promo.EventRedeemed, len(evs)))
			}
		})
	}
}

// Eligibility rules are set at create and replaced by PATCH (validated,
// named field by field), shown by GET, and followed by the next redemption.
func TestEligibilityCreateAndPatchHTTP(t *testing.T) {
	h := newHarness(t, "sqlite", redemption.Config{GuessLimit: -1, GuessLimitPerToken: -1})
	bad := h.do("POST", "/v1/promotions", adminToken, `{"name":"v","code":"ELIGBAD1","eligibility":{"countries":["DEU"],`+
		`"minOrderAmount":{"amount":"0","currency":"EURO"}}}`, nil)
	if bad.status != 422 {
		t.Fatalf("bad rules: %d %s", bad.status, bad.body)
	}
	for _, f := range []string{"eligibility.countries", "eligibility.minOrderAmount.amount", "eligibility.minOrderAmount.currency"} {
		if !strings.Contains(string(bad.body), `"field":"`+f+`"`) {
			t.Errorf("the 422 does not name %s: %s", f, bad.body)
		}
	}
	if r := h.do("POST", "/v1/promotions", adminToken, `{"name":"v","code":"ELIGBAD2","eligibility":{"country":["DE"]}}`, nil); r.status != 400 ||
		!strings.Contains(string(r.body), "eligibility.country") {
		t.Errorf("an unknown rule: %d %s", r.status, r.body)
	}
	r := h.do("POST", "/v1/promotions", adminToken, `{"name":"v","code":"ELIGOK01","maxUsagePerCode":10,"perUserLimit":0,`+
		`"eligibility":{"countries":["de","at"],"firstOrderOnly":true}}`, nil)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created struct{ ID string }
	decode(t, r.body, &created)
	get := h.do("GET", "/v1/promotions/"+created.ID, adminToken, "", nil)
	if !strings.Contains(string(get.body), `"eligibility":{"firstOrderOnly":true,"countries":["AT","DE"]}`) {
		t.Errorf("GET: %s", get.body)
	}
	wantReason(t, "not a first order", h.do("POST", "/v1/codes/ELIGOK01/redemptions", redeemToken,
		`{"userId":"u","country":"DE","firstOrder":false}`, nil), 409, "not_eligible")
	if r := h.do("POST", "/v1/codes/ELIGOK01/redemptions", redeemToken, `{"userId":"u","country":"AT","firstOrder":true}`, nil); r.status != 201 {
		t.Fatalf("eligible: %d %s", r.status, r.body)
	}
	p := h.do("PATCH", "/v1/promotions/"+created.ID, adminToken, `{"eligibility":{"segments":["vip"]}}`, nil)
	if p.status != 200 || !strings.Contains(string(p.body), `"eligibility":{"segments":["vip"]}`) {
		t.Fatalf("PATCH: %d %s", p.status, p.body)
	}
	wantReason(t, "after PATCH", h.do("POST", "/v1/codes/ELIGOK01/redemptions", redeemToken,
		`{"userId":"u","country":"AT","firstOrder":true}`, nil), 409, "not_eligible")
	if r := h.do("PATCH", "/v1/promotions/"+created.ID, adminToken, `{"eligibility":{"countries":["X1"]}}`, nil); r.status != 422 {
		t.Errorf("PATCH bad rules: %d %s", r.status, r.body)
	}
	if r := h.do("PATCH", "/v1/promotions/"+created.ID, adminToken, `{"eligibility":null}`, nil); r.status != 200 ||
		strings.Contains(string(r.body), "eligibility") {
		t.Fatalf("PATCH null: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/codes/ELIGOK01/redemptions", redeemToken, `{"userId":"u"}`, nil); r.status != 201 {
		t.Fatalf("without rules: %d %s", r.status, r.body)
	}
}
