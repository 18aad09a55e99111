package redemption_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/redemption"
)

// The answers' shapes are the API client's (pkg/client), so these tests
// also check that the client reads what the server writes.
type (
	codeView = client.CodeView
	receipt  = client.Redemption
)

func (h *harness) validate(code, user string) (reply, codeView) {
	h.t.Helper()
	path := "/v1/codes/" + pathEscape(code)
	if user != "" {
		path += "?userId=" + user
	}
	r := h.do("GET", path, redeemToken, "", nil)
	var v codeView
	if r.status == http.StatusOK {
		decode(h.t, r.body, &v)
	}
	return r, v
}

func wantReason(t *testing.T, what string, r reply, status int, reason string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, r.body, status, reason)
	}
	if got := reasonOf(t, r); got != reason {
		t.Fatalf("%s: reason %q, want %q (%s)", what, got, reason, r.body)
	}
}

// countingStore counts the calls that reach the database for a code.
type countingStore struct {
	store
	lookups atomic.Int64
}

func (c *countingStore) CodeState(ctx context.Context, code, userID string) (promo.CodeState, error) {
	c.lookups.Add(1)
	return c.store.CodeState(ctx, code, userID)
}

func (c *countingStore) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	c.lookups.Add(1)
	return c.store.Redeem(ctx, req)
}

