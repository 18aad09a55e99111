package redemption_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/listen"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/promotion"
	"github.com/promocodes/promocodes/redemption"
)

// TestMain doubles as the API server process of BenchmarkRedeem: the burst
// holds 10,000 connections on each side, more than one process may open here.
func TestMain(m *testing.M) {
	if path := os.Getenv(envBenchServeSQLite); path != "" {
		if err := serveBenchSQLite(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(envBenchSpin) != "" {
		spin()
	}
	if os.Getenv(envBenchServe) != "" {
		if err := serveBench(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const envBenchServe = "PROMOCODES_BENCH_SERVE" // "dsn schema conns"

// envBenchSpin makes this test binary a spinner (startSpinner).
const envBenchSpin = "PROMOCODES_BENCH_SPIN"

// spin keeps one core busy with arithmetic, touching no memory to speak of
// and making no system call, until its standard input closes; then it exits.
func spin() {
	runtime.GOMAXPROCS(1)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	x := uint64(1)
	for {
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		runtime.Gosched() // let the stdin reader see its end
	}
}

// startSpinner starts this test binary as a spinner at the lowest priority
// (nice 19: the kernel gives it only a core nothing else wants) and returns
// the function that stops it and waits for it.
func startSpinner(b *testing.B) (stop func()) {
	b.Helper()
	nice, err := exec.LookPath("nice")
	if err != nil {
		b.Fatalf("the spinner runs under nice(1): %v", err)
	}
	_, _, stop = startChild(b, envBenchSpin+"=1", nice, "-n", "19")
	return stop
}

// startChild starts this test binary in the role that env (NAME=value)
// gives it in TestMain, under the command prefix if any (the binary as its
// argument), with this process's standard error. It returns the child's
// process id, its standard output, and the function that closes its
// standard input (every role ends then) and waits for it; the benchmark's
// cleanup calls it too.
func startChild(b *testing.B, env string, prefix ...string) (pid int, stdout *bufio.Reader, stop func()) {
	b.Helper()
	argv := append(prefix, os.Args[0], "-test.run=^$")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %v: %v", argv, err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stdin.Close()
			_ = cmd.Wait()
		})
	}
	b.Cleanup(stop)
	return cmd.Process.Pid, bufio.NewReader(out), stop
}

// serverURL reads the base URL that an API server child (serveBench,
// serveBenchSQLite) prints first.
func serverURL(b *testing.B, stdout *bufio.Reader) string {
	b.Helper()
	line, err := stdout.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		b.Fatalf("bench server: %q, %v", line, err)
	}
	return "http://" + addr
}

// envBenchPprof, if set, is the address where the API process serves
// net/http/pprof during BenchmarkRedeem.
const envBenchPprof = "BENCH_REDEEM_PPROF"

func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}

