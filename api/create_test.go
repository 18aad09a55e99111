package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// winter is the README's generated-codes request with count codes.
func winter(count int64) string {
	return fmt.Sprintf(`{"name":"winter","codeCount":%d,"format":{"charset":"alnum","length":10,`+
		`"prefix":"WNTR-","separator":"-","groupSize":4,"checkChar":true},"maxUsagePerCode":1,"perUserLimit":1}`, count)
}

func TestCreateGeneratedWritesOneOutboxRowPerBatch(t *testing.T) {
	const (
		n         = 120_001
		batchSize = 50_000
	)
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: batchSize}, nil)
	r := e.post(winter(n), nil)
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("POST = %d %s, want 202", r.StatusCode, r.body)
	}
	var c created
	decodeJSON(t, r.body, &c)
	if c.ID == "" || c.Status != "pending" {
		t.Errorf("body = %s, want an id and status pending", r.body)
	}
	if loc := r.Header.Get("Location"); loc != "/v1/promotions/"+c.ID {
		t.Errorf("Location = %q, want /v1/promotions/%s", loc, c.ID)
	}

	wantBatches := int((n + batchSize - 1) / batchSize)
	v := e.status(c.ID)
	if v.ID != c.ID || v.Name != "winter" || v.CodeCount != n || v.Status != "pending" || v.GeneratedCount != 0 {
		t.Errorf("status = %+v, want id %s, winter, %d codes, pending, 0 generated", v, c.ID, n)
	}
	if v.Batches.Total != wantBatches || v.Batches.Completed != 0 || v.Batches.Parked != 0 || v.Batches.Retrying != 0 {
		t.Errorf("batches = %+v, want total %d and nothing else", v.Batches, wantBatches)
	}

	// The create wrote one outbox row per batch and woke the batch relay
	// (package relay sends each row as the event promo.EventFor makes).
	if n := e.outbox.n.Load(); n != 1 {
		t.Errorf("the batch relay was notified %d times, want once", n)
	}
	rows := e.pending()
	if len(rows) != wantBatches {
		t.Fatalf("the outbox holds %d batch rows, want %d", len(rows), wantBatches)
	}
	var total int64
	for i, b := range rows {
		ev := promo.EventFor(b)
		if err := ev.Validate(); err != nil {
			t.Fatalf("batch row %d: %v (%+v)", i, err, ev)
		}
		if want := fmt.Sprintf("%s/%d", c.ID, i); ev.Key() != want {
			t.Errorf("batch row %d key = %q, want %q", i, ev.Key(), want)
		}
		if ev.PromotionID != c.ID || ev.BatchNo != i {
			t.Errorf("batch row %d names %s/%d, want %s/%d", i, ev.PromotionID, ev.BatchNo, c.ID, i)
		}
		// The first promotion of a fresh counter starts at sequence 0.
		if want := uint64(i * batchSize); ev.SeqStart != want {
			t.Errorf("batch %d seqStart = %d, want %d", i, ev.SeqStart, want)
		}
		want := int64(batchSize)
		if i == wantBatches-1 {
			want = n - int64(i)*batchSize
		}
		if ev.CodeCount != want {
			t.Errorf("batch %d codeCount = %d, want %d", i, ev.CodeCount, want)
		}
		total += ev.CodeCount
	}
	if total != n {
		t.Errorf("events cover %d codes, want exactly %d", total, n)
	}
}

