package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
)

// The bad-input harness: every text field of every endpoint, on SQLite and
// on PostgreSQL (which refuses NUL in text and so turned a NUL in a name
// into a 500). A new endpoint is one entry in inputEndpoints; a new text
// field is one entry in its fields.

// textPlace says where a text field travels.
type textPlace int

const (
	inBody   textPlace = iota // a string at a JSON path of the body
	inPath                    // the {id} path segment
	inQuery                   // a query parameter
	inHeader                  // a request header
)

// textField is one text input of an endpoint.
type textField struct {
	name  string // as the problem document names it: "name", "format.prefix", "Idempotency-Key"
	place textPlace
	// strict: a control character in it must be refused with 422 naming
	// the field (free text and codes); otherwise any 4xx will do (ids).
	strict bool
}

// inputEndpoint is one endpoint under test. body is a valid JSON body (nil
// for none) into which body fields are set; path has {id} for the path field.
type inputEndpoint struct {
	method, path string
	id           string // the {id} path value when it is not the field under test (default "1")
	body         func() map[string]any
	fields       []textField
}

func generatedBody() map[string]any {
	return map[string]any{"name": "winter", "codeCount": 1000,
		"format": map[string]any{"charset": "alnum", "length": 10, "prefix": "WNTR", "suffix": "", "separator": "-", "groupSize": 4}}
}