// serveBench runs the API with the redemption service on PostgreSQL until
// its standard input closes, after printing its address.
func serveBench() error {
	parts := strings.Fields(os.Getenv(envBenchServe))
	if len(parts) != 3 {
		return fmt.Errorf("%s: want \"dsn schema conns\"", envBenchServe)
	}
	conns, _ := strconv.Atoi(parts[2])
	app.TuneGC() // as promocodes api does
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// BENCH_REDEEM_PG_GROUP "size flights" sets the store's group commit
	// (postgres.Config.RedeemGroup, RedeemFlights; unset: the defaults),
	// BENCH_REDEEM_ADMISSION the admission slots (unset: 128, as the
	// wiring sets them on PostgreSQL; with grouping off, the pool's size
	// is what the wiring used to set).
	var group, flights int
	if v := strings.Fields(os.Getenv("BENCH_REDEEM_PG_GROUP")); len(v) == 2 {
		group, _ = strconv.Atoi(v[0])
		flights, _ = strconv.Atoi(v[1])
	}
	st, err := postgres.Open(ctx, postgres.Config{DSN: parts[0], Schema: parts[1], MaxConns: int32(conns),
		RedeemGroup: group, RedeemFlights: flights})
	if err != nil {
		return err
	}
	defer st.Close()
	log := zap.NewNop()
	svc, err := redemption.New(redemption.Config{GuessLimit: -1, GuessLimitPerToken: -1,
		AdmissionSlots: benchEnv("BENCH_REDEEM_ADMISSION", 128)}, st, nil, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	go func() { _ = svc.Run(ctx) }()
	ps, err := promotion.New(promotion.Config{Secret: testSecret}, st, svc, log)
	if err != nil {
		return err
	}
	srv, err := api.New(api.Config{AdminTokens: []string{adminToken},
		RedeemTokens: []string{redeemToken}, AdmissionWait: redemption.DefaultAdmissionWait}, st, ps, nil, log,
		api.WithRedemption(svc))
	if err != nil {
		return err
	}
	// Listening as the API does (pkg/app), on several accept queues.
	lns, err := listen.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	if addr := os.Getenv(envBenchPprof); addr != "" {
		// The API process's profiles, for finding where a redemption's time
		// goes (go tool pprof http://<addr>/debug/pprof/profile?seconds=8).
		go func() { fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, pprofMux())) }()
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: time.Minute}
	for _, ln := range lns {
		go func() { _ = hs.Serve(ln) }()
	}
	fmt.Printf("listening %s\n", lns[0].Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the benchmark closes our stdin
	return hs.Close()
}

// startBenchServer starts this test binary as the API server process and
// returns its base URL and process id.
func startBenchServer(b *testing.B, dsn, schema string, conns int) (string, int) {
	b.Helper()
	pid, stdout, _ := startChild(b, fmt.Sprintf("%s=%s %s %d", envBenchServe, dsn, schema, conns))
	return serverURL(b, stdout), pid
}

// cpuTime is a process's CPU time so far (user and system, from
// /proc/PID/stat; 0 where unknown). The API process's CPU per request is
// the figure that holds up on a loaded machine, where rates do not.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// After the command's closing parenthesis: utime and stime are fields
	// 14 and 15, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// usage marks the CPU used so far by this process (the floor's goroutines
// or the HTTP clients) and by the whole machine, so that a phase can say
// whether its rate was bound by the machine's cores: on 2 cores the API,
// the database and the clients share them.
type usage struct {
	self      time.Duration
	busy, all uint64 // the machine's busy and total clock ticks (/proc/stat)
}

func markUsage() usage {
	u := usage{self: cpuTime(os.Getpid())}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		// cpu user nice system idle iowait irq softirq steal (guest time,
		// after them, is counted in user and nice already).
		for i, f := range strings.Fields(line)[1:min(9, len(strings.Fields(line)))] {
			n, _ := strconv.ParseUint(f, 10, 64)
			u.all += n
			if i != 3 && i != 4 {
				u.busy += n
			}
		}
	}
	return u
}

// since formats the CPU used since u over ops operations: this process's
// per operation, and the machine's cores busy on average.
func (u usage) since(ops int) string {
	v := markUsage()
	return fmt.Sprintf("bench process %.0f µs/op; %s",
		float64((v.self-u.self).Microseconds())/float64(max(ops, 1)), u.machine())
}

// machine formats the machine's cores busy on average since u.
func (u usage) machine() string {
	v := markUsage()
	cores := 0.0
	if v.all > u.all {
		cores = float64(v.busy-u.busy) / float64(v.all-u.all) * float64(runtime.NumCPU())
	}
	return fmt.Sprintf("machine %.2f of %d cores busy", cores, runtime.NumCPU())
}

// apiCPU formats the API process's CPU over a phase, in all and per request.
func apiCPU(d time.Duration, requests int) string {
	return fmt.Sprintf("API CPU %.2f s, %.0f µs/request", d.Seconds(), float64(d.Microseconds())/float64(max(requests, 1)))
}

