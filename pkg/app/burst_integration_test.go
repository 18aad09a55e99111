//go:build integration

package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
)

// TestMain doubles as the API process of the burst tests (envBurstAPI): the
// burst holds 10,000 connections on each side, and the API's memory is
// measured best in a process of its own.
func TestMain(m *testing.M) {
	if spec := os.Getenv(envBurstAPI); spec != "" {
		if err := serveBurstAPI(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const envBurstAPI = "PROMOCODES_TEST_BURST_API"

// burstAPI is what the API process is told: its database, broker and
// admission bounds (zero: the defaults).
type burstAPI struct {
	DB        DBConfig
	Brokers   []string
	Secret    string
	Admission AdmissionConfig
}

const burstSecret = "burst-test-secret-0123456789abcdef-0123"

// serveBurstAPI runs the API (StartAPI, the production wiring, open auth as
// in dev) until its standard input closes, after printing its address.
func serveBurstAPI(spec string) error {
	var b burstAPI
	if err := json.Unmarshal([]byte(spec), &b); err != nil {
		return err
	}
	cfg := Defaults()
	cfg.Env = "dev"
	cfg.Log = LogConfig{Level: "warn", Format: "console"}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.DB = b.DB
	cfg.Kafka.Brokers = b.Brokers
	cfg.Kafka.Partitions = 2
	cfg.Codes.Secret = b.Secret
	if b.Admission != (AdmissionConfig{}) {
		cfg.Redeem.Admission = b.Admission
	}
	// The shoppers come through a load balancer on 127.0.0.1 that forwards
	// their addresses (X-Forwarded-For), as in production. The per-token
	// guess limit is off: a look-up holds its token while in flight, so one
	// token's limit (1,000: 500 at once) would refuse most of a 10,000
	// burst from one checkout with 429 (docs/redemption.md, "When the database is busy").
	cfg.HTTP.TrustedProxies = []string{"127.0.0.1"}
	cfg.Redeem.GuessLimitPerToken = -1
	if err := cfg.Validate(); err != nil {
		return err
	}
	TuneGC() // as promocodes api does
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log, err := newTestLogger()
	if err != nil {
		return err
	}
	p, err := StartAPI(ctx, cfg, log)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", p.HTTPAddr)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes our stdin
	cancel()
	return p.Wait()
}

func newTestLogger() (*zap.Logger, error) {
	zc := zap.NewDevelopmentConfig()
	zc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	zc.DisableStacktrace = true
	return zc.Build()
}

// apiProcess is the API started in a process of its own.
type apiProcess struct {
	addr string
	pid  int
}

// startAPIProcess starts this test binary as the API process; it is
// stopped (its standard input closed) at the test's end and must exit well.
func startAPIProcess(t *testing.T, spec burstAPI) apiProcess {
	t.Helper()
	cmd, stdin, _, addr := spawnAPI(t, spec)
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("API process: %v", err)
		}
	})
	return apiProcess{addr: addr, pid: cmd.Process.Pid}
}

// spawnAPI starts this test binary as the API process on spec and reads the
// address it listens on; the caller ends it.
func spawnAPI(t *testing.T, spec burstAPI) (*exec.Cmd, io.WriteCloser, *bufio.Reader, string) {
	t.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envBurstAPI+"="+string(js))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdout := bufio.NewReader(out)
	line, err := stdout.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("API process: %q, %v", line, err)
	}
	return cmd, stdin, stdout, addr
}

// memory is a process's resident memory now and at its peak, in MiB
// (/proc/PID/status VmRSS and VmHWM).
func memory(t *testing.T, pid int) (rss, peak float64) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Logf("memory of %d unknown: %v", pid, err)
		return math.NaN(), math.NaN()
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return rss, peak
}