// inputEndpoints lists the endpoints of the Promotion API with their text
// fields. Keep it complete: TestInputEndpointsCoverTheRoutes fails for a
// route that is not here.
var inputEndpoints = []inputEndpoint{
	{method: "POST", path: "/v1/promotions", body: generatedBody, fields: []textField{
		{name: "name", place: inBody, strict: true},
		{name: "format.charset", place: inBody, strict: true},
		{name: "format.prefix", place: inBody, strict: true},
		{name: "format.suffix", place: inBody, strict: true},
		{name: "format.separator", place: inBody, strict: true},
		{name: "Idempotency-Key", place: inHeader},
	}},
	{method: "POST", path: "/v1/promotions", body: func() map[string]any {
		return map[string]any{"name": "megadeth", "code": "MEGADETH21", "maxUsagePerCode": 1000}
	}, fields: []textField{
		{name: "name", place: inBody, strict: true},
		{name: "code", place: inBody, strict: true},
	}},
	{method: "GET", path: "/v1/promotions", fields: []textField{
		{name: "name", place: inQuery, strict: true}, {name: "status", place: inQuery},
		{name: "active", place: inQuery}, {name: "cursor", place: inQuery}, {name: "limit", place: inQuery}}},
	{method: "GET", path: "/v1/promotions/{id}", fields: []textField{{name: "id", place: inPath}}},
	{method: "GET", path: "/v1/promotions/{id}/stats", fields: []textField{
		{name: "id", place: inPath}, {name: "bucket", place: inQuery}, {name: "from", place: inQuery}, {name: "to", place: inQuery}}},
	{method: "GET", path: "/v1/promotions/{id}/codes", fields: []textField{
		{name: "id", place: inPath}, {name: "partial", place: inQuery}}},
	// The code endpoints ({id} is the code, or the redemption id).
	{method: "GET", path: "/v1/codes/{id}", id: "MEGADETH21", fields: []textField{
		{name: "id", place: inPath}, {name: "userId", place: inQuery}}},
	{method: "POST", path: "/v1/codes/{id}/redemptions", id: "MEGADETH21", body: func() map[string]any {
		return map[string]any{"userId": "alice", "orderId": "1001"}
	}, fields: []textField{
		{name: "id", place: inPath},
		{name: "userId", place: inBody, strict: true},
		{name: "orderId", place: inBody, strict: true},
		{name: "Idempotency-Key", place: inHeader},
	}},
	{method: "POST", path: "/v1/redemptions/{id}/rollback", body: func() map[string]any {
		return map[string]any{"reason": "order cancelled"}
	}, fields: []textField{
		{name: "id", place: inPath},
		{name: "reason", place: inBody, strict: true},
	}},
	{method: "GET", path: "/v1/promotions/{id}/redemptions", fields: []textField{
		{name: "id", place: inPath}, {name: "userId", place: inQuery}, {name: "after", place: inQuery},
		{name: "limit", place: inQuery}, {name: "code", place: inQuery}, {name: "from", place: inQuery},
		{name: "to", place: inQuery}}},
	// The promotion's life after its creation.
	{method: "PATCH", path: "/v1/promotions/{id}", body: func() map[string]any {
		return map[string]any{"name": "renamed"}
	}, fields: []textField{
		{name: "id", place: inPath},
		{name: "name", place: inBody, strict: true},
	}},
	{method: "POST", path: "/v1/promotions/{id}/cancel", fields: []textField{{name: "id", place: inPath}}},
	{method: "POST", path: "/v1/promotions/{id}/topups", body: func() map[string]any {
		return map[string]any{"codeCount": 1}
	}, fields: []textField{
		{name: "id", place: inPath},
		{name: "Idempotency-Key", place: inHeader},
	}},
	{method: "GET", path: "/v1/promotions/{id}/topups", fields: []textField{{name: "id", place: inPath}}},
	{method: "DELETE", path: "/v1/promotions/{id}", fields: []textField{{name: "id", place: inPath}}},
	{method: "GET", path: "/v1/promotions/{id}/audit", fields: []textField{
		{name: "id", place: inPath}, {name: "after", place: inQuery, strict: true}, {name: "limit", place: inQuery}}},
	{method: "POST", path: "/v1/codes/{id}/revoke", id: "REVOKEME1", body: func() map[string]any {
		return map[string]any{"reason": "leaked"}
	}, fields: []textField{
		{name: "id", place: inPath},
		{name: "reason", place: inBody, strict: true},
	}},
	{method: "GET", path: "/v1/users/{id}/redemptions", id: "shopper-1", fields: []textField{
		{name: "userId", place: inPath}, {name: "after", place: inQuery}, {name: "limit", place: inQuery},
		{name: "from", place: inQuery}, {name: "to", place: inQuery}}},
	{method: "POST", path: "/v1/promotions/{id}/issuances", body: func() map[string]any {
		return map[string]any{"userId": "alice", "count": 1}
	}, fields: []textField{
		{name: "id", place: inPath},
		{name: "userId", place: inBody, strict: true},
		{name: "Idempotency-Key", place: inHeader},
	}},
	{method: "GET", path: "/v1/users/{id}/codes", id: "shopper-1", fields: []textField{
		{name: "userId", place: inPath, strict: true}, {name: "limit", place: inQuery}}},
	// Reservations ({id} is the code, or the reservation id: an unknown one
	// is 404 once the body's fields passed).
	{method: "POST", path: "/v1/codes/{id}/reservations", id: "MEGADETH21", body: func() map[string]any {
		return map[string]any{"userId": "alice", "ttl": "15m", "country": "DE"}
	}, fields: []textField{
		{name: "id", place: inPath},
		{name: "userId", place: inBody, strict: true},
		{name: "ttl", place: inBody, strict: true},
		{name: "country", place: inBody, strict: true},
		{name: "Idempotency-Key", place: inHeader},
	}},
	{method: "GET", path: "/v1/reservations/{id}", fields: []textField{{name: "id", place: inPath}}},
	{method: "POST", path: "/v1/reservations/{id}/confirm", body: func() map[string]any {
		return map[string]any{"orderId": "1001", "country": "DE"}
	}, fields: []textField{
		{name: "id", place: inPath},
		{name: "orderId", place: inBody, strict: true},
		{name: "country", place: inBody, strict: true},
	}},
	{method: "DELETE", path: "/v1/reservations/{id}", fields: []textField{{name: "id", place: inPath}}},
}

// badTexts are the values tried in every text field.
var badTexts = []string{
	"\x00", "win\x00ter", "\x01", "tab\there", "new\nline", "\x1b[31mred", "\x7f", "\u0085", "\u2028",
	"\xff\xfe", "\ufffd", "'; DROP TABLE codes; --", "%00", "\\u0000", "../../etc/passwd", "{{.}}",
	strings.Repeat("é", 300), "", " ", "ＷＮＴＲ", "😀",
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\u2028' {
			return true
		}
	}
	return false
}

func setPath(m map[string]any, path, v string) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		m = m[p].(map[string]any)
	}
	m[parts[len(parts)-1]] = v
}