func TestCreateRejectsBadInputAndWritesNothing(t *testing.T) {
	const maxCount = 20_000_000
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 1000, MaxCodeCount: maxCount, MaxBodyBytes: 4096}, nil)
	future := time.Now().Add(48 * time.Hour).UTC()
	// body builds a request from the generated example with one part replaced.
	body := func(count, format, extra string) string {
		if format == "" {
			format = `{"charset":"alnum","length":10,"separator":"-","groupSize":4}`
		}
		return `{"name":"winter","codeCount":` + count + `,"format":` + format + extra + `}`
	}
	good := body("1000", "", "")
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }

	tests := []struct {
		name   string
		body   string
		header http.Header
		status int
		fields []string
		detail string // a substring of detail or of a field message
	}{
		{name: "malformed JSON", body: `{"name":"winter","codeCount":`, status: 400},
		{name: "not an object", body: `[1,2]`, status: 400},
		{name: "empty body", body: ``, status: 400},
		{name: "trailing garbage", body: good + ` xyz`, status: 400},
		{name: "second object", body: good + `{}`, status: 400},
		{name: "trailing brace", body: good + `}`, status: 400},
		{name: "trailing bracket", body: good + `]`, status: 400},
		{name: "unknown top-level field", body: body("1000", "", `,"colour":"red"`), status: 400, fields: []string{"colour"}},
		{name: "unknown field inside format", body: body("1000", `{"charset":"alnum","length":10,"colour":"red"}`, ""),
			status: 400, fields: []string{"format.colour"}},
		{name: "name of the wrong type", body: `{"name":5,"codeCount":1000,"format":{"charset":"alnum","length":10}}`,
			status: 400, fields: []string{"name"}},
		{name: "maxUsagePerCode as a string", body: body("1000", "", `,"maxUsagePerCode":"5"`), status: 400,
			fields: []string{"maxUsagePerCode"}},
		{name: "format.length as a string", body: body("1000", `{"charset":"alnum","length":"10"}`, ""), status: 400,
			fields: []string{"format.length"}},
		{name: "missing name", body: `{"codeCount":1000,"format":{"charset":"alnum","length":10}}`, status: 422,
			fields: []string{"name"}},
		{name: "blank name", body: `{"name":"  \t ","codeCount":1000,"format":{"charset":"alnum","length":10}}`,
			status: 422, fields: []string{"name"}},
		{name: "codeCount missing", body: `{"name":"winter","format":{"charset":"alnum","length":10}}`, status: 422,
			fields: []string{"codeCount"}},
		{name: "codeCount null", body: body("null", "", ""), status: 422, fields: []string{"codeCount"}},
		{name: "codeCount 0", body: body("0", "", ""), status: 422, fields: []string{"codeCount"}},
		{name: "codeCount -5", body: body("-5", "", ""), status: 422, fields: []string{"codeCount"}},
		{name: "codeCount 1.5", body: body("1.5", "", ""), status: 422, fields: []string{"codeCount"}},
		{name: "codeCount 1000.0", body: body("1000.0", "", ""), status: 422, fields: []string{"codeCount"}},
		{name: "codeCount string", body: body(`"100"`, "", ""), status: 422, fields: []string{"codeCount"}},
		{name: "codeCount 1e6", body: body("1e6", "", ""), status: 422, fields: []string{"codeCount"}},
		{name: "codeCount object", body: body(`{}`, "", ""), status: 422, fields: []string{"codeCount"}},
		{name: "codeCount above the maximum", body: body(fmt.Sprint(maxCount+1), "", ""), status: 422,
			fields: []string{"codeCount"}, detail: fmt.Sprint(maxCount)},
		{name: "codeCount absurdly large", body: body("99999999999999999999999", "", ""), status: 422,
			fields: []string{"codeCount"}, detail: fmt.Sprint(maxCount)},
		{name: "codeCount absurdly negative", body: body("-99999999999999999999999", "", ""), status: 422,
			fields: []string{"codeCount"}},
		{name: "format missing", body: `{"name":"winter","codeCount":1000}`, status: 422, fields: []string{"format"}},
		{name: "format null", body: body("1000", "null", ""), status: 422, fields: []string{"format"}},
		{name: "charset missing", body: body("1000", `{"length":10}`, ""), status: 422, fields: []string{"format.charset"}},
		{name: "charset upper-case preset", body: body("1000", `{"charset":"ALNUM","length":10}`, ""), status: 422,
			fields: []string{"format.charset"}},
		{name: "charset with a repeated character", body: body("1000", `{"charset":"AABCDEFGHIJ","length":10}`, ""),
			status: 422, fields: []string{"format.charset"}},
		{name: "charset with a space", body: body("1000", `{"charset":"AB CDEFGHIJ","length":10}`, ""),
			status: 422, fields: []string{"format.charset"}},
		{name: "length too small for the count", body: body("100", `{"charset":"numeric","length":7}`, ""),
			status: 422, fields: []string{"codeCount", "format.length"},
			detail: fmt.Sprintf("at least %d", codes.ShortestLength(promo.Format{Charset: "numeric"}, 100, 0))},
		{name: "space below a million", body: body("1", `{"charset":"numeric","length":5}`, ""), status: 422,
			fields: []string{"format.length"}, detail: "at least 6"},
		{name: "length 0", body: body("1", `{"charset":"numeric","length":0}`, ""), status: 422,
			fields: []string{"format.length"}},
		{name: "length too long", body: body("1", `{"charset":"alnum","length":40}`, ""), status: 422,
			fields: []string{"format.length"}},
		{name: "separator in the charset", body: body("1000", `{"charset":"alnum","length":10,"separator":"A","groupSize":4}`, ""),
			status: 422, fields: []string{"format.separator"}},
		{name: "separator without groupSize", body: body("1000", `{"charset":"alnum","length":10,"separator":"-"}`, ""),
			status: 422, fields: []string{"format.groupSize"}},
		{name: "prefix with a space", body: body("1000", `{"charset":"alnum","length":10,"prefix":"W NTR"}`, ""),
			status: 422, fields: []string{"format.prefix"}},
		{name: "maxUsagePerCode 0", body: body("1000", "", `,"maxUsagePerCode":0`), status: 422,
			fields: []string{"maxUsagePerCode"}},
		{name: "perUserLimit negative", body: body("1000", "", `,"perUserLimit":-1`), status: 422,
			fields: []string{"perUserLimit"}},
		{name: "expiresAt before startsAt",
			body:   body("1000", "", `,"startsAt":"`+rfc(future.Add(time.Hour))+`","expiresAt":"`+rfc(future)+`"`),
			status: 422, fields: []string{"expiresAt"}},
		{name: "expiresAt equal to startsAt",
			body:   body("1000", "", `,"startsAt":"`+rfc(future)+`","expiresAt":"`+rfc(future)+`"`),
			status: 422, fields: []string{"expiresAt"}},
		{name: "expiresAt in the past", body: body("1000", "", `,"expiresAt":"2020-01-01T00:00:00Z"`), status: 422,
			fields: []string{"expiresAt"}},
		{name: "startsAt not RFC 3339", body: body("1000", "", `,"startsAt":"2026-12-01"`), status: 400,
			fields: []string{"startsAt"}, detail: "RFC 3339"},
		{name: "expiresAt not RFC 3339", body: body("1000", "", `,"expiresAt":"12/01/2099 10:00"`), status: 400,
			fields: []string{"expiresAt"}, detail: "RFC 3339"},
		{name: "expiresAt a number", body: body("1000", "", `,"expiresAt":4102444800`), status: 400,
			fields: []string{"expiresAt"}},
		{name: "body over MaxBodyBytes", body: `{"name":"` + strings.Repeat("w", 5000) + `","codeCount":1000,` +
			`"format":{"charset":"alnum","length":10}}`, status: 413},
		{name: "Content-Type text/plain", body: good, header: http.Header{"Content-Type": {"text/plain"}}, status: 415},
		{name: "Content-Type application/jsonx", body: good, header: http.Header{"Content-Type": {"application/jsonx"}},
			status: 415},
		{name: "both code and codeCount",
			body:   `{"name":"x","code":"MEGADETH21","codeCount":1000,"format":{"charset":"alnum","length":10}}`,
			status: 422, fields: []string{"code"}},
		{name: "vanity code with a space", body: `{"name":"x","code":"MEGA DETH"}`, status: 422, fields: []string{"code"}},
		{name: "vanity code too short", body: `{"name":"x","code":"AB"}`, status: 422, fields: []string{"code"}},
		{name: "Idempotency-Key too long", body: good, header: http.Header{"Idempotency-Key": {strings.Repeat("k", 201)}},
			status: 422, fields: []string{"Idempotency-Key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.rows()
			r := e.post(tc.body, tc.header)
			p := wantProblem(t, r, tc.status, tc.fields...)
			if tc.detail != "" && !strings.Contains(string(r.body), tc.detail) {
				t.Errorf("problem does not say %q: %s", tc.detail, r.body)
			}
			if tc.status == 422 && len(tc.fields) > 0 && len(p.Errors) == 0 {
				t.Errorf("a validation problem without errors[]: %s", r.body)
			}
			if got := e.rows(); got != before {
				t.Errorf("a rejected request wrote: rows %+v, before %+v", got, before)
			}
			if before == (rows{}) {
				if r := e.do(http.MethodGet, "/v1/promotions/1", "", nil); r.StatusCode != http.StatusNotFound {
					t.Errorf("GET /v1/promotions/1 after a rejected create = %d, want 404", r.StatusCode)
				}
			}
		})
	}

	// The same server takes the good request (trailing whitespace is not
	// trailing data): the failures above were the input's.
	if c := e.create(good + "\n\t "); c.Status != "pending" {
		t.Errorf("good request after the bad ones: %+v", c)
	}
}