// benchPhases are the phases BENCH_REDEEM_PHASES names, comma-separated:
// "steady" (floor, spread, db and hot, which run together) and "burst"; both
// when unset: BENCH_REDEEM_PHASES=burst runs the burst alone, without seeding the
// large promotion or running pgbench.
func benchPhases() map[string]bool {
	v := os.Getenv("BENCH_REDEEM_PHASES")
	if v == "" {
		v = "steady,burst"
	}
	out := map[string]bool{}
	for _, p := range strings.Split(v, ",") {
		out[strings.TrimSpace(p)] = true
	}
	return out
}

// Benchmark settings, from the environment (make bench-redeem sets them).
func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkRedeem measures redemption on PostgreSQL against its floor, in
// one run, on the same tables:
//
//   - floor: pgbench (64 clients, prepared) runs the floor statement: all five
//     writes of a redemption (idempotency key, the code's conditional UPDATE,
//     the user's allowance, the audit row, the event) chained in ONE statement
//     in autocommit, on numbered codes in the codes table (random codes), then
//     with every client on one code row (hot). It does the work of a
//     redemption without its checks: no correct redemption can beat it.
//   - spread: 64 HTTP clients redeem distinct random codes of a
//     1,000,000-code single-use promotion for a fixed time, through the real
//     API server and redemption service in a separate process.
//   - db: the same store.Redeem on 64 goroutines with no HTTP.
//   - hot: 64 HTTP clients redeem ONE vanity code (distinct users); the uses
//     taken, the audit rows and the 201 answers must agree.
//   - burst: 10,000 requests in flight at once, each on its own connection,
//     on 1,000 fresh single-use codes: every request must be answered (no
//     5xx, no connection error) with exactly 1,000 successes.
//
// Each HTTP figure is printed with its ratio to the floor measured in the
// same run. Load average is printed at the start of each phase.
func BenchmarkRedeem(b *testing.B) {
	var (
		total   = benchEnv("BENCH_REDEEM_CODES", 1_000_000)
		clients = benchEnv("BENCH_REDEEM_CLIENTS", 64)
		seconds = benchEnv("BENCH_REDEEM_SECONDS", 20)
		burst   = benchEnv("BENCH_REDEEM_BURST", 10_000)
		conns   = benchEnv("BENCH_REDEEM_DB_CONNS", 16)
		phases  = benchPhases()
	)
	ctx := context.Background()
	dsn := postgrestest.DSN(b)
	schema := postgrestest.Schema(b)
	st, err := postgres.Open(ctx, postgres.Config{DSN: dsn, Schema: schema, MaxConns: int32(conns)})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}

	base, pid := "", 0
	if phases["steady"] {
		start := time.Now()
		all := seedBench(b, st, total, "B")
		fmt.Printf("seeded %d single-use codes in %s\n", len(all), time.Since(start).Round(time.Millisecond))
		b.ResetTimer()
		base, pid = steadyPhases(b, st, dsn, schema, all, clients, conns, seconds)
	}
	if !phases["burst"] {
		return
	}
	if base == "" {
		b.ResetTimer()
		base, pid = startBenchServer(b, dsn, schema, conns)
	}
	// 4. The flash-sale burst.
	flash := seedBench(b, st, 1000, "F")
	if err := raiseFileLimit(burst + 1000); err != nil {
		fmt.Printf("burst: skipped: %v\n", err)
	} else {
		fmt.Printf("burst: %s\n", loadAverage())
		cpu0 := cpuTime(pid)
		drain, p99, counts := runBurst(b, base, flash, burst)
		fmt.Printf("burst:  %d requests in flight on %d single-use codes: drained in %s, p99 %.0f ms, %v; %s\n",
			burst, len(flash), drain.Round(time.Millisecond), p99, counts, apiCPU(cpuTime(pid)-cpu0, burst))
		if counts["201"] != len(flash) || counts["409"] != burst-len(flash) || counts["201"]+counts["409"] != burst {
			b.Errorf("burst answers %v: want exactly %d × 201 and the rest 409", counts, len(flash))
		}
		b.ReportMetric(drain.Seconds(), "burst-drain-s")
	}
	b.StopTimer()
}