func TestValidateAndRedeem(t *testing.T) {
	cs := &countingStore{store: openStore(t, "sqlite", 4)}
	h := newHarnessOn(t, cs, noGuessLimit, zaptest.NewLogger(t))
	p, codes := h.seed(promotionSpec{n: 3, maxUsage: 2, perUser: 1})
	code := codes[0] // display form, e.g. T7KQ2-M9XD-P3X…

	r, v := h.validate(code, "")
	if r.status != http.StatusOK || v.Code != code || v.Promotion.ID != fmt.Sprint(p.ID) || v.Status != "redeemable" ||
		v.UsesLeft != 2 || v.UserUsesLeft != nil {
		t.Fatalf("validate = %d %s", r.status, r.body)
	}
	// Typed any way: lower case, separators moved, spaces.
	typed := strings.ToLower(strings.ReplaceAll(code, "-", "")[:4]) + " - " + strings.ReplaceAll(code, "-", "")[4:]
	if r, v := h.validate(typed, "alice"); r.status != http.StatusOK || v.Code != code || v.UserUsesLeft == nil || *v.UserUsesLeft != 1 {
		t.Fatalf("validate %q for alice = %d %s", typed, r.status, r.body)
	}

	// A typo (one character changed) is caught by the check character
	// before any database access.
	before := cs.lookups.Load()
	bad := []byte(strings.ReplaceAll(code, "-", ""))
	i := len(bad) - 3
	if bad[i] == '2' {
		bad[i] = '3'
	} else {
		bad[i] = '2'
	}
	wantReason(t, "validate a typo", h.do("GET", "/v1/codes/"+string(bad), redeemToken, "", nil), 422, "invalid_code")
	r, _ = h.redeem(string(bad), "alice", nil)
	wantReason(t, "redeem a typo", r, 422, "invalid_code")
	for _, malformed := range []string{"%00abc", "ab%01cd", strings.Repeat("A", 300), "%E2%82%AC100", "---"} {
		wantReason(t, "validate "+malformed, h.do("GET", "/v1/codes/"+malformed, redeemToken, "", nil), 422, "invalid_code")
	}
	if n := cs.lookups.Load() - before; n != 0 {
		t.Errorf("typos and malformed codes reached the database %d times, want 0", n)
	}
	wantReason(t, "validate an unknown code", h.do("GET", "/v1/codes/NOSUCHCODE", redeemToken, "", nil), 404, "code_not_found")

	// Redeem: 201 with the redemption.
	r, err := h.try("POST", "/v1/codes/"+typed+"/redemptions", redeemToken,
		`{"userId":"alice","orderId":"o-1","metadata":{"cart": 42}}`, nil)
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("redeem = %d %s, %v", r.status, r.body, err)
	}
	var rc receipt
	decode(t, r.body, &rc)
	if rc.ID == "" || rc.Code != code || rc.PromotionID != fmt.Sprint(p.ID) || rc.UserID != "alice" || rc.OrderID != "o-1" ||
		string(rc.Metadata) != `{"cart":42}` || rc.UsesLeft != 1 || time.Since(rc.RedeemedAt) > time.Minute ||
		r.header.Get("Location") != "/v1/redemptions/"+rc.ID {
		t.Fatalf("redemption = %s (Location %q)", r.body, r.header.Get("Location"))
	}
	if r, v := h.validate(code, "alice"); r.status != http.StatusOK || v.Status != "user_limit_reached" || v.UsesLeft != 1 {
		t.Errorf("validate after alice's use = %d %s, want user_limit_reached with 1 use left", r.status, r.body)
	}
	r, _ = h.redeem(codes[1], "alice", nil)
	wantReason(t, "alice's second code", r, 409, "user_limit_reached")
	r, _ = h.redeem(code, "bob", nil)
	if r.status != http.StatusCreated {
		t.Fatalf("bob: %d %s", r.status, r.body)
	}
	r, _ = h.redeem(code, "carol", nil)
	wantReason(t, "a used-up code", r, 409, "code_exhausted")
	if r, v := h.validate(code, ""); r.status != http.StatusOK || v.Status != "code_exhausted" {
		t.Errorf("validate a used-up code = %d %s", r.status, r.body)
	}
	r, _ = h.redeem("NOSUCHCODE", "carol", nil)
	wantReason(t, "unknown code", r, 404, "code_not_found")

	// Rollback gives the use back, once.
	rb := h.do("POST", "/v1/redemptions/"+rc.ID+"/rollback", redeemToken, `{"reason":"order cancelled"}`, nil)
	var rolled receipt
	decode(t, rb.body, &rolled)
	if rb.status != http.StatusOK || rolled.RolledBackAt == nil || rolled.RollbackReason != "order cancelled" || rolled.ID != rc.ID {
		t.Fatalf("rollback = %d %s", rb.status, rb.body)
	}
	again := h.do("POST", "/v1/redemptions/"+rc.ID+"/rollback", redeemToken, `{"reason":"order cancelled"}`, nil)
	if again.status != http.StatusOK || string(again.body) != string(rb.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("second rollback = %d %s, want the first answer replayed", again.status, again.body)
	}
	if r, v := h.validate(code, "alice"); r.status != http.StatusOK || v.Status != "redeemable" || v.UsesLeft != 1 {
		t.Errorf("validate after the rollback = %d %s, want redeemable with 1 use left (alice may use it again)", r.status, r.body)
	}
	wantReason(t, "rollback of an unknown redemption",
		h.do("POST", "/v1/redemptions/nope/rollback", redeemToken, `{}`, nil), 404, "")
}

func TestValidityWindowAndSwitch(t *testing.T) {
	h := newHarness(t, "sqlite", noGuessLimit)
	now := time.Now().UTC()
	future, later := now.Add(time.Hour), now.Add(2*time.Hour)
	past, earlier := now.Add(-2*time.Hour), now.Add(-time.Hour)
	_, soon := h.seed(promotionSpec{n: 1, maxUsage: 1, perUser: 1, startsAt: &future, expiresAt: &later})
	_, gone := h.seed(promotionSpec{n: 1, maxUsage: 1, perUser: 1, startsAt: &past, expiresAt: &earlier,
		format: promo.Format{Charset: "alnum", Length: 10, Prefix: "E"}})
	pOff, off := h.seed(promotionSpec{n: 1, maxUsage: 1, perUser: 1, format: promo.Format{Charset: "alnum", Length: 10, Prefix: "D"}})
	if err := h.st.(interface {
		SetPromotionActive(context.Context, int64, bool) error
	}).SetPromotionActive(h.ctx, pOff.ID, false); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		code, status string
		http         int
		reason       string
	}{{soon[0], "not_started", 409, "not_started"}, {gone[0], "expired", 410, "expired"}, {off[0], "deactivated", 410, "deactivated"}} {
		r, v := h.validate(c.code, "")
		if r.status != http.StatusOK || string(v.Status) != c.status {
			t.Errorf("validate %s = %d %s, want status %s", c.code, r.status, r.body, c.status)
		}
		r, _ = h.redeem(c.code, "u", nil)
		wantReason(t, "redeem "+c.status, r, c.http, c.reason)
	}
	if _, v := h.validate(soon[0], ""); v.StartsAt == nil || !v.StartsAt.Equal(future.Truncate(time.Microsecond)) ||
		v.ExpiresAt == nil || !v.ExpiresAt.Equal(later.Truncate(time.Microsecond)) {
		t.Errorf("validity window = %v .. %v, want %v .. %v", v.StartsAt, v.ExpiresAt, future, later)
	}
}

