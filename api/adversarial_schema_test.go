//go:build integration

package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/api/apitest"
)

// TestAdversarialSchemaMutations drives every JSON body of the API through
// mutations derived from a valid body: each leaf and each object replaced by
// a value of every other JSON type, numbers at and past the usual edges
// (0, -1, 1.5, 2^53+1, 2^63, 1e308, 1e400), strings long and empty, an
// unknown member in each object, null. For each the OpenAPI document's
// validator says whether it conforms; the server must refuse (4xx, problem
// document) every request the document refuses, never answer 5xx, and the
// test server's Conform check fails any accepted request that does not
// conform. Requests the document accepts and the server refuses are logged
// (the server may refuse more: a state, a semantic rule).
func TestAdversarialSchemaMutations(t *testing.T) {
	for _, backend := range []string{backendSQLite, backendPostgres} {
		t.Run(backend, func(t *testing.T) { schemaMutations(t, backend) })
	}
}

func schemaMutations(t *testing.T, backend string) {
	e := newEnvOn(t, backend, envConfig{Open: true, MaxCodeCount: 100_000_000}, nil)
	val := apitest.Validator(t)

	vanity := e.create(`{"name":"schema","code":"SCHEMA0001","maxUsagePerCode":1000000,"perUserLimit":1000000}`)
	gen := e.create(`{"name":"schema-gen","codeCount":10,"format":{"charset":"alnum","length":10}}`)

	redeem := func(key string) string {
		r := e.do(http.MethodPost, "/v1/codes/SCHEMA0001/redemptions", `{"userId":"u-setup","orderId":"o"}`,
			http.Header{"Idempotency-Key": {key}})
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("setup redemption = %d %s", r.StatusCode, r.body)
		}
		var v struct{ ID string }
		decodeJSON(t, r.body, &v)
		return v.ID
	}
	reserve := func() string {
		r := e.do(http.MethodPost, "/v1/codes/SCHEMA0001/reservations", `{"userId":"u-setup","ttl":"10m"}`, nil)
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("setup reservation = %d %s", r.StatusCode, r.body)
		}
		var v struct{ ID string }
		decodeJSON(t, r.body, &v)
		return v.ID
	}

	type endpoint struct {
		name, method string
		path         func() string // a fresh target for each request that may change state
		body         string
	}
	n := 0
	endpoints := []endpoint{
		{"create generated", "POST", func() string { return "/v1/promotions" },
			`{"name":"w","codeCount":10,"format":{"charset":"alnum","length":10,"prefix":"W","suffix":"","separator":"-","groupSize":4,"checkChar":true},"maxUsagePerCode":1,"perUserLimit":1,"startsAt":"2026-01-01T00:00:00Z","expiresAt":"2036-01-01T00:00:00Z","eligibility":{"segments":["vip"],"minOrderAmount":{"amount":"10.00","currency":"EUR"},"firstOrderOnly":true,"countries":["DE"]}}`},
		{"create vanity", "POST", func() string { return "/v1/promotions" },
			`{"name":"v","code":"VANITYAAA","maxUsagePerCode":5,"perUserLimit":1}`},
		{"patch", "PATCH", func() string { return "/v1/promotions/" + vanity.ID },
			`{"name":"schema","startsAt":null,"expiresAt":"2036-01-01T00:00:00Z","active":true,"eligibility":{}}`},
		{"topup", "POST", func() string { return "/v1/promotions/" + gen.ID + "/topups" }, `{"codeCount":1}`},
		{"issuance", "POST", func() string { return "/v1/promotions/" + gen.ID + "/issuances" }, `{"userId":"u1","count":1}`},
		{"redeem", "POST", func() string { return "/v1/codes/SCHEMA0001/redemptions" },
			`{"userId":"u1","orderId":"o1","metadata":{"a":1},"segments":["vip"],"order":{"amount":"12.50","currency":"EUR","firstOrder":true},"country":"DE"}`},
		{"rollback", "POST", func() string { n++; return "/v1/redemptions/" + redeem(fmt.Sprintf("setup-%d", n)) + "/rollback" },
			`{"reason":"returned"}`},
		{"reserve", "POST", func() string { return "/v1/codes/SCHEMA0001/reservations" },
			`{"userId":"u1","ttl":"5m","segments":["vip"],"order":{"amount":"12.50","currency":"EUR"},"country":"DE"}`},
		{"confirm", "POST", func() string { return "/v1/reservations/" + reserve() + "/confirm" },
			`{"orderId":"o2","metadata":{"b":"c"}}`},
		{"revoke", "POST", func() string {
			n++
			code := fmt.Sprintf("REVOKE%04d", n)
			e.create(fmt.Sprintf(`{"name":"r","code":%q}`, code))
			return "/v1/codes/" + code + "/revoke"
		}, `{"reason":"leaked"}`},
	}

	var refusedByServerOnly []string
	total, agreeRefuse := 0, 0
	for _, ep := range endpoints {
		var base any
		if err := json.Unmarshal([]byte(ep.body), &base); err != nil {
			t.Fatalf("%s: base body: %v", ep.name, err)
		}
		for _, m := range mutations(base, "") {
			body, _ := json.Marshal(m.value)
			if m.raw != "" {
				body = []byte(m.raw)
			}
			path := ep.path()
			req := httptest.NewRequest(ep.method, path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			docOK, _ := val.ValidateHttpRequest(req)
			total++
			n++
			r := e.do(ep.method, path, string(body), http.Header{"Idempotency-Key": {fmt.Sprintf("mut-%d", n)}})
			switch {
			case r.StatusCode >= 500:
				t.Errorf("%s %s: %s → %d %s", ep.name, m.name, body, r.StatusCode, r.body)
			case !docOK && r.StatusCode < 300:
				t.Errorf("%s %s: the document refuses %s, the server accepted it: %d %.200s", ep.name, m.name, body, r.StatusCode, r.body)
			case !docOK:
				agreeRefuse++
			case r.StatusCode >= 400:
				refusedByServerOnly = append(refusedByServerOnly, fmt.Sprintf("%s %s → %d %.160s", ep.name, m.name, r.StatusCode, r.body))
			}
		}
	}
	logAgreement(t, "schema mutations", backend, fmt.Sprintf("%d requests over %d bodies", total, len(endpoints)),
		agreeRefuse, refusedByServerOnly)
}