// cpuTime is a process's CPU time so far (user and system), in seconds
// (NaN: unknown).
func cpuTime(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	// After the command's closing parenthesis: state is field 3, utime and
	// stime fields 14 and 15, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return math.NaN()
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

func seconds(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// listenOverflows is the machine's count of connections dropped because a
// listening socket's accept queue was full (TcpExt ListenOverflows in
// /proc/net/netstat; -1: unknown). Their clients try again a second later.
func listenOverflows() int64 {
	data, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return -1
	}
	lines := strings.Split(string(data), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, name := range names {
			if name == "ListenOverflows" {
				n, _ := strconv.ParseInt(values[j], 10, 64)
				return n
			}
		}
	}
	return -1
}

func overflowsBetween(before, after int64) string {
	if before < 0 || after < 0 {
		return "unknown"
	}
	return strconv.FormatInt(after-before, 10)
}

// raiseOpenFiles makes room for n open files in this process (the burst's
// client connections) and in the API process it starts (which inherits the
// limit), and says what the limits are.
func raiseOpenFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Logf("open files: soft %d, hard %d; need %d", lim.Cur, lim.Max, n)
	if lim.Cur < n {
		want := syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			t.Fatalf("need %d open files; the limit is %d/%d and cannot be raised (%v): raise ulimit -n",
				n, lim.Cur, lim.Max, err)
		}
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		t.Logf("open files raised to: soft %d, hard %d", lim.Cur, lim.Max)
	}
}

// seedCodes commits n single-use codes of a new generated promotion (one
// use per user) straight into the database and returns them.
func seedCodes(t *testing.T, db DBConfig, n int) []string {
	t.Helper()
	ctx := context.Background()
	st, err := OpenStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := codes.New(promo.Format{Charset: "alnum", Length: 12, Prefix: "F"}, []byte(burstSecret))
	if err != nil {
		t.Fatal(err)
	}
	l := eng.Layout()
	f := l.Format()
	p, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "flash sale",
		Kind: promo.KindGenerated, CodeCount: int64(n), Format: &f, MaxUsagePerCode: 1, PerUserLimit: 1,
		CounterName: l.CounterName()}, BatchSize: int64(n), SeqLimit: math.MaxInt64})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := st.IncompleteBatches(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, bt := range bs {
		buf := eng.AppendCodes(nil, bt.SeqStart, int(bt.CodeCount))
		if _, err := st.CommitChunk(ctx, promo.Chunk{Batch: bt.Ref(), Count: int(bt.CodeCount), Codes: buf,
			CodeLen: l.CodeLen(), CounterName: p.CounterName, Replace: eng.AppendCode}); err != nil {
			t.Fatal(err)
		}
		for i := range int(bt.CodeCount) {
			out = append(out, string(buf[i*l.CodeLen():(i+1)*l.CodeLen()]))
		}
	}
	if len(out) != n {
		t.Fatalf("seeded %d codes, want %d", len(out), n)
	}
	return out
}

// usesTaken counts the uses taken of codes and the promotion's audit rows.
func usesTaken(t *testing.T, db DBConfig, list []string) (uses, rows int) {
	t.Helper()
	ctx := context.Background()
	st, err := OpenStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var pid int64
	for _, c := range list {
		cs, err := st.CodeState(ctx, c, "")
		if err != nil {
			t.Fatal(err)
		}
		uses += cs.Used
		pid = cs.Promotion.ID
	}
	err = st.ExportRedemptions(ctx, promo.RedemptionFilter{PromotionID: pid}, func(promo.Redemption) error {
		rows++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return uses, rows
}

// answer is one burst request's outcome.
type answer struct {
	status     int
	err        error
	retryAfter string
	ctype      string
	problem    string // the problem type of an error answer
	elapsed    time.Duration
	// connected and answered are when, after the burst's start, the
	// connection was open and the answer's head arrived.
	connected, answered time.Duration
}

// burst opens n connections to addr at once, each sending one redemption
// as soon as it is open (request i on codes[i % len], from shopper address
// 10.x.y.z through the trusted proxy's X-Forwarded-For), reads every answer,
// and returns them with the time from the start to the last answer read.
func burst(t *testing.T, addr string, list []string, n int) ([]answer, time.Duration) {
	t.Helper()
	out := make([]answer, n)
	var start time.Time
	gate := make(chan struct{})
	var wg, ready sync.WaitGroup
	ready.Add(n)
	for i := range n {
		wg.Go(func() {
			body := `{"userId":"shopper-` + strconv.Itoa(i) + `"}`
			req := "POST /v1/codes/" + list[i%len(list)] + "/redemptions HTTP/1.1\r\nHost: " + addr +
				"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) +
				fmt.Sprintf("\r\nX-Forwarded-For: 10.%d.%d.%d", i>>16&255, i>>8&255, i&255) +
				"\r\nConnection: close\r\n\r\n" + body
			ready.Done()
			<-gate
			t0 := time.Now()
			d := net.Dialer{Timeout: 2 * time.Minute}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				out[i].err = fmt.Errorf("dial: %w", err)
				return
			}
			defer c.Close()
			connected := time.Since(start)
			_ = c.SetDeadline(t0.Add(2 * time.Minute))
			if _, err := io.WriteString(c, req); err != nil {
				out[i].err = fmt.Errorf("send: %w", err)
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				out[i].err = fmt.Errorf("read answer: %w", err)
				return
			}
			answered := time.Since(start)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"),
				ctype: resp.Header.Get("Content-Type"), elapsed: time.Since(t0), connected: connected, answered: answered}
			var p struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(b, &p) == nil {
				a.problem = p.Type
			}
			out[i] = a
		})
	}
	ready.Wait()
	start = time.Now()
	close(gate)
	wg.Wait()
	return out, time.Since(start)
}