// steadyPhases runs the floor, spread, db and hot phases on all (seeded
// single-use codes) and returns the API server's base URL and process id,
// which the burst reuses.
func steadyPhases(b *testing.B, st *postgres.Store, dsn, schema string, all []string, clients, conns, seconds int) (string, int) {
	ctx := context.Background()
	total := len(all)
	duration := time.Duration(seconds) * time.Second
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	half := len(all) / 2

	// 0. The floor, before the API process holds its connections.
	floor, hotFloor := floorStatement(b, dsn, schema, clients, total, seconds)

	base, pid := startBenchServer(b, dsn, schema, conns)
	redeemHTTP := redeemOverHTTP(base)

	// 1. Spread, over HTTP.
	fmt.Printf("spread: %s\n", loadAverage())
	cpu0, use := cpuTime(pid), markUsage()
	httpRate, lat, httpCounts := runFor(clients, duration, all[:half], func(c *benchClient, code string, i int) (bool, error) {
		return redeemHTTP(c, code, "http-"+strconv.Itoa(i))
	})
	fmt.Printf("spread: %d HTTP clients, %s: %.0f redemptions/s, p50 %.2f ms, p99 %.2f ms, %v; floor %.0f/s: ratio %.2f; %s; %s\n",
		clients, duration, httpRate, pct(lat, 50), pct(lat, 99), httpCounts, floor, httpRate/floor,
		apiCPU(cpuTime(pid)-cpu0, len(lat)), use.since(len(lat)))

	// 2. The same store.Redeem, no HTTP.
	use = markUsage()
	dbRate, dbLat, dbCounts := runFor(clients, duration, all[half:], func(_ *benchClient, code string, i int) (bool, error) {
		out, err := st.Redeem(ctx, promo.RedeemRequest{ID: newUUID(), EventID: newUUID(), Code: code,
			UserID: "db-" + strconv.Itoa(i), Now: time.Now().UTC(), IdempotencyKey: "k-db-" + strconv.Itoa(i),
			RequestHash: "h"})
		return err == nil && out.Refused == "", err
	})
	fmt.Printf("db:     %d goroutines, %s: %.0f redemptions/s, p50 %.2f ms, p99 %.2f ms, %v; floor ratio %.2f; http/db %.2f; %s\n",
		clients, duration, dbRate, pct(dbLat, 50), pct(dbLat, 99), dbCounts, dbRate/floor, httpRate/dbRate, use.since(len(dbLat)))

	// 3. One hot code, over HTTP.
	fmt.Printf("hot: %s\n", loadAverage())
	hotCode := "HOT" + strings.ToUpper(strconv.FormatUint(rand.Uint64()%1e9, 36))
	hp, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "hot", Kind: promo.KindVanity,
		VanityCode: hotCode, MaxUsagePerCode: 100_000_000, PerUserLimit: 1}})
	if err != nil {
		b.Fatal(err)
	}
	hotList := make([]string, clients*10_000)
	for i := range hotList {
		hotList[i] = hotCode
	}
	cpu0, use = cpuTime(pid), markUsage()
	hotRate, hotLat, hotCounts := runFor(clients, duration, hotList, func(c *benchClient, code string, i int) (bool, error) {
		return redeemHTTP(c, code, "hot-"+strconv.Itoa(i))
	})
	hotCPU, hotUse := cpuTime(pid)-cpu0, use.since(len(hotLat))
	uses, rows := hotCheck(b, st, hp.ID, hotCode)
	fmt.Printf("hot:    %d HTTP clients on one code, %s: %.0f redemptions/s, p50 %.2f ms, p99 %.2f ms, %v; "+
		"floor on one row %.0f/s: ratio %.2f; uses %d, audit rows %d; %s; %s\n",
		clients, duration, hotRate, pct(hotLat, 50), pct(hotLat, 99), hotCounts, hotFloor, hotRate/hotFloor, uses, rows,
		apiCPU(hotCPU, len(hotLat)), hotUse)
	if uses != hotCounts["ok"] || rows != hotCounts["ok"] {
		b.Errorf("hot code: %d uses, %d audit rows, %d answers 201: want them equal", uses, rows, hotCounts["ok"])
	}
	b.ReportMetric(httpRate, "redemptions/s")
	b.ReportMetric(pct(lat, 99), "p99-ms")
	b.ReportMetric(httpRate/floor, "spread/floor")
	b.ReportMetric(hotRate/hotFloor, "hot/floor")

	return base, pid
}