// logAgreement logs the requests only the server refused and the case's
// outcome line: how many requests (over), how many both refused.
func logAgreement(t *testing.T, name, backend, over string, agreeRefuse int, serverOnly []string) {
	t.Helper()
	sort.Strings(serverOnly)
	for _, s := range serverOnly {
		t.Logf("document accepts, server refuses: %s", s)
	}
	outcome := fmt.Sprintf("%s; %d refused by both, %d refused by the server only (logged), none accepted against the document, no 5xx",
		over, agreeRefuse, len(serverOnly))
	if t.Failed() {
		outcome = "FAILED: " + outcome
	}
	t.Logf("adversarial: %s [%s]: %s", name, backend, outcome)
}

type mutation struct {
	name  string
	value any
	raw   string // the body as bytes when JSON values cannot say it (1e400)
}

// mutations returns v with one change each, at every path.
func mutations(v any, path string) []mutation {
	var out []mutation
	replace := func(name string, nv any) { out = append(out, mutation{name: path + " " + name, value: nv}) }
	for _, alt := range []struct {
		name string
		v    any
	}{
		{"null", nil}, {"true", true}, {"string", "x"}, {"empty string", ""}, {"zero", json.Number("0")},
		{"-1", json.Number("-1")}, {"1.5", json.Number("1.5")}, {"2^53+1", json.Number("9007199254740993")},
		{"2^63", json.Number("9223372036854775808")}, {"1e308", json.Number("1e308")}, {"-0", json.Number("-0")},
		{"1e2", json.Number("1e2")}, {"1e400", json.Number("1e400")}, {"400 digits", json.Number("1" + strings.Repeat("0", 400))}, {"array", []any{"x"}}, {"object", map[string]any{"x": 1}},
		{"long string", strings.Repeat("é", 5000)}, {"string 201", strings.Repeat("a", 201)},
		{"string 65", strings.Repeat("a", 65)}, {"bidi string", "a\u202eb"}, {"number as string", "12"},
	} {
		replace("= "+alt.name, alt.v)
	}
	switch x := v.(type) {
	case map[string]any:
		with := clone(x)
		with["unknownField"] = 1
		replace("+ unknown member", with)
		replace("= {}", map[string]any{})
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			without := clone(x)
			delete(without, k)
			replace("- "+k, without)
			for _, m := range mutations(x[k], path+"."+k) {
				c := clone(x)
				c[k] = m.value
				out = append(out, mutation{name: m.name, value: c})
			}
		}
	case []any:
		replace("= []", []any{})
		replace("= 51 items", repeat(x, 51))
		for i := range x {
			for _, m := range mutations(x[i], fmt.Sprintf("%s[%d]", path, i)) {
				c := append([]any(nil), x...)
				c[i] = m.value
				out = append(out, mutation{name: m.name, value: c})
			}
		}
	}
	if path == "" {
		// Outside what a JSON value can say: numbers past float64.
		out = append(out, mutation{name: "1e400 body", raw: "1e400"})
	}
	return out
}

