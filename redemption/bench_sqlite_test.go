package redemption_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/pkg/listen"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/promotion"
	"github.com/promocodes/promocodes/redemption"
)

const envBenchServeSQLite = "PROMOCODES_BENCH_SERVE_SQLITE" // "path group": the database file, Config.RedeemGroup

// serveBenchSQLite runs the API with the redemption service on the SQLite
// file, on the store's defaults (what promocodes serve and dev open) but
// for its RedeemGroup, until its standard input closes, after printing its
// address.
func serveBenchSQLite(arg string) error {
	app.TuneGC() // as promocodes api and dev do
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path, g, _ := strings.Cut(arg, " ")
	group, _ := strconv.Atoi(g)
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path, RedeemGroup: group})
	if err != nil {
		return err
	}
	defer st.Close()
	log := zap.NewNop()
	svc, err := redemption.New(redemption.Config{GuessLimit: -1, GuessLimitPerToken: -1, AdmissionSlots: 128}, st, nil, log) // admission as the wiring sets it on SQLite
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
		RedeemTokens: []string{redeemToken}}, st, ps, nil, log, api.WithRedemption(svc))
	if err != nil {
		return err
	}
	lns, err := listen.Listen("127.0.0.1:0") // as the API listens (pkg/app)
	if err != nil {
		return err
	}
	if addr := os.Getenv(envBenchPprof); addr != "" {
		// The API process's profiles, as BenchmarkRedeem's.
		go func() { fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, pprofMux())) }()
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: time.Minute}
	for _, ln := range lns {
		go func() { _ = hs.Serve(ln) }()
	}
	fmt.Printf("listening %s\n", lns[0].Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return hs.Close()
}

// startBenchServerSQLite starts this test binary as the API server process
// on the SQLite file path with Config.RedeemGroup group; stop ends it (and
// waits), so that the benchmark can read the file alone afterwards; pid is
// its process id.
func startBenchServerSQLite(b *testing.B, path string, group int) (base string, pid int, stop func()) {
	b.Helper()
	pid, stdout, stop := startChild(b, fmt.Sprintf("%s=%s %d", envBenchServeSQLite, path, group))
	return serverURL(b, stdout), pid, stop
}