// tryText sends ep with field set to v and checks the answer: never a 5xx,
// a problem document for every refusal, 422 naming a strict field that holds
// a control character, and nothing written by a refused request.
func tryText(t *testing.T, e *env, ep inputEndpoint, f textField, v string) {
	t.Helper()
	id := ep.id
	if id == "" {
		id = "1"
	}
	path := strings.ReplaceAll(ep.path, "{id}", id)
	var body string
	header := http.Header{}
	switch f.place {
	case inBody:
		m := ep.body()
		setPath(m, f.name, v)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
	case inPath:
		path = strings.ReplaceAll(ep.path, "{id}", url.PathEscape(v))
	case inQuery:
		path += "?" + url.Values{f.name: {v}}.Encode()
	case inHeader:
		if hasControl(v) || !utf8.ValidString(v) {
			return // net/http refuses to send it; the server never sees it
		}
		header.Set(f.name, v)
	}
	if body == "" && ep.body != nil {
		b, _ := json.Marshal(ep.body())
		body = string(b)
	}
	before := e.rows()
	r := e.do(ep.method, path, body, header)
	if r.StatusCode >= 500 {
		t.Fatalf("%s %s with %s=%q: %d %s", ep.method, ep.path, f.name, v, r.StatusCode, r.body)
	}
	if r.StatusCode >= 400 {
		if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s with %s=%q: %d with Content-Type %q, want a problem document", ep.method, ep.path, f.name, v,
				r.StatusCode, ct)
		}
		if got := e.rows(); got != before {
			t.Errorf("%s %s with %s=%q: refused (%d) but wrote %+v (before %+v)", ep.method, ep.path, f.name, v,
				r.StatusCode, got, before)
		}
	}
	if f.strict && hasControl(v) {
		if r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s %s with %s=%q: %d %s, want 422", ep.method, ep.path, f.name, v, r.StatusCode, r.body)
			return
		}
		wantProblem(t, r, http.StatusUnprocessableEntity, f.name)
	}
}

func TestBadTextEveryField(t *testing.T) {
	for _, backend := range []string{backendSQLite, backendPostgres} {
		t.Run(backend, func(t *testing.T) {
			e := newEnvOn(t, backend, envConfig{Open: true, BatchCodeCount: 1000}, nil)
			e.create(`{"name":"existing","codeCount":10,"format":{"charset":"alnum","length":10}}`)
			e.create(`{"name":"vanity","code":"MEGADETH21","maxUsagePerCode":1000000}`)
			e.create(`{"name":"revoked","code":"REVOKEME1"}`)
			for _, ep := range inputEndpoints {
				for _, f := range ep.fields {
					t.Run(ep.method+" "+ep.path+" "+f.name, func(t *testing.T) {
						for _, v := range badTexts {
							tryText(t, e, ep, f, v)
						}
					})
				}
			}
			// The server still works after all that.
			e.create(`{"name":"after","codeCount":10,"format":{"charset":"alnum","length":10}}`)
		})
	}
}

// FuzzTextFields runs random text through every text field of every
// endpoint on SQLite and, when PROMOCODES_TEST_POSTGRES_DSN is set (or
// Docker works), PostgreSQL. `go test` runs the seeds; `go test -fuzz
// FuzzTextFields ./api` explores.
func FuzzTextFields(f *testing.F) {
	for i, v := range badTexts {
		f.Add(uint(i), v)
	}
	var all []struct {
		ep inputEndpoint
		tf textField
	}
	for _, ep := range inputEndpoints {
		for _, tf := range ep.fields {
			all = append(all, struct {
				ep inputEndpoint
				tf textField
			}{ep, tf})
		}
	}
	// One server per backend for the whole run (a PostgreSQL schema per
	// input would be slow); a failing input fails its own t.
	envs := map[string]*env{}
	for _, backend := range []string{backendSQLite, backendPostgres} {
		if backend == backendPostgres && os.Getenv(postgrestest.EnvDSN) == "" {
			f.Logf("FuzzTextFields runs on SQLite only: %s is not set", postgrestest.EnvDSN)
			continue
		}
		e := newEnvOn(f, backend, envConfig{Open: true, BatchCodeCount: 1000}, nil)
		e.create(`{"name":"existing","codeCount":10,"format":{"charset":"alnum","length":10}}`)
		e.create(`{"name":"vanity","code":"MEGADETH21","maxUsagePerCode":1000000}`)
		e.create(`{"name":"revoked","code":"REVOKEME1"}`)
		envs[backend] = e
	}
	f.Fuzz(func(t *testing.T, which uint, v string) {
		c := all[which%uint(len(all))]
		for _, e := range envs {
			e.t = t
			tryText(t, e, c.ep, c.tf, v)
		}
	})
}