// tally counts the answers by status ("error" for a connection error).
func tally(as []answer) map[string]int {
	m := map[string]int{}
	for _, a := range as {
		if a.err != nil {
			m["error"]++
			continue
		}
		m[strconv.Itoa(a.status)]++
	}
	return m
}

func p99(as []answer) time.Duration {
	ds := make([]time.Duration, 0, len(as))
	for _, a := range as {
		ds = append(ds, a.elapsed)
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(math.Ceil(0.99*float64(len(ds))))-1)]
}

// spread says when, after the burst's start, the answers' connections were
// open and their answers arrived (quartiles, 90th and 99th percentile, last).
func spread(as []answer) string {
	q := func(f func(answer) time.Duration) string {
		ds := make([]time.Duration, 0, len(as))
		for _, a := range as {
			if a.err == nil {
				ds = append(ds, f(a))
			}
		}
		if len(ds) == 0 {
			return "none"
		}
		slices.Sort(ds)
		var parts []string
		for _, p := range []float64{0.25, 0.5, 0.75, 0.9, 0.99, 1} {
			parts = append(parts, ds[min(len(ds)-1, int(math.Ceil(p*float64(len(ds))))-1)].Round(time.Millisecond).String())
		}
		return strings.Join(parts, " ")
	}
	return "connected by " + q(func(a answer) time.Duration { return a.connected }) +
		"; answered by " + q(func(a answer) time.Duration { return a.answered }) + " (25/50/75/90/99/100 %)"
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

// burstBackend is the database of a burst test: a fresh migrated one.
func burstBackend(t *testing.T, backend string) DBConfig {
	db := testDatabase(t, backend)
	if backend == "postgres" {
		db.MaxConns = 16
	}
	return db
}

// 10,000 shoppers at once, each on a connection of its own, each sending
// one redemption, 10 per code of a 1,000-code single-use promotion, against
// the API in a process of its own with the default admission bounds: every
// request is answered, none with a 5xx or a connection error, exactly 1,000
// × 201 and 9,000 × 409, as many uses taken and audit rows written as 201s.
// The drain time and the API's memory are printed.
func TestBurstTenThousandConnections(t *testing.T) {
	const n, ncodes = 10_000, 1_000
	raiseOpenFiles(t, n+2_000)
	brokers := kafkatest.Broker(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			db := burstBackend(t, backend)
			list := seedCodes(t, db, ncodes)
			api := startAPIProcess(t, burstAPI{DB: db, Brokers: brokers, Secret: burstSecret})
			// One redemption first, so the catalog knows the promotion.
			resp, err := http.Post("http://"+api.addr+"/v1/codes/NOSUCHCODE/redemptions", "application/json",
				strings.NewReader(`{"userId":"warm"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			rss0, _ := memory(t, api.pid)
			load := loadAverage()
			cpu0, overflows0 := cpuTime(api.pid), listenOverflows()
			var ru0, ru1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			answers, drain := burst(t, api.addr, list, n)
			cpu1, overflows1 := cpuTime(api.pid), listenOverflows()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			rss1, peak := memory(t, api.pid)
			counts := tally(answers)
			t.Logf("burst [%s]: %d connections, %d codes: drained in %s, p99 %s, answers %v; API RSS %.0f MiB before, "+
				"%.0f MiB after, peak %.0f MiB (+%.0f MiB); load average %s", backend, n, ncodes,
				drain.Round(time.Millisecond), p99(answers).Round(time.Millisecond), counts, rss0, rss1, peak, peak-rss0, load)
			t.Logf("burst [%s]: %s", backend, spread(answers))
			t.Logf("burst [%s]: CPU: API %.2f s, this harness %.2f s; the machine's listen queue overflows meanwhile: %s",
				backend, cpu1-cpu0, seconds(ru1.Utime)+seconds(ru1.Stime)-seconds(ru0.Utime)-seconds(ru0.Stime),
				overflowsBetween(overflows0, overflows1))
			for _, a := range answers {
				if a.err != nil {
					t.Errorf("connection error: %v", a.err)
					break
				}
			}
			if counts["201"] != ncodes || counts["409"] != n-ncodes {
				t.Errorf("answers %v: want exactly %d × 201 and %d × 409 (no 5xx, no connection error)",
					counts, ncodes, n-ncodes)
			}
			if uses, rows := usesTaken(t, db, list); uses != counts["201"] || rows != counts["201"] {
				t.Errorf("%d uses taken, %d audit rows, %d answers 201: want them equal", uses, rows, counts["201"])
			}
		})
	}
}

// With a tiny admission bound (one database slot, four waiting, 100 ms) a
// burst of 300 redemptions on distinct codes is partly refused: each
// refusal is 503 problem+json (type .../unavailable) with Retry-After 1
// (the wait bound, rounded up), answered, never a connection error or a
// 500; the rest are redeemed exactly (uses taken = 201s), and the API's
// admission metrics count the refusals.
func TestAdmissionRefusesPastItsBounds(t *testing.T) {
	const n = 300
	raiseOpenFiles(t, n+2_000)
	brokers := kafkatest.Broker(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			db := burstBackend(t, backend)
			list := seedCodes(t, db, n)
			api := startAPIProcess(t, burstAPI{DB: db, Brokers: brokers, Secret: burstSecret,
				Admission: AdmissionConfig{Slots: 1, MaxQueue: 4, MaxWait: 100 * time.Millisecond}})
			answers, drain := burst(t, api.addr, list, n)
			counts := tally(answers)
			t.Logf("tiny bound [%s]: %d requests on %d codes: drained in %s, answers %v; load average %s",
				backend, n, len(list), drain.Round(time.Millisecond), counts, loadAverage())
			if counts["503"] == 0 {
				t.Errorf("answers %v: want some 503 past a queue of 4", counts)
			}
			if counts["201"]+counts["503"] != n || counts["201"] == 0 {
				t.Errorf("answers %v: want only 201 and 503 (distinct codes), some of each", counts)
			}
			for _, a := range answers {
				if a.status == http.StatusServiceUnavailable && (a.retryAfter != "1" ||
					a.ctype != "application/problem+json" || !strings.HasSuffix(a.problem, "/unavailable")) {
					t.Errorf("a 503 with Retry-After %q, Content-Type %q, type %q; want 1, application/problem+json, .../unavailable",
						a.retryAfter, a.ctype, a.problem)
					break
				}
			}
			if uses, rows := usesTaken(t, db, list); uses != counts["201"] || rows != counts["201"] {
				t.Errorf("%d uses taken, %d audit rows, %d answers 201: want them equal", uses, rows, counts["201"])
			}
			refused := scrape(t, "http://"+api.addr+"/metrics", "promocodes_admission_rejected_total")
			if refused != float64(counts["503"]) {
				t.Errorf("promocodes_admission_rejected_total = %v, want the %d 503s", refused, counts["503"])
			}
		})
	}
}

// scrape sums a metric's samples on a /metrics page.
func scrape(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}