// BenchmarkRedeemSQLite measures redemption on SQLite (make run's default
// store) against SQLite's own floor, in one run, on one database file with
// the store's pragmas (WAL, synchronous FULL: every commit is flushed):
//
//   - floor: 64 goroutines doing the five writes of a redemption
//     (idempotency key, the code's conditional UPDATE, the allowance
//     upsert, the audit row, the event; prepared statements) on numbered
//     codes, in two forms. "one txn each": a write transaction and a commit
//     per redemption, the naive floor. "grouped": the same writes, but the
//     redemptions that arrive while a transaction commits share the next one
//     (group commit, the same bounded wait as the store's). The grouped floor
//     is the floor: it is the best SQLite does for those writes with commits
//     of the same durability, and the store is allowed to group-commit, so
//     the floor is too. Then both on one code row (hot). The grouped floor
//     is run once more with a spinner process beside it (one core of
//     arithmetic at nice 19): the HTTP phases need the second core, and
//     this shows what a busy second core alone costs the one writer.
//   - db: store.Redeem on 64 goroutines, no HTTP, in this process.
//   - spread: 64 HTTP clients on distinct single-use codes, against the API
//     server in its own process on the same file, opened as promocodes
//     serve opens it.
//   - hot: 64 HTTP clients on one vanity code, distinct users; uses, audit
//     rows and 201 answers must agree.
//
// Spread and hot run twice, each time against a new API process: with group
// commit off (RedeemGroup -1: a transaction per redemption, a hot code's
// waiters combined by the redemption service, as before group commit), then
// on (the default).
//
// Each figure is printed with its ratio to the floor of the same run and
// its p99; load average at the start of each phase.
func BenchmarkRedeemSQLite(b *testing.B) {
	var (
		total    = benchEnv("BENCH_REDEEM_CODES", 200_000)
		clients  = benchEnv("BENCH_REDEEM_CLIENTS", 64)
		seconds  = benchEnv("BENCH_REDEEM_SECONDS", 10)
		duration = time.Duration(seconds) * time.Second
	)
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "bench.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	all := seedBench(b, st, total, "S")
	fmt.Printf("seeded %d single-use codes in %s\n", len(all), time.Since(start).Round(time.Millisecond))
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	third := len(all) / 3

	b.ResetTimer()
	// 0. The floors, on the store's settings, with nothing else writing.
	fl := openFloor(b, path, total)
	naive := fl.run(b, "spread, one txn each", clients, duration, false, false)
	floor := fl.run(b, "spread, grouped", clients, duration, true, false)
	// The same floor with the second core busy: a spinner beside it at nice
	// 19. The HTTP phases need that core (the API's HTTP work, the clients,
	// the checkpointer), and a busy second core slows SQLite's one writer
	// even at that priority: this prints by how much, in this run.
	stopSpin := startSpinner(b)
	beside := fl.run(b, "spread, grouped, a spinner beside", clients, duration, true, false)
	stopSpin()
	fmt.Printf("floor spread, grouped, a spinner beside: %.2f of the floor\n", beside/floor)
	hotNaive := fl.run(b, "hot, one txn each", clients, duration, false, true)
	hotFloor := fl.run(b, "hot, grouped", clients, duration, true, true)
	fl.close()

	// 1. store.Redeem, no HTTP.
	fmt.Printf("db: %s\n", loadAverage())
	use := markUsage()
	dbRate, dbLat, dbCounts := runFor(clients, duration, all[:third], func(_ *benchClient, code string, i int) (bool, error) {
		out, err := st.Redeem(ctx, promo.RedeemRequest{ID: newUUID(), EventID: newUUID(), Code: code,
			UserID: "db-" + strconv.Itoa(i), Now: time.Now().UTC(), IdempotencyKey: "k-db-" + strconv.Itoa(i),
			RequestHash: "h"})
		return err == nil && out.Refused == "", err
	})
	fmt.Printf("db:     %d goroutines, %s: %.0f redemptions/s, p50 %.2f ms, p99 %.2f ms, %v; floor ratio %.2f (one-txn floor %.2f); %s\n",
		clients, duration, dbRate, pct(dbLat, 50), pct(dbLat, 99), dbCounts, dbRate/floor, dbRate/naive, use.since(len(dbLat)))

	var (
		hotCodes      [2]string
		hotPromotions [2]int64
	)
	for i := range hotCodes {
		hotCodes[i] = "HOT" + strings.ToUpper(strconv.FormatUint(rand.Uint64()%1e9, 36))
		hp, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "hot", Kind: promo.KindVanity,
			VanityCode: hotCodes[i], MaxUsagePerCode: 100_000_000, PerUserLimit: 1}})
		if err != nil {
			b.Fatal(err)
		}
		hotPromotions[i] = hp.ID
	}
	st.Close()
	st = nil

	// 2, 3. Spread and hot over HTTP against the API in its own process:
	// first with group commit off (each redemption its own transaction; a
	// hot code's waiters combined, as before group commit), then on.
	quarter := (len(all) - third) / 2
	var (
		httpRate, hotRate float64
		lat               []float64
	)
	for _, phase := range []struct {
		name  string
		group int
		codes []string
	}{{"one txn each", -1, all[third : third+quarter]}, {"grouped", 0, all[third+quarter:]}} {
		hotCode := hotCodes[phase.group+1]
		base, pid, stop := startBenchServerSQLite(b, path, phase.group)
		redeemHTTP := redeemOverHTTP(base)
		fmt.Printf("spread (%s): %s\n", phase.name, loadAverage())
		var counts map[string]int
		cpu0, use := cpuTime(pid), markUsage()
		httpRate, lat, counts = runFor(clients, duration, phase.codes, func(c *benchClient, code string, i int) (bool, error) {
			return redeemHTTP(c, code, "http-"+strconv.Itoa(phase.group)+"-"+strconv.Itoa(i))
		})
		fmt.Printf("spread (%s): %d HTTP clients, %s: %.0f redemptions/s, p50 %.2f ms, p99 %.2f ms, %v; "+
			"floor %.0f/s: ratio %.2f (one-txn floor %.0f/s: %.2f; the floor with a spinner beside %.0f/s: %.2f); %s; %s\n",
			phase.name, clients, duration, httpRate, pct(lat, 50), pct(lat, 99), counts, floor, httpRate/floor, naive,
			httpRate/naive, beside, httpRate/beside, apiCPU(cpuTime(pid)-cpu0, len(lat)), use.since(len(lat)))

		fmt.Printf("hot (%s): %s\n", phase.name, loadAverage())
		hotList := make([]string, clients*10_000)
		for i := range hotList {
			hotList[i] = hotCode
		}
		var hotLat []float64
		cpu0, use = cpuTime(pid), markUsage()
		hotRate, hotLat, counts = runFor(clients, duration, hotList, func(c *benchClient, code string, i int) (bool, error) {
			return redeemHTTP(c, code, "hot-"+strconv.Itoa(i))
		})
		hotCPU, hotUse := cpuTime(pid)-cpu0, use.since(len(hotLat))
		stop()
		st, err = sqlite.Open(ctx, sqlite.Config{Path: path})
		if err != nil {
			b.Fatal(err)
		}
		uses, rows := hotCheck(b, st, hotPromotions[phase.group+1], hotCode)
		st.Close()
		st = nil
		fmt.Printf("hot (%s): %d HTTP clients on one code, %s: %.0f redemptions/s, p50 %.2f ms, p99 %.2f ms, %v; "+
			"floor on one row %.0f/s: ratio %.2f (one-txn %.0f/s: %.2f); uses %d, audit rows %d; %s; %s\n",
			phase.name, clients, duration, hotRate, pct(hotLat, 50), pct(hotLat, 99), counts, hotFloor, hotRate/hotFloor,
			hotNaive, hotRate/hotNaive, uses, rows, apiCPU(hotCPU, len(hotLat)), hotUse)
		if uses != counts["ok"] || rows != counts["ok"] {
			b.Errorf("hot code: %d uses, %d audit rows, %d answers 201: want them equal", uses, rows, counts["ok"])
		}
	}
	fmt.Printf("end: %s\n", loadAverage())
	b.ReportMetric(httpRate, "redemptions/s")
	b.ReportMetric(pct(lat, 99), "p99-ms")
	b.ReportMetric(httpRate/floor, "spread/floor")
	b.ReportMetric(hotRate/hotFloor, "hot/floor")
	b.StopTimer()
}