func clone(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func repeat(x []any, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = x[i%len(x)]
	}
	return out
}

// TestAdversarialQueryMutations does the same for query parameters: every
// parameter of every GET of the API set to values the document refuses or
// that are at its edges (empty, negative, zero, past the maximum, past
// int64, exponent and fraction forms, long text, control characters,
// repeated), one at a time, plus an unknown parameter. The server must
// refuse (4xx) what the document refuses, and answer no 5xx; Conform fails
// any accepted request that does not conform.
func TestAdversarialQueryMutations(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	val := apitest.Validator(t)
	vanity := e.create(`{"name":"query","code":"QUERY00001","maxUsagePerCode":1000}`)
	if r := e.do(http.MethodPost, "/v1/codes/QUERY00001/redemptions", `{"userId":"u1"}`, nil); r.StatusCode != http.StatusCreated {
		t.Fatalf("setup redemption = %d %s", r.StatusCode, r.body)
	}
	type endpoint struct {
		path   string
		params map[string]string // a valid value of each
	}
	endpoints := []endpoint{
		{"/v1/promotions", map[string]string{"status": "completed", "active": "true", "name": "query", "limit": "5", "cursor": ""}},
		{"/v1/promotions/" + vanity.ID + "/codes", map[string]string{"partial": "true"}},
		{"/v1/promotions/" + vanity.ID + "/stats", map[string]string{"bucket": "day", "from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}},
		{"/v1/promotions/" + vanity.ID + "/redemptions", map[string]string{"userId": "u1", "from": "2026-01-01T00:00:00Z",
			"to": "2036-01-01T00:00:00Z", "limit": "10", "after": ""}},
		{"/v1/promotions/" + vanity.ID + "/redemptions", map[string]string{"code": "QUERY00001"}},
		{"/v1/users/u1/redemptions", map[string]string{"from": "2026-01-01T00:00:00Z", "to": "2036-01-01T00:00:00Z", "limit": "10", "after": ""}},
		{"/v1/users/u1/codes", map[string]string{"limit": "10"}},
		{"/v1/codes/QUERY00001", map[string]string{"userId": "u1", "segments": "vip", "orderAmount": "12.50", "currency": "EUR",
			"firstOrder": "true", "country": "DE"}},
		{"/v1/promotions/" + vanity.ID + "/audit", map[string]string{"after": "", "limit": "10"}},
	}
	values := []string{"", "-1", "0", "1", "1.5", "1e3", "501", "1001", "9223372036854775808", "abc", "TRUE", "2026-13-01T00:00:00Z",
		"2026-01-01", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", strings.Repeat("a", 300), "a\x01b", "\u202e", "ZZ", "zz,yy"}
	total, agreeRefuse := 0, 0
	var serverOnly []string
	for _, ep := range endpoints {
		names := make([]string, 0, len(ep.params))
		for k := range ep.params {
			names = append(names, k)
		}
		sort.Strings(names)
		send := func(what string, q url.Values) {
			u := ep.path + "?" + q.Encode()
			req := httptest.NewRequest(http.MethodGet, u, nil)
			docOK, _ := val.ValidateHttpRequest(req)
			// The API reads an empty parameter as an absent one (apitest does the same).
			total++
			r := e.do(http.MethodGet, u, "", nil)
			switch {
			case r.StatusCode >= 500:
				t.Errorf("%s %s → %d %.200s", ep.path, what, r.StatusCode, r.body)
			case !docOK && r.StatusCode < 300:
				emptyOnly := true
				for _, vs := range q {
					for _, v := range vs {
						if v != "" {
							emptyOnly = false
						}
					}
				}
				if !emptyOnly && !strings.HasSuffix(what, `= ""`) {
					t.Errorf("%s %s: the document refuses it, the server answered %d %.120s", ep.path, what, r.StatusCode, r.body)
				}
			case !docOK:
				agreeRefuse++
			case r.StatusCode >= 400:
				serverOnly = append(serverOnly, fmt.Sprintf("%s %s → %d %.140s", ep.path, what, r.StatusCode, r.body))
			}
		}
		base := url.Values{}
		for _, k := range names {
			if v := ep.params[k]; v != "" {
				base.Set(k, v)
			}
		}
		send("valid", base)
		for _, k := range names {
			for _, v := range values {
				q := url.Values{}
				for kk, vv := range base {
					q[kk] = vv
				}
				q.Set(k, v)
				send(fmt.Sprintf("%s = %q", k, v), q)
			}
			q := url.Values{}
			for kk, vv := range base {
				q[kk] = vv
			}
			q[k] = []string{ep.params[k], "zz"}
			send(k+" repeated", q)
		}
		q := url.Values{}
		for kk, vv := range base {
			q[kk] = vv
		}
		q.Set("unknownParam", "1")
		send("unknown parameter", q)
		// Queries that url.ParseQuery refuses, which r.URL.Query() reads as
		// fewer parameters without a word: a bad escape drops its pair (a
		// userId=%zz filter would list every user's redemptions), more than
		// 10,000 parameters drop them all. Each must be refused.
		for _, raw := range []struct{ what, q string }{
			{"a bad escape", base.Encode() + "&" + names[0] + "=%zz"},
			{"a bad escape alone", names[0] + "=%zz"},
			{"more than 10,000 parameters", base.Encode() + strings.Repeat("&segments=a", 10_001)},
		} {
			total++
			r := e.do(http.MethodGet, ep.path+"?"+raw.q, "", nil)
			if r.StatusCode < 400 || r.StatusCode >= 500 {
				t.Errorf("%s with %s: %d %.120s; want 4xx (the query is not one the server can read whole)", ep.path, raw.what,
					r.StatusCode, r.body)
			} else {
				agreeRefuse++
			}
		}
	}
	logAgreement(t, "query mutations", backendSQLite, fmt.Sprintf("%d requests over %d endpoints", total, len(endpoints)),
		agreeRefuse, serverOnly)
}

// TestAdversarialRepeatedHeaders: a request that carries Idempotency-Key,
// Authorization, Shopper-Token or Content-Type twice is refused (4xx naming the header),
// on every endpoint that reads one: the handlers read the first value, an
// intermediary (a gateway that de-duplicates on the key, a proxy that
// authenticates) may read the last, so the two could disagree about which
// request this is.
func TestAdversarialRepeatedHeaders(t *testing.T) {
	e := newEnv(t, envConfig{AdminTokens: []string{"admin-token-0123456789"}, RedeemTokens: []string{"redeem-token-0123456789"}}, nil)
	e.token = "admin-token-0123456789"
	e.create(`{"name":"hdr","code":"HEADER0001","maxUsagePerCode":1000,"perUserLimit":0}`)
	e.token = ""
	cases := []struct {
		name, method, path, body string
		header                   http.Header
	}{
		{"Idempotency-Key on a redemption", "POST", "/v1/codes/HEADER0001/redemptions", `{"userId":"u"}`,
			http.Header{"Authorization": {"Bearer redeem-token-0123456789"}, "Idempotency-Key": {"k1", "k2"}}},
		{"Idempotency-Key on a create", "POST", "/v1/promotions", `{"name":"x","code":"HEADER0002"}`,
			http.Header{"Authorization": {"Bearer admin-token-0123456789"}, "Idempotency-Key": {"k1", "k2"}}},
		{"Authorization on a redemption", "POST", "/v1/codes/HEADER0001/redemptions", `{"userId":"u"}`,
			http.Header{"Authorization": {"Bearer redeem-token-0123456789", "Bearer other"}}},
		{"Shopper-Token on a redemption", "POST", "/v1/codes/HEADER0001/redemptions", `{"userId":"u"}`,
			http.Header{"Authorization": {"Bearer redeem-token-0123456789"}, "Shopper-Token": {"a", "b"}}},
		{"Content-Type on a redemption", "POST", "/v1/codes/HEADER0001/redemptions", `{"userId":"u"}`,
			http.Header{"Authorization": {"Bearer redeem-token-0123456789"}, "Content-Type": {"application/json", "text/plain"}}},
	}
	before, err := e.query("SELECT count(*) FROM redemptions")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		r := e.do(c.method, c.path, c.body, c.header)
		outcome := fmt.Sprintf("%d", r.StatusCode)
		if r.StatusCode < 400 || r.StatusCode >= 500 {
			t.Errorf("%s given twice: %d %.160s; want 4xx", c.name, r.StatusCode, r.body)
			outcome = "FAILED: accepted " + outcome
		}
		t.Logf("adversarial: repeated header, %s [sqlite]: %s", c.name, outcome)
	}
	if after, err := e.query("SELECT count(*) FROM redemptions"); err != nil || after != before {
		t.Errorf("redemptions %d -> %d (%v); want nothing written", before, after, err)
	}
}