// Every route the server answers is in inputEndpoints.
func TestInputEndpointsCoverTheRoutes(t *testing.T) {
	listed := map[string]bool{}
	for _, ep := range inputEndpoints {
		listed[ep.method+" "+ep.path] = true
	}
	for _, route := range api.Routes() {
		route = strings.ReplaceAll(strings.ReplaceAll(route, "{code}", "{id}"), "{userId}", "{id}")
		if strings.HasPrefix(route, "GET /healthz") || strings.HasPrefix(route, "GET /readyz") || strings.HasPrefix(route, "GET /metrics") {
			continue
		}
		if !listed[route] {
			t.Errorf("route %q is not in inputEndpoints: add it with its text fields", route)
		}
	}
}

func TestDuplicateJSONKeysRefused(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	for _, tc := range []struct{ body, field string }{
		{`{"name":"a","name":"b","codeCount":10,"format":{"charset":"alnum","length":10}}`, "name"},
		{`{"name":"a","codeCount":10,"codeCount":10000000,"format":{"charset":"alnum","length":10}}`, "codeCount"},
		{`{"name":"a","codeCount":10,"format":{"charset":"alnum","length":10,"length":12}}`, "format.length"},
		{`{"name":"a","codeCount":10,"format":{"charset":"alnum","length":10},"format":{"charset":"numeric","length":12}}`, "format"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			wantProblem(t, e.post(tc.body, nil), http.StatusBadRequest, tc.field)
		})
	}
	if got := e.rows(); got != (rows{}) {
		t.Errorf("duplicate keys wrote %+v", got)
	}
	// The same key in two different objects is not a duplicate.
	e.create(`{"name":"a","codeCount":10,"format":{"charset":"alnum","length":10,"prefix":"N"}}`)
}

// A separator inside a prefix or suffix is refused; where it meets the body
// it is what the display form shows anyway, and accepted.
func TestAffixWithSeparatorRefused(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	for _, tc := range []struct{ format, field string }{
		{`{"charset":"alnum","length":10,"prefix":"W-N","separator":"-","groupSize":4}`, "format.prefix"},
		{`{"charset":"alnum","length":10,"prefix":"WN--","separator":"-","groupSize":4}`, "format.prefix"},
		{`{"charset":"alnum","length":10,"suffix":"E-U","separator":"-","groupSize":4}`, "format.suffix"},
		{`{"charset":"alnum","length":10,"suffix":"-EU-","separator":"-","groupSize":4}`, "format.suffix"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			r := e.post(`{"name":"a","codeCount":10,"format":`+tc.format+`}`, nil)
			wantProblem(t, r, http.StatusUnprocessableEntity, tc.field)
		})
	}
	if got := e.rows(); got != (rows{}) {
		t.Errorf("refused formats wrote %+v", got)
	}
	e.create(`{"name":"a","codeCount":10,"format":{"charset":"alnum","length":10,"prefix":"WNTR-","suffix":"-EU","separator":"-","groupSize":4}}`)
}

// The capacity advice over HTTP: a refused length names minLength, and the
// same request with that length is accepted.
func TestCapacityAdviceOverHTTP(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 100_000}, nil)
	for _, tc := range []struct {
		charset string
		length  int
		count   int
	}{{"alnum", 3, 1000}, {"alnum", 5, 1000}, {"numeric", 4, 100}, {"numeric", 7, 5000}, {"alpha", 2, 1_000_000},
		{"ABCDEFGH2345", 5, 20_000}} {
		t.Run(fmt.Sprintf("%s/%d/%d", tc.charset, tc.length, tc.count), func(t *testing.T) {
			req := func(length int) string {
				return fmt.Sprintf(`{"name":"n","codeCount":%d,"format":{"charset":%q,"length":%d}}`, tc.count, tc.charset, length)
			}
			r := e.post(req(tc.length), nil)
			p := wantProblem(t, r, http.StatusUnprocessableEntity, "format.length")
			var doc struct {
				MinLength int `json:"minLength"`
			}
			decodeJSON(t, r.body, &doc)
			if doc.MinLength <= tc.length {
				t.Fatalf("minLength = %d in %s, want a longer length", doc.MinLength, r.body)
			}
			if msg, _ := p.field("format.length"); !strings.Contains(msg, fmt.Sprintf("at least %d", doc.MinLength)) {
				t.Errorf("format.length says %q, want \"at least %d\"", msg, doc.MinLength)
			}
			if r := e.post(req(doc.MinLength), nil); r.StatusCode != http.StatusAccepted {
				t.Errorf("the advised length %d: %d %s, want 202", doc.MinLength, r.StatusCode, r.body)
			}
		})
	}
}