func TestVanityCodesAreCaseInsensitive(t *testing.T) {
	h := newHarness(t, "sqlite", noGuessLimit)
	h.vanity("MEGADETH21", 2, 0)
	if r, v := h.validate("megadeth21", ""); r.status != http.StatusOK || v.Code != "MEGADETH21" || v.UsesLeft != 2 {
		t.Fatalf("validate megadeth21 = %d %s", r.status, r.body)
	}
	for _, typed := range []string{"Mega-Deth-21", "mega deth 21"} {
		if r, _ := h.redeem(typed, "u-"+typed, nil); r.status != http.StatusCreated {
			t.Fatalf("redeem %q = %d %s", typed, r.status, r.body)
		}
	}
	r, _ := h.redeem("MEGADETH21", "x", nil)
	wantReason(t, "third use of a max-2 vanity code", r, 409, "code_exhausted")
}

func TestRedemptionIdempotency(t *testing.T) {
	h := newHarness(t, "sqlite", noGuessLimit)
	_, codes := h.seed(promotionSpec{n: 2, maxUsage: 1, perUser: 0})
	key := map[string]string{"Idempotency-Key": "order-7"}
	first, _ := h.redeem(codes[0], "u", key)
	second, _ := h.redeem(strings.ToLower(codes[0]), "u", key) // the same code, typed otherwise
	if first.status != 201 || second.status != 201 || string(first.body) != string(second.body) ||
		second.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay = %d %s, want the first answer %d %s", second.status, second.body, first.status, first.body)
	}
	other, _ := h.redeem(codes[1], "u", key)
	wantReason(t, "same key, other code", other, 409, "idempotency_conflict")
	// A refusal is replayed as it was, even once the code is free again.
	refusedKey := map[string]string{"Idempotency-Key": "order-8"}
	r1, _ := h.redeem(codes[0], "v", refusedKey)
	wantReason(t, "used-up code", r1, 409, "code_exhausted")
	var rc receipt
	decode(t, first.body, &rc)
	h.do("POST", "/v1/redemptions/"+rc.ID+"/rollback", redeemToken, `{}`, nil)
	r2, _ := h.redeem(codes[0], "v", refusedKey)
	if r2.status != r1.status || string(r2.body) != string(r1.body) {
		t.Errorf("replayed refusal = %d %s, want %d %s", r2.status, r2.body, r1.status, r1.body)
	}
}