// loadAverage is the machine's load average, for the figures' context.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	return "load average " + strings.Join(strings.Fields(string(data))[:3], " ")
}

// benchStore is what the benchmarks seed and check through (PostgreSQL's or
// SQLite's store).
type benchStore interface {
	CreatePromotion(ctx context.Context, np promo.NewPromotion) (promo.Promotion, bool, error)
	IncompleteBatches(ctx context.Context, promotionID int64) ([]promo.Batch, error)
	CommitChunk(ctx context.Context, c promo.Chunk) (int64, error)
	CodeState(ctx context.Context, code, userID string) (promo.CodeState, error)
	ExportRedemptions(ctx context.Context, f promo.RedemptionFilter, fn func(promo.Redemption) error) error
}

// hotCheck reads the hot code's uses and its audit rows.
func hotCheck(b *testing.B, st benchStore, promotionID int64, code string) (uses, rows int) {
	b.Helper()
	ctx := context.Background()
	cs, err := st.CodeState(ctx, code, "")
	if err != nil {
		b.Fatal(err)
	}
	err = st.ExportRedemptions(ctx, promo.RedemptionFilter{PromotionID: promotionID}, func(promo.Redemption) error {
		rows++
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return cs.Used, rows
}

// floorScript is the floor statement (../docs/performance.md, "Redemption"):
// all five writes of a redemption in one statement, on numbered codes 'FL<n>'
// of the codes table. It checks less than a redemption does (no window, no
// live holds, and an allowance refusal after the code's UPDATE would still
// have used the code): it measures the work, not the logic.
const floorScript = `WITH k AS (INSERT INTO idempotency_keys (idem_key, request_hash, created_at)
		VALUES (gen_random_uuid()::text, 'h', now()) ON CONFLICT (idem_key) DO NOTHING RETURNING idem_key),
	c AS (UPDATE codes SET used = used + 1 WHERE code = %s AND used < 1000000000
		AND EXISTS (SELECT 1 FROM k) RETURNING code, promotion_id, used),
	a AS (INSERT INTO user_uses AS u (promotion_id, user_id, used) SELECT promotion_id, 'u' || :u, 1 FROM c
		ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = u.used + 1 WHERE u.used < 1000000000
		RETURNING u.used),
	r AS (INSERT INTO redemptions (id, promotion_id, code, user_id, redeemed_at, uses_left)
		SELECT gen_random_uuid()::text, c.promotion_id, c.code, 'u' || :u, now(), 1 FROM c, a
		RETURNING id, promotion_id, code)
INSERT INTO events (stream, event_key, payload, created_at)
	SELECT 'floor', promotion_id::text, '{"v":1}', now() FROM r;
`

// floorStatement runs the floor statement under pgbench on n numbered codes
// (random) and on one code row (hot), clients at a time, for seconds each,
// and returns both rates. It fails the benchmark without pgbench: without
// the floor the figures have nothing to be measured against.
func floorStatement(b *testing.B, dsn, schema string, clients, n, seconds int) (spread, hot float64) {
	path, err := exec.LookPath("pgbench")
	if err != nil {
		b.Fatalf("pgbench is needed for the floor (PostgreSQL's client tools): %v", err)
	}
	// The floor's promotion id is negative: no promotion has it, nothing else
	// reads its rows, and the events it writes are on a stream of its own.
	setup := fmt.Sprintf(`SET search_path TO %s;
INSERT INTO codes (code, promotion_id) SELECT 'FL' || g, -1 FROM generate_series(1, %d) g;
INSERT INTO codes (code, promotion_id) VALUES ('FLHOT', -1);
ANALYZE codes;`, schema, n)
	if out, err := exec.Command("psql", dsn, "-q", "-v", "ON_ERROR_STOP=1", "-c", setup).CombinedOutput(); err != nil {
		b.Fatalf("floor setup: %v %s", err, out)
	}
	dir := b.TempDir()
	run := func(name, code string) float64 {
		script := filepath.Join(dir, name+".sql")
		body := fmt.Sprintf("\\set n random(1, %d)\n\\set u random(1, 1000000000)\n", n) + fmt.Sprintf(floorScript, code)
		if err := os.WriteFile(script, []byte(body), 0o600); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("floor %s: %s\n", name, loadAverage())
		cmd := exec.Command(path, "-n", "-M", "prepared", "-f", script, "-c", strconv.Itoa(clients), "-j", "2",
			"-T", strconv.Itoa(seconds), dsn)
		cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+schema)
		use := markUsage()
		out, err := cmd.CombinedOutput()
		busy := use.machine()
		if err != nil {
			b.Fatalf("pgbench %s: %v %s", name, err, out)
		}
		var tps float64
		var lat string
		for _, line := range strings.Split(string(out), "\n") {
			if f, ok := strings.CutPrefix(line, "tps = "); ok {
				tps, _ = strconv.ParseFloat(strings.Fields(f)[0], 64)
			}
			if strings.HasPrefix(line, "latency average") {
				lat = strings.TrimSpace(line)
			}
		}
		fmt.Printf("floor %s: pgbench -M prepared -c %d -j 2 -T %d: %.0f redemptions/s, %s; %s\n", name, clients, seconds, tps, lat, busy)
		return tps
	}
	return run("spread", "'FL' || :n"), run("hot", "'FLHOT'")
}

// seedBench commits n single-use codes of a new promotion and returns them
// in canonical form.
func seedBench(b *testing.B, st benchStore, n int, prefix string) []string {
	b.Helper()
	ctx := context.Background()
	eng, err := codes.New(promo.Format{Charset: "alnum", Length: 12, Prefix: prefix}, testSecret)
	if err != nil {
		b.Fatal(err)
	}
	l := eng.Layout()
	f := l.Format()
	const chunk = 10_000
	p, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "bench", Kind: promo.KindGenerated,
		CodeCount: int64(n), Format: &f, MaxUsagePerCode: 1, PerUserLimit: 1, CounterName: l.CounterName()},
		BatchSize: chunk, SeqLimit: math.MaxInt64})
	if err != nil {
		b.Fatal(err)
	}
	bs, err := st.IncompleteBatches(ctx, p.ID)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]string, 0, n)
	for _, bt := range bs {
		buf := eng.AppendCodes(nil, bt.SeqStart, int(bt.CodeCount))
		if _, err := st.CommitChunk(ctx, promo.Chunk{Batch: bt.Ref(), Count: int(bt.CodeCount), Codes: buf,
			CodeLen: l.CodeLen(), CounterName: p.CounterName, Replace: eng.AppendCode}); err != nil {
			b.Fatal(err)
		}
		for i := range int(bt.CodeCount) {
			out = append(out, string(buf[i*l.CodeLen():(i+1)*l.CodeLen()]))
		}
	}
	return out
}