// Length limits count UTF-16 code units, as SQL Server's nvarchar(n) columns
// do (user_id and order_id nvarchar(200), idempotency keys nvarchar(256),
// reasons nvarchar(500)): 101 emoji are 101 characters but 202 units, which
// a count of runes let through to a column that refuses them (a 500 there,
// and a limit that meant something else on each database).
func TestTextLimitsCountUTF16Units(t *testing.T) {
	e := newEnvOn(t, backendSQLite, envConfig{Open: true, BatchCodeCount: 1000}, nil)
	e.create(`{"name":"vanity","code":"MEGADETH21","maxUsagePerCode":1000000}`)
	wide := func(n int) string { return strings.Repeat("😀", n) }
	for _, c := range []struct {
		field, body string
		header      http.Header
	}{
		{"userId", `{"userId":"` + wide(101) + `"}`, nil},
		{"orderId", `{"userId":"alice","orderId":"` + wide(101) + `"}`, nil},
		{"Idempotency-Key", `{"userId":"alice"}`, http.Header{"Idempotency-Key": {wide(101)}}},
	} {
		before := e.rows()
		r := e.do("POST", "/v1/codes/MEGADETH21/redemptions", c.body, c.header)
		if r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s of 101 emoji (202 UTF-16 units): %d %s, want 422", c.field, r.StatusCode, r.body)
			continue
		}
		wantProblem(t, r, http.StatusUnprocessableEntity, c.field)
		if got := e.rows(); got != before {
			t.Errorf("%s: refused but wrote %+v", c.field, got)
		}
	}
	if r := e.do("POST", "/v1/codes/MEGADETH21/redemptions", `{"userId":"`+wide(100)+`"}`, nil); r.StatusCode != http.StatusCreated {
		t.Errorf("userId of 100 emoji (200 units): %d %s, want 201", r.StatusCode, r.body)
	}
}

// Metadata travels in the redemption events to other services, whose JSON
// decoders read numbers as IEEE 754 doubles (I-JSON, RFC 7493): a number
// beyond that range (1e999999999) was stored and published, and every such
// consumer fails to decode the event. It is refused with 422 naming it.
func TestMetadataNumbersFitADouble(t *testing.T) {
	e := newEnvOn(t, backendSQLite, envConfig{Open: true, BatchCodeCount: 1000}, nil)
	e.create(`{"name":"vanity","code":"MEGADETH21","maxUsagePerCode":1000000,"perUserLimit":0}`)
	for i, n := range []string{"1e999999999", "-1e400", "123456789e310"} {
		before := e.rows()
		r := e.do("POST", "/v1/codes/MEGADETH21/redemptions",
			fmt.Sprintf(`{"userId":"u%d","metadata":{"cart":{"total":%s}}}`, i, n), nil)
		if r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("metadata number %s: %d %s, want 422", n, r.StatusCode, r.body)
			continue
		}
		wantProblem(t, r, http.StatusUnprocessableEntity, "metadata.cart.total")
		if got := e.rows(); got != before {
			t.Errorf("metadata number %s: refused but wrote %+v", n, got)
		}
	}
	if r := e.do("POST", "/v1/codes/MEGADETH21/redemptions", `{"userId":"ok","metadata":{"a":1.5e300,"b":-0,"c":[1e-400]}}`, nil); r.StatusCode != http.StatusCreated {
		t.Errorf("metadata numbers within a double's range: %d %s, want 201", r.StatusCode, r.body)
	}
}