// floorDB is the floor's writer: one connection on the store's file with
// the store's writer settings (sqlite.WriterParams) and its checkpointer,
// the five statements prepared.
type floorDB struct {
	db    *sql.DB
	stmts [5]*sql.Stmt
	n     int
	// stop ends the floor's checkpointer: the store's (sqlite.StartCheckpoints).
	stop func()
}

// The floor's five writes (the SQLite form of floorScript): on numbered
// codes 'FL<n>' of promotion -1, which no promotion has.
var floorStatements = [5]string{
	`INSERT INTO idempotency_keys (idem_key, request_hash, created_at) VALUES (?1, 'h', ?2) ON CONFLICT (idem_key) DO NOTHING`,
	`UPDATE codes SET used = used + 1 WHERE code = ?1 AND used < 1000000000 RETURNING promotion_id, used`,
	`INSERT INTO user_uses (promotion_id, user_id, used) VALUES (?1, ?2, 1)
ON CONFLICT (promotion_id, user_id) DO UPDATE SET used = used + 1 WHERE used < 1000000000`,
	`INSERT INTO redemptions (id, promotion_id, code, user_id, redeemed_at, uses_left) VALUES (?1, ?2, ?3, ?4, ?5, 1)`,
	`INSERT INTO events (stream, event_key, payload, created_at) VALUES ('floor', ?1, '{"v":1}', ?2)`,
}

