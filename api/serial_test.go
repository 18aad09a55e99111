package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/api/apitest"
)

// springFormat is a serial format: SPRING-000001-EADP8H.
const springFormat = `{"style":"serial","charset":"alnum","serialDigits":6,"tailLength":5,"prefix":"SPRING-","separator":"-"}`

func spring(count string) string {
	return `{"name":"spring","codeCount":` + count + `,"format":` + springFormat + `}`
}

// TestCreateSerial: a serial promotion is created like any other, its
// format is answered as stored (style, digits, tail), and requests that mean
// the same are one request for the Idempotency-Key (style "random" written
// out or omitted; checkChar true or omitted).
func TestCreateSerial(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 1000}, nil)
	c := e.create(spring("2500"))
	r := e.do(http.MethodGet, "/v1/promotions/"+c.ID, "", nil)
	var st struct {
		Format map[string]any `json:"format"`
	}
	decodeJSON(t, r.body, &st)
	want := map[string]any{"style": "serial", "charset": "alnum", "serialDigits": 6.0, "tailLength": 5.0,
		"prefix": "SPRING-", "separator": "-", "checkChar": true}
	for k, v := range want {
		if st.Format[k] != v {
			t.Errorf("format.%s = %v, want %v (%s)", k, st.Format[k], v, r.body)
		}
	}
	if _, ok := st.Format["length"]; ok {
		t.Errorf("a serial format answers a length: %s", r.body)
	}
	if got := e.rows(); got.Batches != 3 {
		t.Errorf("batches %d, want 3", got.Batches)
	}

	key := http.Header{"Idempotency-Key": {"same-request"}}
	first := e.post(`{"name":"w","codeCount":10,"format":{"charset":"alnum","length":10}}`, key)
	again := e.post(`{"name":"w","codeCount":10,"format":{"style":"random","charset":"alnum","length":10,"checkChar":true}}`, key)
	if first.StatusCode != http.StatusAccepted || again.StatusCode != http.StatusOK {
		t.Errorf("explicit defaults: %d then %d %s, want 202 then 200 (the same request)", first.StatusCode,
			again.StatusCode, again.body)
	}
	other := e.post(`{"name":"w","codeCount":10,"format":{"style":"serial","charset":"alnum","serialDigits":6,"tailLength":5}}`, key)
	wantProblem(t, other, http.StatusConflict)
}

// TestCreateSerialRejects: every bad field of a serial format is named, the
// JSON types are checked, the capacity advice names the tail length and the
// digits, and nothing is written.
func TestCreateSerialRejects(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 1000}, nil)
	strict := newEnv(t, envConfig{Open: true, BatchCodeCount: 1000, MaxDensity: 1e-9}, nil)
	f := func(mod string) string {
		return `{"name":"spring","codeCount":1000,"format":{"style":"serial","charset":"alnum",` + mod + `}}`
	}
	for _, tc := range []struct {
		name            string
		env             *env
		body            string
		status          int
		fields          []string
		detail          string
		minTail, digits int
	}{
		{name: "style given twice", body: f(`"serialDigits":6,"tailLength":5,"style":"random"`), status: 400,
			fields: []string{"format.style"}},
		{name: "style misspelt", body: `{"name":"s","codeCount":10,"format":{"style":"Serial","charset":"alnum","serialDigits":6,"tailLength":5}}`,
			status: 422, fields: []string{"format.style"}},
		{name: "digits as a string", body: f(`"serialDigits":"6","tailLength":5`), status: 400, fields: []string{"format.serialDigits"}},
		{name: "tail as a fraction", body: f(`"serialDigits":6,"tailLength":5.5`), status: 400, fields: []string{"format.tailLength"}},
		{name: "no digits, no tail", body: f(`"prefix":"S-"`), status: 422, fields: []string{"format.serialDigits", "format.tailLength"}},
		{name: "length and groupSize", body: f(`"serialDigits":6,"tailLength":5,"length":10,"separator":"-","groupSize":4`),
			status: 422, fields: []string{"format.length", "format.groupSize"}},
		{name: "19 digits", body: f(`"serialDigits":19,"tailLength":5`), status: 422, fields: []string{"format.serialDigits"}},
		{name: "tail too long", body: f(`"serialDigits":6,"tailLength":10`), status: 422, fields: []string{"format.tailLength"},
			detail: "maximum tailLength"},
		{name: "tail below a million", body: f(`"serialDigits":6,"tailLength":4`), status: 422,
			fields: []string{"format.tailLength"}, detail: "at least 5", minTail: 5},
		{name: "tail below the density", env: strict, body: f(`"serialDigits":6,"tailLength":5`), status: 422,
			fields: []string{"format.tailLength"}, detail: "at least 7", minTail: 7},
		{name: "too many for the digits", body: `{"name":"s","codeCount":1000,"format":{"style":"serial","charset":"alnum","serialDigits":2,"tailLength":5}}`,
			status: 422, fields: []string{"codeCount", "format.serialDigits"}, detail: "at least 4 serialDigits", digits: 4},
		{name: "serial fields on a random format", body: `{"name":"w","codeCount":10,"format":{"charset":"alnum","length":10,"tailLength":5}}`,
			status: 422, fields: []string{"format.tailLength"}},
		{name: "separator inside the prefix", body: f(`"serialDigits":6,"tailLength":5,"prefix":"SP-RING-","separator":"-"`),
			status: 422, fields: []string{"format.prefix"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := e
			if tc.env != nil {
				env = tc.env
			}
			before := env.rows()
			r := env.post(tc.body, nil)
			wantProblem(t, r, tc.status, tc.fields...)
			if tc.detail != "" && !strings.Contains(string(r.body), tc.detail) {
				t.Errorf("problem does not say %q: %s", tc.detail, r.body)
			}
			var advice struct {
				MinTailLength   int `json:"minTailLength"`
				MinSerialDigits int `json:"minSerialDigits"`
			}
			decodeJSON(t, r.body, &advice)
			if advice.MinTailLength != tc.minTail || advice.MinSerialDigits != tc.digits {
				t.Errorf("advice %+v, want minTailLength %d minSerialDigits %d", advice, tc.minTail, tc.digits)
			}
			if got := env.rows(); got != before {
				t.Errorf("a rejected request wrote: %+v, before %+v", got, before)
			}
		})
	}
}