func TestAuditTrail(t *testing.T) {
	h := newHarness(t, "sqlite", noGuessLimit)
	id := h.vanity("AUDIT2026", 100, 0)
	var ids []string
	for i := range 5 {
		r, _ := h.try("POST", "/v1/codes/AUDIT2026/redemptions", redeemToken,
			fmt.Sprintf(`{"userId":"user-%d","orderId":"o-%d","metadata":{"n":%d}}`, i%2, i, i), nil)
		var rc receipt
		decode(t, r.body, &rc)
		ids = append(ids, rc.ID)
	}
	h.do("POST", "/v1/redemptions/"+ids[0]+"/rollback", redeemToken, `{"reason":"cancelled, \"really\""}`, nil)

	var page struct {
		Redemptions []receipt `json:"redemptions"`
		Next        string    `json:"next"`
	}
	r := h.do("GET", "/v1/promotions/"+id+"/redemptions?limit=3", adminToken, "", nil)
	decode(t, r.body, &page)
	if r.status != 200 || len(page.Redemptions) != 3 || page.Redemptions[0].ID != ids[4] || page.Next != ids[2] {
		t.Fatalf("first page = %d %s", r.status, r.body)
	}
	r = h.do("GET", "/v1/promotions/"+id+"/redemptions?limit=3&after="+page.Next, adminToken, "", nil)
	page.Next = ""
	decode(t, r.body, &page)
	if len(page.Redemptions) != 2 || page.Redemptions[1].ID != ids[0] || page.Redemptions[1].RolledBackAt == nil || page.Next != "" {
		t.Fatalf("second page = %s", r.body)
	}
	r = h.do("GET", "/v1/promotions/"+id+"/redemptions?userId=user-1", adminToken, "", nil)
	decode(t, r.body, &page)
	if len(page.Redemptions) != 2 {
		t.Fatalf("user filter = %s", r.body)
	}

	r = h.do("GET", "/v1/promotions/"+id+"/redemptions", adminToken, "", map[string]string{"Accept": "text/csv"})
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV = %d %v", r.status, r.header)
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil || len(rows) != 6 || rows[0][0] != "id" || rows[5][0] != ids[0] || rows[5][8] != `cancelled, "really"` ||
		rows[1][9] != `{"n":4}` {
		t.Fatalf("CSV rows = %q, %v", rows, err)
	}
	wantReason(t, "audit of an unknown promotion", h.do("GET", "/v1/promotions/999999/redemptions", adminToken, "", nil), 404, "")
	wantReason(t, "bad limit", h.do("GET", "/v1/promotions/"+id+"/redemptions?limit=0", adminToken, "", nil), 422, "")
}

func TestRoles(t *testing.T) {
	h := newHarness(t, "sqlite", noGuessLimit)
	h.vanity("ROLES2026", 10, 0)
	for _, c := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/v1/codes/ROLES2026", "", "", 401},
		{"POST", "/v1/codes/ROLES2026/redemptions", "", `{"userId":"u"}`, 401},
		{"GET", "/v1/codes/ROLES2026", redeemToken, "", 200},
		{"GET", "/v1/codes/ROLES2026", adminToken, "", 200},
		{"POST", "/v1/codes/ROLES2026/redemptions", adminToken, `{"userId":"u"}`, 201},
		{"POST", "/v1/promotions", redeemToken, `{"name":"x","code":"NOPE12345"}`, 403},
		{"GET", "/v1/promotions/1", redeemToken, "", 403},
		{"GET", "/v1/promotions/1/redemptions", redeemToken, "", 403},
		{"GET", "/v1/promotions/1/codes", redeemToken, "", 403},
	} {
		if r := h.do(c.method, c.path, c.token, c.body, nil); r.status != c.want {
			t.Errorf("%s %s with %q: %d %s, want %d", c.method, c.path, c.token, r.status, r.body, c.want)
		}
	}
}

