package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/api"
)

// jsonOperation is a documented operation that takes a JSON body, with its
// path parameters filled in.
type jsonOperation struct{ method, path string }

// jsonOperations lists every documented operation with a request body (the
// planned ones too once they are served), {id} replaced by promotion and
// {code} by code. A new endpoint that takes JSON is covered by being
// documented.
func jsonOperations(t *testing.T, promotion, code string) []jsonOperation {
	t.Helper()
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	decodeJSON(t, api.OpenAPI(), &spec)
	var ops []jsonOperation
	for path, item := range spec.Paths {
		for m, raw := range item {
			var op struct {
				RequestBody json.RawMessage `json:"requestBody"`
				Planned     string          `json:"x-planned"`
			}
			if m == "parameters" || json.Unmarshal(raw, &op) != nil || op.RequestBody == nil || op.Planned != "" {
				continue
			}
			p := strings.NewReplacer("{id}", promotion, "{code}", code).Replace(path)
			ops = append(ops, jsonOperation{strings.ToUpper(m), p})
		}
	}
	if len(ops) < 8 {
		t.Fatalf("only %d documented operations take JSON: %v", len(ops), ops)
	}
	return ops
}

// nestedBodies are bodies of about size bytes nested as deep as they fit:
// objects and arrays, at the top level and inside metadata.
func nestedBodies(size int) map[string]string {
	fill := func(prefix, open, close, suffix string) string {
		n := (size - len(prefix) - len(suffix)) / (len(open) + len(close))
		return prefix + strings.Repeat(open, n) + strings.Repeat(close, n) + suffix
	}
	return map[string]string{
		"objects":          fill("", `{"a":`, `}`, ""),
		"arrays":           fill("", `[`, `]`, ""),
		"metadata objects": fill(`{"userId":"u","orderId":"o","metadata":`, `{"a":`, `}`, `}`),
		"metadata arrays":  fill(`{"userId":"u","orderId":"o","metadata":{"a":`, `[`, `]`, `}}`),
	}
}

// nestedSize is the size of the nested bodies: just under the default 1 MiB
// body limit, so that they are read and scanned, not refused for their size.
// PROMOCODES_TEST_NESTED_BYTES makes it smaller (to watch the old quadratic
// scan fail without taking the machine's memory).
func nestedSize(t testing.TB) int {
	if v := os.Getenv("PROMOCODES_TEST_NESTED_BYTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return 1<<20 - 64
}

// Every endpoint that takes JSON refuses a 1 MiB nested body with 422 at
// the depth limit, quickly and without growing the process.
func TestNestedJSONRefusedOnEveryEndpoint(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	gen := e.create(`{"name":"g","codeCount":10,"format":{"charset":"alnum","length":10}}`)
	e.create(`{"name":"v","code":"MEGADETH21","maxUsagePerCode":5}`)
	ops := jsonOperations(t, gen.ID, "MEGADETH21")
	bodies := nestedBodies(nestedSize(t))
	before := e.rows()
	rss := startPeakRSS(t)
	var slowest time.Duration
	for _, op := range ops {
		for name, body := range bodies {
			start := time.Now()
			r := e.do(op.method, op.path, body, nil)
			took := time.Since(start)
			slowest = max(slowest, took)
			if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), "nests deeper than") {
				t.Errorf("%s %s with nested %s: %d %.200s, want 422 naming the depth limit", op.method, op.path, name,
					r.StatusCode, r.body)
			}
			// The quadratic scan this guards against took seconds on 1 MiB;
			// a healthy answer takes a few ms, and under -race on a loaded
			// 2-core machine up to ~100 ms (100.4 ms failed a 100 ms bound).
			if took > time.Second {
				t.Errorf("%s %s with nested %s: answered in %s, want under 1s", op.method, op.path, name, took)
			}
			// The peak is one request's cost, not the garbage of the ones
			// before it that a collection has not yet returned (with it the
			// growth was 14-28 MiB from run to run under -race).
			debug.FreeOSMemory()
		}
	}
	growth := rss.Growth()
	t.Logf("%d endpoints × %d nested bodies of %d bytes: slowest answer %s, peak RSS growth %.1f MiB",
		len(ops), len(bodies), len(bodies["objects"]), slowest.Round(time.Microsecond), float64(growth)/(1<<20))
	if growth > 8<<20 {
		t.Errorf("peak RSS grew by %.1f MiB, want under 8 MiB (a few times one body)", float64(growth)/(1<<20))
	}
	if got := e.rows(); got != before {
		t.Errorf("nested bodies wrote %+v (before %+v)", got, before)
	}
}