// runFor runs workers goroutines, each redeeming its own slice of codes one
// after another, for d; it returns successes per second, every latency in
// milliseconds, and the outcomes.
func runFor(workers int, d time.Duration, codeList []string,
	do func(c *benchClient, code string, i int) (bool, error)) (float64, []float64, map[string]int) {
	per := len(codeList) / workers
	var (
		mu       sync.Mutex
		lats     []float64
		ok, errs atomic.Int64
		refused  atomic.Int64
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := range workers {
		mine := codeList[w*per : (w+1)*per]
		wg.Go(func() {
			c := &benchClient{}
			defer func() {
				if c.c != nil {
					c.c.Close()
				}
			}()
			local := make([]float64, 0, 4096)
			for i, code := range mine {
				if time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				success, err := do(c, code, w*per+i)
				local = append(local, float64(time.Since(t0).Microseconds())/1000)
				switch {
				case err != nil:
					errs.Add(1)
				case success:
					ok.Add(1)
				default:
					refused.Add(1)
				}
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	return float64(ok.Load()) / elapsed.Seconds(), lats,
		map[string]int{"ok": int(ok.Load()), "refused": int(refused.Load()), "errors": int(errs.Load())}
}

// runBurst sends n redemptions at once, each on its own connection, spread
// over codeList, and waits for every answer. Its client is a minimal
// HTTP/1.1 one, as load generators such as wrk are: a request built before
// the gate, one dial, one write and http.ReadResponse per connection, on one
// goroutine (the same client as pkg/app's TestBurstTenThousandConnections).
// A net/http Transport per connection costs several goroutines and buffers
// per request: on a 2-core machine that client's CPU, not the API's, set part
// of the drain time (docs/performance.md, "Bursts").
func runBurst(b *testing.B, base string, codeList []string, n int) (time.Duration, float64, map[string]int) {
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		lats   = make([]float64, 0, n)
		wg     sync.WaitGroup
		ready  sync.WaitGroup
		gate   = make(chan struct{})
	)
	addr := strings.TrimPrefix(base, "http://")
	ready.Add(n)
	for i := range n {
		wg.Go(func() {
			// The connection is dialled after the gate, so the drain includes
			// 10,000 connections opened at once.
			body := `{"userId":"flash-` + strconv.Itoa(i) + `"}`
			req := "POST /v1/codes/" + codeList[i%len(codeList)] + "/redemptions HTTP/1.1\r\nHost: " + addr +
				"\r\nContent-Type: application/json\r\nAuthorization: Bearer " + redeemToken +
				"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
			ready.Done()
			<-gate
			t0 := time.Now()
			key := burstOne(addr, req, t0.Add(2*time.Minute))
			ms := float64(time.Since(t0).Microseconds()) / 1000
			mu.Lock()
			counts[key]++
			lats = append(lats, ms)
			mu.Unlock()
		})
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	wg.Wait()
	drain := time.Since(start)
	slices.Sort(lats)
	return drain, pct(lats, 99), counts
}

// burstOne sends one prepared request on a new connection to addr and
// returns the answer's status code, or "error: ..." when there was none.
func burstOne(addr, req string, deadline time.Time) string {
	c, err := (&net.Dialer{Deadline: deadline}).Dial("tcp", addr)
	if err != nil {
		return "error: dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	if _, err := io.WriteString(c, req); err != nil {
		return "error: send: " + err.Error()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "error: read answer: " + err.Error()
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "error: read body: " + err.Error()
	}
	return strconv.Itoa(resp.StatusCode)
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	return sorted[min(len(sorted)-1, int(math.Ceil(p/100*float64(len(sorted))))-1)]
}

func newUUID() string {
	return fmt.Sprintf("%016x-%016x", time.Now().UnixNano(), rand.Uint64())
}

// raiseFileLimit makes room for n open files (the burst's client
// connections; the server side is another process).
func raiseFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= uint64(n) {
		return nil
	}
	want := syscall.Rlimit{Cur: uint64(n), Max: max(lim.Max, uint64(n))}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("need %d open files, the limit is %d/%d and cannot be raised (%v); run as root or raise ulimit -n",
			n, lim.Cur, lim.Max, err)
	}
	return nil
}

// redeemOverHTTP redeems code for user through the API at base, with an
// Idempotency-Key of its own (as a checkout sends, and as the floor writes
// one): true on 201, false on a refusal, an error on a 5xx or a failed
// request.
func redeemOverHTTP(base string) func(c *benchClient, code, user string) (bool, error) {
	keys := "k" + strconv.FormatUint(rand.Uint64(), 36) + "-" // no key of another phase
	return func(c *benchClient, code, user string) (bool, error) {
		status, err := c.post(base, "/v1/codes/"+code+"/redemptions", keys+user, `{"userId":"`+user+`"}`)
		if err != nil {
			return false, err
		}
		if status >= 500 {
			return false, fmt.Errorf("HTTP %d", status)
		}
		return status == http.StatusCreated, nil
	}
}

// benchClient is one load-generating client: a keep-alive HTTP/1.1
// connection written to and read from by one goroutine, as load generators
// such as wrk are. A net/http Client costs a reader and a writer goroutine per
// connection, a Request, its headers and their copies per request: CPU the
// benchmark's 64 clients would take from the API on the same 2 cores. The
// connection is dialled again after an error or a "Connection: close"; a
// request that failed is not sent again (a redemption is not retried blind).
type benchClient struct {
	c   net.Conn
	r   *bufio.Reader
	buf []byte
}

// post sends body as JSON to base+path with the benchmark's token and key
// as its Idempotency-Key (none if empty), and returns the answer's status
// code, its body read and dropped.
func (bc *benchClient) post(base, path, key, body string) (int, error) {
	addr := strings.TrimPrefix(base, "http://")
	if bc.c == nil {
		c, err := net.DialTimeout("tcp", addr, time.Minute)
		if err != nil {
			return 0, fmt.Errorf("dial %s: %w", addr, err)
		}
		bc.c = c
		if bc.r == nil {
			bc.r = bufio.NewReader(c)
		} else {
			bc.r.Reset(c)
		}
	}
	bc.buf = append(bc.buf[:0], "POST "...)
	bc.buf = append(bc.buf, path...)
	bc.buf = append(bc.buf, " HTTP/1.1\r\nHost: "...)
	bc.buf = append(bc.buf, addr...)
	bc.buf = append(bc.buf, "\r\nContent-Type: application/json\r\nAuthorization: Bearer "...)
	bc.buf = append(bc.buf, redeemToken...)
	if key != "" {
		bc.buf = append(bc.buf, "\r\nIdempotency-Key: "...)
		bc.buf = append(bc.buf, key...)
	}
	bc.buf = append(bc.buf, "\r\nContent-Length: "...)
	bc.buf = strconv.AppendInt(bc.buf, int64(len(body)), 10)
	bc.buf = append(bc.buf, "\r\n\r\n"...)
	bc.buf = append(bc.buf, body...)
	_ = bc.c.SetDeadline(time.Now().Add(time.Minute))
	status, closing, err := bc.exchange()
	if err != nil || closing {
		bc.c.Close()
		bc.c = nil
	}
	return status, err
}

func (bc *benchClient) exchange() (status int, closing bool, err error) {
	if _, err := bc.c.Write(bc.buf); err != nil {
		return 0, true, fmt.Errorf("send: %w", err)
	}
	resp, err := http.ReadResponse(bc.r, nil)
	if err != nil {
		return 0, true, fmt.Errorf("read answer: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, true, fmt.Errorf("read answer's body: %w", err)
	}
	return resp.StatusCode, resp.Close, nil
}