func openFloor(b *testing.B, path string, n int) *floorDB {
	b.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&"+sqlite.WriterParams)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?1)
INSERT INTO codes (code, promotion_id) SELECT 'FL' || n, -1 FROM g UNION ALL SELECT 'FLHOT', -1`, n); err != nil {
		b.Fatalf("floor codes: %v", err)
	}
	stopCheckpoints := sqlite.StartCheckpoints(path+"?_pragma=busy_timeout(10000)", sqlite.CheckpointEvery)
	f := &floorDB{db: db, n: n, stop: stopCheckpoints}
	for i, q := range floorStatements {
		if f.stmts[i], err = db.PrepareContext(ctx, q); err != nil {
			b.Fatalf("prepare %q: %v", q, err)
		}
	}
	return f
}

func (f *floorDB) close() {
	f.stop()
	for _, s := range f.stmts {
		s.Close()
	}
	f.db.Close()
}

// redeem runs the five writes of one redemption of code by user in tx.
func (f *floorDB) redeem(ctx context.Context, tx *sql.Tx, code, user string) error {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if _, err := tx.StmtContext(ctx, f.stmts[0]).ExecContext(ctx, newUUID(), now); err != nil {
		return err
	}
	var (
		pid  int64
		used int
	)
	if err := tx.StmtContext(ctx, f.stmts[1]).QueryRowContext(ctx, code).Scan(&pid, &used); err != nil {
		return fmt.Errorf("code %s: %w", code, err)
	}
	if _, err := tx.StmtContext(ctx, f.stmts[2]).ExecContext(ctx, pid, user); err != nil {
		return err
	}
	if _, err := tx.StmtContext(ctx, f.stmts[3]).ExecContext(ctx, newUUID(), pid, code, user, now); err != nil {
		return err
	}
	_, err := tx.StmtContext(ctx, f.stmts[4]).ExecContext(ctx, strconv.FormatInt(pid, 10), now)
	return err
}

type floorReq struct {
	code, user string
	done       chan error
}

// run runs the floor with clients goroutines for d, on random codes or on
// one (hot); grouped: through one committer that writes whatever has
// gathered (up to 128, as sqlite.DefaultRedeemGroup) in one transaction.
func (f *floorDB) run(b *testing.B, name string, clients int, d time.Duration, grouped, hot bool) float64 {
	ctx := context.Background()
	fmt.Printf("floor %s: %s\n", name, loadAverage())
	codeOf := func() string {
		if hot {
			return "FLHOT"
		}
		return "FL" + strconv.Itoa(1+rand.IntN(f.n))
	}
	one := func(code, user string) error {
		tx, err := f.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // a no-op after Commit
		if err := f.redeem(ctx, tx, code, user); err != nil {
			return err
		}
		return tx.Commit()
	}
	var (
		queue = make(chan floorReq, clients)
		wg    sync.WaitGroup
	)
	if grouped {
		wg.Go(func() {
			for r := range queue {
				group := []floorReq{r}
			gather:
				for len(group) < sqlite.DefaultRedeemGroup {
					select {
					case r, ok := <-queue:
						if !ok {
							break gather
						}
						group = append(group, r)
					default:
						break gather
					}
				}
				err := func() error {
					tx, err := f.db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					defer tx.Rollback() //nolint:errcheck // a no-op after Commit
					for _, r := range group {
						if err := f.redeem(ctx, tx, r.code, r.user); err != nil {
							return err
						}
					}
					return tx.Commit()
				}()
				for _, r := range group {
					r.done <- err
				}
			}
		})
		one = func(code, user string) error {
			r := floorReq{code: code, user: user, done: make(chan error, 1)}
			queue <- r
			return <-r.done
		}
	}
	list := make([]string, clients*20_000) // a bound on each goroutine's redemptions
	use := markUsage()
	rate, lat, counts := runFor(clients, d, list, func(_ *benchClient, _ string, i int) (bool, error) {
		err := one(codeOf(), "u"+strconv.Itoa(i))
		return err == nil, err
	})
	close(queue)
	wg.Wait()
	if counts["errors"] > 0 {
		b.Fatalf("floor %s: %v", name, counts)
	}
	fmt.Printf("floor %s: %d goroutines, %s: %.0f redemptions/s, p50 %.2f ms, p99 %.2f ms; %s\n",
		name, clients, d, rate, pct(lat, 50), pct(lat, 99), use.since(len(lat)))
	return rate
}

// BenchmarkRedeemSQLiteConcurrency measures store.Redeem on SQLite (group
// commit, no HTTP) at 32, 64, 128 and 256 concurrent redeemers, each phase
// on single-use keyed codes of its own (BENCH_REDEEM_CODES seeded,
// BENCH_REDEEM_SECONDS each, default 4): how the one writer's rate grows as
// more requests wait, which the 64 clients of BenchmarkRedeemSQLite do not
// show.
func BenchmarkRedeemSQLiteConcurrency(b *testing.B) {
	var (
		total    = benchEnv("BENCH_REDEEM_CODES", 400_000)
		duration = time.Duration(benchEnv("BENCH_REDEEM_SECONDS", 4)) * time.Second
	)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	all := seedBench(b, st, total, "S")
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	levels := []int{32, 64, 128, 256}
	b.ResetTimer()
	for i, clients := range levels {
		codes := all[i*len(all)/len(levels) : (i+1)*len(all)/len(levels)]
		fmt.Printf("%d redeemers: %s\n", clients, loadAverage())
		rate, lat, counts := runFor(clients, duration, codes, func(_ *benchClient, code string, n int) (bool, error) {
			out, err := st.Redeem(ctx, promo.RedeemRequest{ID: newUUID(), EventID: newUUID(), Code: code,
				UserID: "c" + strconv.Itoa(clients) + "-" + strconv.Itoa(n), Now: time.Now().UTC(),
				IdempotencyKey: "k" + strconv.Itoa(clients) + "-" + strconv.Itoa(n), RequestHash: "h"})
			return err == nil && out.Refused == "", err
		})
		fmt.Printf("%d redeemers, %s: %.0f redemptions/s, p50 %.2f ms, p99 %.2f ms, %v\n",
			clients, duration, rate, pct(lat, 50), pct(lat, 99), counts)
		b.ReportMetric(rate, fmt.Sprintf("redemptions/s@%d", clients))
	}
}