// Nesting up to the limit is accepted; one more level is refused, naming
// where.
func TestJSONDepthLimit(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	e.create(`{"name":"v","code":"MEGADETH21","maxUsagePerCode":5}`)
	meta := func(depth int) string { // metadata at depth 2, then depth-2 more objects
		n := depth - 2
		return `{"userId":"u","metadata":{"x":` + strings.Repeat(`{"a":`, n) + `1` + strings.Repeat(`}`, n) + `}}`
	}
	if r := e.do(http.MethodPost, "/v1/codes/MEGADETH21/redemptions", meta(api.MaxJSONDepth), nil); r.StatusCode != http.StatusCreated {
		t.Errorf("depth %d: %d %s, want 201", api.MaxJSONDepth, r.StatusCode, r.body)
	}
	r := e.do(http.MethodPost, "/v1/codes/MEGADETH21/redemptions", meta(api.MaxJSONDepth+1), nil)
	p := wantProblem(t, r, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || !strings.HasPrefix(p.Errors[0].Field, "metadata.x.a.a") {
		t.Errorf("the problem names %+v, want the metadata path", p.Errors)
	}
}

// Bytes no text column can hold are refused with 422 naming the field, on
// every endpoint, before the database: invalid UTF-8 (raw, or an unpaired
// surrogate escape) and NUL (raw, or escaped), in metadata and elsewhere.
func TestBadBytesRefusedBeforeTheDatabase(t *testing.T) {
	for _, backend := range []string{backendSQLite, backendPostgres} {
		t.Run(backend, func(t *testing.T) {
			e := newEnvOn(t, backend, envConfig{Open: true}, nil)
			e.create(`{"name":"v","code":"MEGADETH21","maxUsagePerCode":5}`)
			res := e.do(http.MethodPost, "/v1/codes/MEGADETH21/reservations", `{"userId":"r"}`, nil)
			var reservation struct{ ID string }
			decodeJSON(t, res.body, &reservation)
			before, redemptions := e.rows(), e.count("redemptions")
			for _, tc := range []struct{ name, value, field string }{
				{"raw invalid UTF-8", "\"\xff\xfe\"", "metadata.note"},
				{"truncated UTF-8", "\"caf\xc3\"", "metadata.note"},
				{"unpaired surrogate", `"\ud800"`, "metadata.note"},
				{"escaped NUL", `"a\u0000b"`, "metadata.note"},
				{"raw NUL", "\"a\x00b\"", "metadata.note"},
				{"NUL in a name", "{\"\\u0000\":1}", "metadata.note"},
			} {
				for _, ep := range []struct{ path, body string }{
					{"/v1/codes/MEGADETH21/redemptions", `{"userId":"u","orderId":"o","metadata":{"note":%s}}`},
					{"/v1/reservations/" + reservation.ID + "/confirm", `{"orderId":"o","metadata":{"note":%s}}`},
				} {
					r := e.do(http.MethodPost, ep.path, fmt.Sprintf(ep.body, tc.value), nil)
					p := wantProblem(t, r, http.StatusUnprocessableEntity)
					if len(p.Errors) == 0 || !strings.HasPrefix(p.Errors[0].Field, tc.field) {
						t.Errorf("%s in %s: the problem names %+v, want %s", tc.name, ep.path, p.Errors, tc.field)
					}
				}
			}
			// Outside metadata too: the user and the promotion's name.
			r := e.do(http.MethodPost, "/v1/codes/MEGADETH21/redemptions", "{\"userId\":\"\xff\"}", nil)
			wantProblem(t, r, http.StatusUnprocessableEntity, "userId")
			r = e.post("{\"name\":\"caf\xc3\",\"code\":\"OTHER1\"}", nil)
			wantProblem(t, r, http.StatusUnprocessableEntity, "name")
			if got := e.rows(); got != before {
				t.Errorf("bad bytes wrote %+v (before %+v)", got, before)
			}
			if got := e.count("redemptions"); got != redemptions {
				t.Errorf("bad bytes wrote %d redemptions", got-redemptions)
			}
			// The same reservation still confirms with clean metadata.
			r = e.do(http.MethodPost, "/v1/reservations/"+reservation.ID+"/confirm", `{"orderId":"o","metadata":{"note":"ok"}}`, nil)
			if r.StatusCode != http.StatusCreated {
				t.Errorf("clean confirm: %d %s", r.StatusCode, r.body)
			}
		})
	}
}

// The body limit holds on every endpoint that takes JSON: a declared length
// over it is refused before the body is read (the client has sent only the
// headers), and a body that runs over it without declaring its length is cut
// off at the limit.
func TestBodyLimitOnEveryEndpoint(t *testing.T) {
	const limit = 4096
	e := newEnv(t, envConfig{Open: true, MaxBodyBytes: limit}, nil)
	gen := e.create(`{"name":"g","codeCount":10,"format":{"charset":"alnum","length":10}}`)
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range jsonOperations(t, gen.ID, "MEGADETH21") {
		// Only the headers, announcing 100 MiB: the answer comes without the body.
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
			op.method, op.path, u.Host, 100<<20)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("%s %s announcing 100 MiB: no answer before the body: %v", op.method, op.path, err)
		} else if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s announcing 100 MiB: %d, want 413", op.method, op.path, res.StatusCode)
		}
		conn.Close()
		// A chunked body past the limit.
		big := `{"userId":"` + strings.Repeat("x", limit) + `"}`
		req, _ := http.NewRequest(op.method, e.srv.URL+op.path, struct{ *strings.Reader }{strings.NewReader(big)})
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s with a chunked body over the limit: %d, want 413", op.method, op.path, resp.StatusCode)
		}
	}
}

// peakRSS measures how far this process's resident set grows from now on:
// the kernel's peak (VmHWM), reset to the current size at the start.
type peakRSS struct {
	t     testing.TB
	start int64
}

func startPeakRSS(t testing.TB) peakRSS {
	t.Helper()
	// "5" resets VmHWM to the current RSS (proc(5), /proc/pid/clear_refs).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS here: %v", err)
	}
	return peakRSS{t: t, start: procStatusBytes(t, "VmHWM")}
}

// Growth is the peak since start, above the size at start.
func (p peakRSS) Growth() int64 { return procStatusBytes(p.t, "VmHWM") - p.start }

// procStatusBytes reads a "kB" field of /proc/self/status.
func procStatusBytes(t testing.TB, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// count counts a table's rows.
func (e *env) count(table string) int64 {
	e.t.Helper()
	n, err := e.query("SELECT count(*) FROM " + table)
	if err != nil {
		e.t.Fatalf("count %s: %v", table, err)
	}
	return n
}