// TestSerialCounterCapacity: promotions of one serial format share its
// serials (one counter), and a top-up past the last serial the digits can
// show is refused without consuming it.
func TestSerialCounterCapacity(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 10}, nil)
	req := func(n string) string {
		return `{"name":"s","codeCount":` + n + `,"format":{"style":"serial","charset":"alnum","serialDigits":2,"tailLength":5}}`
	}
	c := e.create(req("60"))
	wantProblem(t, e.post(req("40"), nil), 422, "codeCount")
	r := e.do(http.MethodPost, "/v1/promotions/"+c.ID+"/topups", `{"codeCount":40}`, nil)
	wantProblem(t, r, 422)
	if got := e.counterNext(); got != 60 {
		t.Errorf("counter at %d after the refusals, want 60", got)
	}
	e.create(req("39"))
	if got := e.counterNext(); got != 99 {
		t.Errorf("counter at %d, want 99 (serials 01..99)", got)
	}
}

// TestSerialFormatSchema: the document's Format schema takes what the API
// takes and refuses what it refuses, so a client generated from it builds
// valid requests: requests validated against the served document.
func TestSerialFormatSchema(t *testing.T) {
	v := apitest.Validator(t)
	for _, tc := range []struct {
		format string
		ok     bool
	}{
		{springFormat, true},
		{`{"charset":"alnum","length":10,"prefix":"WNTR-","separator":"-","groupSize":4}`, true},
		{`{"style":"random","charset":"alnum","length":10}`, true},
		{`{"style":"serial","charset":"alnum","serialDigits":6}`, false}, // no tail
		{`{"style":"serial","charset":"alnum","serialDigits":6,"tailLength":5,"length":10}`, false},
		{`{"style":"serial","charset":"alnum","serialDigits":19,"tailLength":5}`, false},
		{`{"style":"serial","charset":"alnum","serialDigits":6,"tailLength":5,"colour":"red"}`, false},
		{`{"charset":"alnum","length":10,"tailLength":5}`, false},
		{`{"style":"sequential","charset":"alnum","length":10}`, false},
	} {
		body := `{"name":"s","codeCount":10,"format":` + tc.format + `}`
		req, _ := http.NewRequest(http.MethodPost, "/v1/promotions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer adm")
		ok, errs := v.ValidateHttpRequest(req)
		if ok != tc.ok {
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Message+": "+e.Reason)
			}
			t.Errorf("%s: schema says %v, want %v %v", tc.format, ok, tc.ok, msgs)
		}
	}
}