// Every field problem of a request is reported at once, not one per round trip.
func TestCreateReportsEveryBadField(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	r := e.post(`{"name":"","codeCount":0,"maxUsagePerCode":0,"format":{"charset":"alnum","length":10,"separator":"A","groupSize":4}}`, nil)
	wantProblem(t, r, 422, "name", "codeCount", "maxUsagePerCode", "format.separator")
	if got := e.rows(); got != (rows{}) {
		t.Errorf("a rejected request wrote %+v", got)
	}
}

// Two promotions of one format share the counter: their reserved ranges do
// not overlap, and a request past the format's density limit is refused
// without consuming the counter.
func TestCreateSharedCounterCapacity(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 10}, nil)
	// numeric length 8: 10^8 codes, SeqLimit 100 at the default density.
	req := func(n int) string {
		return fmt.Sprintf(`{"name":"n","codeCount":%d,"format":{"charset":"numeric","length":8}}`, n)
	}
	e.create(req(60))
	r := e.post(req(41), nil)
	wantProblem(t, r, 422, "codeCount")
	if got := e.rows(); got.Promotions != 1 || got.Batches != 6 {
		t.Errorf("after the refused request: %+v, want 1 promotion, 6 batches", got)
	}
	if got := e.counterNext(); got != 60 {
		t.Errorf("counter at %d after the refused request, want 60 (the refusal must not consume it)", got)
	}
	e.create(req(40))
	if got := e.counterNext(); got != 100 {
		t.Errorf("counter at %d, want 100", got)
	}
}