// TestBadInput: every refused request is 4xx problem+json and writes nothing.
func TestBadInput(t *testing.T) {
	h := newHarness(t, "sqlite", noGuessLimit)
	id := h.vanity("INPUT2026", 10, 0)
	big := `{"userId":"u","metadata":{"x":"` + strings.Repeat("a", 2000) + `"}}`
	for _, c := range []struct {
		name, path, body, ctype string
		header                  map[string]string
		want                    int
		field                   string
	}{
		{"unknown field", "/v1/codes/INPUT2026/redemptions", `{"userId":"u","coupon":1}`, "", nil, 400, "coupon"},
		{"missing userId", "/v1/codes/INPUT2026/redemptions", `{"orderId":"o"}`, "", nil, 422, "userId"},
		{"empty userId", "/v1/codes/INPUT2026/redemptions", `{"userId":""}`, "", nil, 422, "userId"},
		{"userId not a string", "/v1/codes/INPUT2026/redemptions", `{"userId":7}`, "", nil, 400, "userId"},
		{"control character in userId", "/v1/codes/INPUT2026/redemptions", `{"userId":"a\u0000b"}`, "", nil, 422, "userId"},
		{"long userId", "/v1/codes/INPUT2026/redemptions", `{"userId":"` + strings.Repeat("u", 201) + `"}`, "", nil, 422, "userId"},
		{"long orderId", "/v1/codes/INPUT2026/redemptions", `{"userId":"u","orderId":"` + strings.Repeat("o", 201) + `"}`, "", nil, 422, "orderId"},
		{"oversized metadata", "/v1/codes/INPUT2026/redemptions", big, "", nil, 422, "metadata"},
		{"metadata not an object", "/v1/codes/INPUT2026/redemptions", `{"userId":"u","metadata":[1,2]}`, "", nil, 422, "metadata"},
		{"NUL in metadata", "/v1/codes/INPUT2026/redemptions", `{"userId":"u","metadata":{"a":"\u0000"}}`, "", nil, 422, "metadata.a"},
		{"trailing data", "/v1/codes/INPUT2026/redemptions", `{"userId":"u"} {}`, "", nil, 400, ""},
		{"not JSON", "/v1/codes/INPUT2026/redemptions", `userId=u`, "", nil, 400, ""},
		{"empty body", "/v1/codes/INPUT2026/redemptions", ``, "", nil, 400, ""},
		{"wrong content type", "/v1/codes/INPUT2026/redemptions", `{"userId":"u"}`, "text/plain", nil, 415, "Content-Type"},
		{"bad idempotency key", "/v1/codes/INPUT2026/redemptions", `{"userId":"u"}`, "", map[string]string{"Idempotency-Key": strings.Repeat("k", 201)}, 422, "Idempotency-Key"},
		{"absurd code", "/v1/codes/" + strings.Repeat("Z", 300) + "/redemptions", `{"userId":"u"}`, "", nil, 422, ""},
		{"rollback: unknown field", "/v1/redemptions/x/rollback", `{"why":"x"}`, "", nil, 400, "why"},
		{"rollback: long reason", "/v1/redemptions/x/rollback", `{"reason":"` + strings.Repeat("r", 501) + `"}`, "", nil, 422, "reason"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.srv.URL+c.path, strings.NewReader(c.body))
			ct := c.ctype
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Authorization", "Bearer "+redeemToken)
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			resp, err := h.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p problemDoc
			_ = json.NewDecoder(resp.Body).Decode(&p)
			if resp.StatusCode != c.want || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d %+v (%s), want %d problem+json", resp.StatusCode, p, resp.Header.Get("Content-Type"), c.want)
			}
			if c.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != c.field) {
				t.Errorf("problem %+v does not name field %q", p, c.field)
			}
		})
	}
	var page struct{ Redemptions []receipt }
	decode(t, h.do("GET", "/v1/promotions/"+id+"/redemptions", adminToken, "", nil).body, &page)
	if len(page.Redemptions) != 0 || h.used([]string{"INPUT2026"}) != 0 {
		t.Errorf("refused requests wrote %d redemptions, used = %d; want nothing", len(page.Redemptions), h.used([]string{"INPUT2026"}))
	}
}