func TestVanityCodeConflict(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	r := e.post(`{"name":"megadeth","code":"MEGADETH21","maxUsagePerCode":1000}`, nil)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("POST vanity = %d %s, want 201", r.StatusCode, r.body)
	}
	var c created
	decodeJSON(t, r.body, &c)
	if c.Status != "completed" {
		t.Errorf("POST vanity answered status %q, want completed: its one code exists", c.Status)
	}
	if loc := r.Header.Get("Location"); loc != "/v1/promotions/"+c.ID {
		t.Errorf("Location = %q", loc)
	}
	v := e.status(c.ID)
	if v.Kind != "vanity" || v.Code != "MEGADETH21" || v.CodeCount != 1 {
		t.Errorf("vanity status = %+v", v)
	}
	before := e.rows()
	if before.Promotions != 1 || before.Codes != 1 || before.Batches != 0 {
		t.Fatalf("after the vanity create: %+v, want 1 promotion and 1 code", before)
	}
	// Redemption would look the code up in the same table; it is stored as given.
	if info, err := e.store.GetCode(context.Background(), "MEGADETH21"); err != nil || info.MaxUsage != 1000 {
		t.Errorf("GetCode(MEGADETH21) = %+v, %v; want max usage 1000", info, err)
	}

	for _, code := range []string{"MEGADETH21", "megadeth21", " MegaDeth21 "} {
		t.Run(code, func(t *testing.T) {
			r := e.post(`{"name":"copycat","code":"`+code+`"}`, nil)
			wantProblem(t, r, http.StatusConflict, "code")
			if got := e.rows(); got != before {
				t.Errorf("a conflicting vanity code wrote: %+v, before %+v", got, before)
			}
		})
	}
	if r := e.do(http.MethodGet, "/v1/promotions/2", "", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/promotions/2 = %d, want 404", r.StatusCode)
	}
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 1000}, nil)
	key := http.Header{"Idempotency-Key": {"create-winter-1"}}
	body := `{"name":"winter","codeCount":2500,"format":{"charset":"alnum","length":10,"separator":"-","groupSize":4},"maxUsagePerCode":1}`

	r1 := e.post(body, key)
	if r1.StatusCode != http.StatusAccepted {
		t.Fatalf("first POST = %d %s", r1.StatusCode, r1.body)
	}
	if r1.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("first answer says Idempotent-Replayed")
	}
	var c1 created
	decodeJSON(t, r1.body, &c1)

	replay := func(t *testing.T, body string) {
		t.Helper()
		r := e.post(body, key)
		if r.StatusCode != http.StatusOK || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay = %d (Idempotent-Replayed %q) %s; want 200, true", r.StatusCode,
				r.Header.Get("Idempotent-Replayed"), r.body)
		}
		var c created
		decodeJSON(t, r.body, &c)
		if c.ID != c1.ID || c.Status != "pending" {
			t.Errorf("replay answered %+v, want id %s pending", c, c1.ID)
		}
		if loc := r.Header.Get("Location"); loc != "/v1/promotions/"+c1.ID {
			t.Errorf("replay Location = %q", loc)
		}
	}
	t.Run("same body", func(t *testing.T) { replay(t, body) })
	t.Run("other spacing and key order", func(t *testing.T) {
		replay(t, ` {
		  "maxUsagePerCode": 1,
		  "format": {"groupSize": 4, "separator": "-", "length": 10, "charset": "alnum"},
		  "codeCount": 2500,
		  "name": "winter"
		}`)
	})
	t.Run("different body", func(t *testing.T) {
		r := e.post(strings.Replace(body, "2500", "2501", 1), key)
		wantProblem(t, r, http.StatusConflict, "Idempotency-Key")
	})
	if got := e.rows(); got.Promotions != 1 || got.Batches != 3 {
		t.Errorf("after replays: %+v, want 1 promotion with 3 batches", got)
	}
	if got := e.counterNext(); got != 2500 {
		t.Errorf("counter at %d, want 2500: a replay must not reserve codes", got)
	}
	// Another key is another promotion.
	c2 := e.create(body)
	if c2.ID == c1.ID {
		t.Errorf("a request without the key got the keyed promotion's id")
	}
}