// Failed look-ups count per client address (through a trusted proxy, the
// address it forwards) and per token, never per userId: rotating users gains
// nothing, and failures in a shopper's name do not lock that shopper out.
func TestGuessingIsRateLimited(t *testing.T) {
	h := newHarness(t, "sqlite", redemption.Config{GuessLimit: 6, GuessWindow: time.Minute})
	h.vanity("REAL2026", 100, 0)
	from := func(addr string) map[string]string { return map[string]string{"X-Forwarded-For": addr} }
	// 6 per minute: 3 at once, then one every 20 s. Mallory fails in alice's name.
	for i := range 3 {
		wantReason(t, fmt.Sprintf("guess %d", i+1), h.do("GET", fmt.Sprintf("/v1/codes/GUESS%d?userId=alice", i), redeemToken, "",
			from("203.0.113.7")), 404, "code_not_found")
	}
	r := h.do("GET", "/v1/codes/GUESS9?userId=alice", redeemToken, "", from("203.0.113.7"))
	wantReason(t, "4th failed guess", r, 429, "rate_limited")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 20 {
		t.Errorf("Retry-After = %q, want 1..20 (one guess returns every 20 s)", r.header.Get("Retry-After"))
	}
	// Rotating users from the same address: still refused, even a real code.
	for i := range 5 {
		r := h.do("GET", fmt.Sprintf("/v1/codes/GUESS%d?userId=user-%d", 10+i, i), redeemToken, "", from("203.0.113.7"))
		wantReason(t, "rotated user", r, 429, "rate_limited")
	}
	rr := h.do("POST", "/v1/codes/GUESS10/redemptions", redeemToken, `{"userId":"u-99"}`, from("203.0.113.7"))
	wantReason(t, "a redemption guess past the limit", rr, 429, "rate_limited")
	// Rotating inside an IPv6 /64 is the same client.
	for i := range 3 {
		h.do("GET", "/v1/codes/NOPE2026", redeemToken, "", from(fmt.Sprintf("2001:db8:1:2::%x", i+1)))
	}
	wantReason(t, "rotating within a /64", h.do("GET", "/v1/codes/NOPE2026", redeemToken, "", from("2001:db8:1:2:ffff::9")),
		429, "rate_limited")
	// The genuine alice, from her own address, is not locked out.
	for range 5 {
		if r := h.do("GET", "/v1/codes/REAL2026?userId=alice", redeemToken, "", from("198.51.100.2")); r.status != 200 {
			t.Fatalf("alice: %d %s", r.status, r.body)
		}
	}
	if r := h.do("POST", "/v1/codes/REAL2026/redemptions", redeemToken, `{"userId":"alice"}`, from("198.51.100.2")); r.status != 201 {
		t.Fatalf("alice redeems: %d %s", r.status, r.body)
	}
	// A header from an untrusted peer names nobody: the peer is the client.
	// (The test server's peer, 127.0.0.1, is the trusted proxy; without a
	// header it is the client itself.)
	for range 3 {
		h.do("GET", "/v1/codes/NOPE2027", redeemToken, "", nil)
	}
	wantReason(t, "the proxy's own address", h.do("GET", "/v1/codes/NOPE2027", redeemToken, "", nil), 429, "rate_limited")
}

// All addresses of one token together get GuessLimitPerToken: a botnet
// rotating addresses behind one credential is held too.
func TestGuessingIsRateLimitedPerToken(t *testing.T) {
	h := newHarness(t, "sqlite", redemption.Config{GuessLimit: 30, GuessLimitPerToken: 10, GuessWindow: time.Minute})
	for i := range 5 {
		r := h.do("GET", "/v1/codes/NOPE2026", redeemToken, "", map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i)})
		wantReason(t, "guess", r, 404, "code_not_found")
	}
	r := h.do("GET", "/v1/codes/NOPE2026", redeemToken, "", map[string]string{"X-Forwarded-For": "198.51.100.77"})
	wantReason(t, "a 6th address with the same token", r, 429, "rate_limited")
	// Another token is another client.
	r = h.do("GET", "/v1/codes/NOPE2026", adminToken, "", map[string]string{"X-Forwarded-For": "198.51.100.77"})
	wantReason(t, "the admin token", r, 404, "code_not_found")
}

func TestCanonicalFormIsStored(t *testing.T) {
	// What the generator stores is what validation looks up: codes.Canonical
	// of the display form.
	h := newHarness(t, "sqlite", noGuessLimit)
	_, cs := h.seed(promotionSpec{n: 5, maxUsage: 1, perUser: 0,
		format: promo.Format{Charset: "alnum", Length: 12, Prefix: "Win-", Separator: "-", GroupSize: 3}})
	for _, c := range cs {
		canon, err := codes.Canonical(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.st.CodeState(h.ctx, canon, ""); err != nil {
			t.Errorf("display %q, canonical %q: %v", c, canon, err)
		}
		if r, v := h.validate(strings.ToLower(c), ""); r.status != 200 || v.Code != c {
			t.Errorf("validate %q = %d %s, want display %q", strings.ToLower(c), r.status, r.body, c)
		}
	}
}

func TestMetricsCountResults(t *testing.T) {
	st := openStore(t, "sqlite", 4)
	reg := prometheus.NewRegistry()
	svc, err := redemption.New(redemption.Config{GuessLimit: 2}, st, reg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	h := newHarnessOn(t, st, noGuessLimit, zaptest.NewLogger(t))
	h.vanity("METRICS26", 1, 0)
	ctx := context.Background()
	if _, _, err := svc.Redeem(ctx, redemption.Client{Addr: "c1"}, redemption.RedeemInput{Code: "metrics26", UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.Redeem(ctx, redemption.Client{Addr: "c1"}, redemption.RedeemInput{Code: "METRICS26", UserID: "v"})
	if promo.ReasonOf(err) != promo.ReasonCodeExhausted {
		t.Fatalf("second redemption: %v", err)
	}
	_, _ = svc.Validate(ctx, redemption.Client{Addr: "c2"}, "NOPE", "")
	_, err = svc.Validate(ctx, redemption.Client{Addr: "c2"}, "NOPE", "")
	if promo.ReasonOf(err) != promo.ReasonRateLimited {
		t.Fatalf("second failed look-up: %v, want rate_limited", err)
	}
	for _, c := range []struct {
		metric string
		c      prometheus.Collector
		want   float64
	}{
		{"redemptions{redeemed}", svcCounter(t, reg, "promocodes_redemptions_total", "result", "redeemed"), 1},
		{"redemptions{code_exhausted}", svcCounter(t, reg, "promocodes_redemptions_total", "result", "code_exhausted"), 1},
		{"validations{code_not_found}", svcCounter(t, reg, "promocodes_validations_total", "result", "code_not_found"), 1},
		{"validations{rate_limited}", svcCounter(t, reg, "promocodes_validations_total", "result", "rate_limited"), 1},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.metric, got, c.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "promocodes_rate_limited_total", "promocodes_redemption_duration_seconds"); err != nil || n != 3 {
		t.Errorf("rate-limited counter and latency histogram series = %d, %v; want 1 + 2 (redeem, validate)", n, err)
	}
}

// svcCounter finds one labelled series of a registered counter vector.
func svcCounter(t *testing.T, reg *prometheus.Registry, name, label, value string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return nil
}

func TestRefusalsReachTheStats(t *testing.T) {
	h := newHarness(t, "sqlite", noGuessLimit)
	id := h.vanity("REFUSE2026", 1, 1)
	if r, _ := h.redeem("REFUSE2026", "first", nil); r.status != 201 {
		t.Fatalf("first redemption: %d %s", r.status, r.body)
	}
	for i := range 4 {
		r, _ := h.redeem("REFUSE2026", fmt.Sprintf("late-%d", i), nil)
		wantReason(t, "a used-up code", r, 409, "code_exhausted")
	}
	if err := h.svc.FlushRefusals(h.ctx); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Refusals []struct {
			Reason string `json:"reason"`
			Count  int64  `json:"count"`
		} `json:"refusals"`
		Series []struct {
			Redemptions int64            `json:"redemptions"`
			Refusals    map[string]int64 `json:"refusals"`
		} `json:"series"`
	}
	decode(t, h.do("GET", "/v1/promotions/"+id+"/stats", adminToken, "", nil).body, &st)
	if len(st.Refusals) != 1 || st.Refusals[0].Reason != "code_exhausted" || st.Refusals[0].Count != 4 {
		t.Errorf("stats refusals = %+v, want code_exhausted: 4", st.Refusals)
	}
	// The same refusals in the series, in the bucket (this hour) of the redemption.
	if len(st.Series) != 1 || st.Series[0].Redemptions != 1 || len(st.Series[0].Refusals) != 1 ||
		st.Series[0].Refusals["code_exhausted"] != 4 {
		t.Errorf("series = %+v, want one bucket: 1 redemption, code_exhausted: 4", st.Series)
	}
}