func TestIdempotencyKeyConcurrent(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 1000}, nil)
	key := http.Header{"Idempotency-Key": {"concurrent-1"}}
	body := winter(5000)
	const n = 10
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ids     = map[string]int{}
		statusN = map[int]int{}
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/promotions", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", key.Get("Idempotency-Key"))
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Errorf("POST: %v", err)
				return
			}
			defer resp.Body.Close()
			var c created
			_ = jsonDecode(resp, &c)
			mu.Lock()
			defer mu.Unlock()
			ids[c.ID]++
			statusN[resp.StatusCode]++
		})
	}
	close(start)
	wg.Wait()
	if len(ids) != 1 || ids[""] != 0 {
		t.Errorf("ids = %v, want one id for all %d requests", ids, n)
	}
	if statusN[http.StatusAccepted] != 1 || statusN[http.StatusOK] != n-1 {
		t.Errorf("statuses = %v, want one 202 and %d 200", statusN, n-1)
	}
	if got := e.rows(); got.Promotions != 1 || got.Batches != 5 {
		t.Errorf("rows = %+v, want exactly 1 promotion with 5 batches", got)
	}
	if got := e.counterNext(); got != 5000 {
		t.Errorf("counter at %d, want 5000", got)
	}
}

func TestTenMillionCodesAcceptedQuickly(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil) // default batchCodeCount 50,000
	// Warm up the connection and the database so that the measure is the handler's.
	e.create(winter(1))
	start := time.Now()
	r := e.post(strings.Replace(winter(10_000_000), `"winter"`, `"big"`, 1), nil)
	elapsed := time.Since(start)
	t.Logf("10,000,000-code create answered %d in %v", r.StatusCode, elapsed)
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("POST 10M = %d %s, want 202", r.StatusCode, r.body)
	}
	if elapsed >= time.Second {
		t.Errorf("accepting 10M codes took %v, want well under 1s", elapsed)
	}
	var c created
	decodeJSON(t, r.body, &c)
	v := e.status(c.ID)
	if v.CodeCount != 10_000_000 || v.Batches.Total != 200 || v.Status != "pending" {
		t.Errorf("status = %+v, want 10,000,000 codes in 200 pending batches", v)
	}
	if got := e.rows(); got.Batches != 201 || got.Codes != 0 {
		t.Errorf("rows = %+v, want 200+1 batch rows and no codes yet (the generator writes them)", got)
	}
}

func TestNotFound(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	e.create(winter(10))
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v1/promotions/abc"},
		{"GET", "/v1/promotions/999"},
		{"GET", "/v1/promotions/0"},
		{"GET", "/v1/promotions/-1"},
		{"GET", "/v1/promotions/99999999999999999999"},
		{"GET", "/v1/promotions/abc/codes"},
		{"GET", "/v1/promotions/999/codes"},
		{"GET", "/v1/nothing-here"},
		{"GET", "/"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			wantProblem(t, e.do(tc.method, tc.path, "", nil), http.StatusNotFound)
		})
	}
}

func jsonDecode(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestCreateAnswersTheCurrentStatus: the create answer's status is the
// promotion's. A replay with the same Idempotency-Key answers the status at
// that moment (completed once its codes exist, cancelled after a cancel), not
// the "pending" of the first answer; a vanity create answers 201 completed
// (nothing is pending), and its replay 200 completed.
func TestCreateAnswersTheCurrentStatus(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 100}, nil)
	post := func(body, key string) (int, created) {
		t.Helper()
		r := e.post(body, http.Header{"Idempotency-Key": {key}})
		var c created
		decodeJSON(t, r.body, &c)
		return r.StatusCode, c
	}
	body := winter(250)
	if code, c := post(body, "gen-1"); code != http.StatusAccepted || c.Status != "pending" {
		t.Fatalf("first create = %d %+v, want 202 pending", code, c)
	}
	if code, c := post(body, "gen-1"); code != http.StatusOK || c.Status != "pending" {
		t.Errorf("replay before generation = %d %+v, want 200 pending", code, c)
	}
	generate(t, e, "1", testSecret, 100)
	if code, c := post(body, "gen-1"); code != http.StatusOK || c.ID != "1" || c.Status != "completed" {
		t.Errorf("replay after generation = %d %+v, want 200, promotion 1, completed", code, c)
	}

	if _, c := post(winter(300), "gen-2"); c.ID != "2" {
		t.Fatalf("second promotion: %+v", c)
	}
	if r := e.do(http.MethodPost, "/v1/promotions/2/cancel", "", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("cancel = %d %s", r.StatusCode, r.body)
	}
	if code, c := post(winter(300), "gen-2"); code != http.StatusOK || c.Status != "cancelled" {
		t.Errorf("replay after cancel = %d %+v, want 200 cancelled", code, c)
	}

	vanity := `{"name":"megadeth","code":"MEGADETH21"}`
	if code, c := post(vanity, "vanity-1"); code != http.StatusCreated || c.Status != "completed" {
		t.Errorf("vanity create = %d %+v, want 201 completed", code, c)
	}
	if code, c := post(vanity, "vanity-1"); code != http.StatusOK || c.Status != "completed" {
		t.Errorf("vanity replay = %d %+v, want 200 completed", code, c)
	}
}
