//go:build integration

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/promocodes/promocodes/generator"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// BenchmarkGenerationVsCopyCeiling (make bench) generates one promotion end
// to end — API, embedded broker, generator processes, PostgreSQL — and, in
// the same run, measures the database's own bulk-load ceiling on the same
// rows: binary COPY, in the same order, in chunks of the same size (one
// transaction each), on as many connections as the generator has workers,
// into an empty table that has only a unique index on code ("unique"), and
// into an empty copy of the project's codes table ("schema").
//
// Environment (all optional):
//
//	BENCH_CODES     codes per promotion (default 1,000,000)
//	BENCH_RUNS      repetitions; medians are printed (default 3)
//	BENCH_PROCS     generator processes (default 1)
//	BENCH_WORKERS   workers per process (default 2)
//	BENCH_CHUNK     generator.chunkSize (default: the generator's, 10,000)
//	BENCH_BATCH     api.batchCodeCount (default: the API's, 50,000)
//	BENCH_CEILINGS  which ceilings: "unique,schema" (default), "unique", "none"
//	BENCH_WINDOWS   curve windows (default 20: each 5% of the rows)
//	BENCH_OUT       a directory for curve.csv and curve.png
//	BENCH_PGOPTIONS server settings for every connection of the run, pipeline
//	                and ceilings alike, e.g. "-c wal_compression=lz4"
//
// Per run it prints the totals, the curve (codes/s per window against the
// rows already in the table, pipeline next to ceiling), the tail (first idle
// worker to completion), WAL and checkpoint figures per phase, and the
// generator's RSS; then the medians over runs.
func BenchmarkGenerationVsCopyCeiling(b *testing.B) {
	if b.N > 1 {
		b.Skip("run with -benchtime=1x: one promotion per run is the unit")
	}
	cfg := benchConfig{
		n:        envInt(b, "BENCH_CODES", 1_000_000),
		runs:     envInt(b, "BENCH_RUNS", 3),
		procs:    envInt(b, "BENCH_PROCS", 1),
		workers:  envInt(b, "BENCH_WORKERS", 2),
		chunk:    envInt(b, "BENCH_CHUNK", generatorDefaultChunk),
		batch:    envInt(b, "BENCH_BATCH", 0),
		windows:  envInt(b, "BENCH_WINDOWS", 20),
		ceilings: strings.Split(envStr("BENCH_CEILINGS", "unique,schema"), ","),
		out:      benchOut(b),
	}
	if slices.Contains(cfg.ceilings, "none") {
		cfg.ceilings = nil
	}
	fmt.Printf("\n== PostgreSQL: %s codes, %d×%d (processes × workers), chunk %s, %d run(s)\n",
		thousands(uint64(cfg.n)), cfg.procs, cfg.workers, thousands(uint64(cfg.chunk)), cfg.runs)
	var results []runResult
	for r := 0; r < cfg.runs; r++ {
		res := benchRun(b, cfg, r+1)
		results = append(results, res)
		res.print(cfg)
		if cfg.out != "" && r == 0 {
			res.writeCurve(b, cfg)
		}
	}
	summarize(b, cfg, results)
}

const generatorDefaultChunk = 10_000

// ceilingTable is the ceiling's table; BenchmarkCeilingAlongside uses its own.
var ceilingTable = "codes_ceiling"

// BenchmarkCeilingAlongside measures the unique-index-only ceiling of a
// promotion that is being generated right now by another run (BENCH_SCHEMA,
// BENCH_PROMOTION), on the same machine at the same time: for sizes where
// running the ceiling after the pipeline would take too long. Both loads then
// share the machine; the ratio says how the pipeline fares against a bare
// COPY under identical conditions.
func BenchmarkCeilingAlongside(b *testing.B) {
	schemaName, promotion := os.Getenv("BENCH_SCHEMA"), envInt(b, "BENCH_PROMOTION", 0)
	if schemaName == "" || promotion == 0 {
		b.Skip("set BENCH_SCHEMA and BENCH_PROMOTION to the run whose ceiling to measure alongside it")
	}
	cfg := benchConfig{procs: 1, workers: envInt(b, "BENCH_WORKERS", 2), chunk: envInt(b, "BENCH_CHUNK", generatorDefaultChunk),
		windows: envInt(b, "BENCH_WINDOWS", 20), out: benchOut(b)}
	ceilingTable = "codes_ceiling_alongside"
	ctx := context.Background()
	dsn := os.Getenv("PROMOCODES_TEST_POSTGRES_DSN")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := pgx.Identifier{schemaName}.Sanitize()
	data := renderRows(b, conn, schema, int64(promotion), cfg.chunk)
	cfg.n = len(data.codes) / data.codeLen
	// The ceiling's table lives in a schema of its own: the pipeline run
	// drops its schema when it ends, which may be before this load ends.
	own := schemaName + "_alongside"
	ownSQL := pgx.Identifier{own}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+ownSQL); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+ownSQL+" CASCADE"); err != nil {
			b.Error(err)
		}
	}()
	load := loadAvg()
	ph := copyCeiling(b, dsn, conn, own, fmt.Sprintf(`CREATE TABLE %s.`+ceilingTable+` (code text COLLATE "C" PRIMARY KEY, promotion_id bigint NOT NULL, used integer NOT NULL DEFAULT 0)`, ownSQL), data, cfg)
	fmt.Printf("ceiling alongside (load at start %s): %s rows in %s = %.0f rows/s; WAL %.0f B/row, %.1f FPI/1k rows, %d checkpoints\ncurve: %s\n",
		load, thousands(uint64(cfg.n)), ph.took.Round(time.Millisecond), rate(cfg.n, ph.took),
		float64(ph.wal.bytes)/float64(cfg.n), 1000*float64(ph.wal.fpi)/float64(cfg.n), ph.wal.checkpoints, fmtRates(ph.windows))
}

type benchConfig struct {
	n, runs, procs, workers, chunk, batch, windows int
	ceilings                                       []string
	out                                            string
}

func (c benchConfig) conns() int { return c.procs * c.workers }

// phase is one load of the rows: the pipeline or a ceiling.
type phase struct {
	name    string
	took    time.Duration
	points  []point   // rows committed over time
	windows []float64 // rows/s per window of n/windows rows
	wal     walStats
}

type point struct {
	t    time.Duration
	rows int64
}

type runResult struct {
	run      int
	load     string // uptime's load averages at the start of the run
	pipeline phase
	ceilings []phase
	tail     time.Duration
	rss      []int64 // generator VmRSS (KiB) at 10%, 50%, 100% of the rows (first process)
	genCPU   float64 // CPU seconds the generator processes used during the pipeline
	machCPU  float64 // CPU seconds the whole machine used (all cores, every process) meanwhile
	hwm      int64   // generator VmHWM (KiB) at the end
}

func (r runResult) ceiling(name string) (phase, bool) {
	for _, c := range r.ceilings {
		if c.name == name {
			return c, true
		}
	}
	return phase{}, false
}

func benchRun(b *testing.B, cfg benchConfig, run int) runResult {
	b.Helper()
	res := runResult{run: run, load: loadAvg()}
	s := newStack(b)
	if o := os.Getenv("BENCH_PGOPTIONS"); o != "" {
		s.dsn = withOptions(s.dsn, o)
		for i, e := range s.env {
			if dsn, ok := strings.CutPrefix(e, "PROMOCODES_DB_DSN="); ok {
				s.env[i] = "PROMOCODES_DB_DSN=" + withOptions(dsn, o)
			}
		}
	}
	s.startBroker()
	if cfg.batch > 0 {
		s.env = append(s.env, fmt.Sprintf("PROMOCODES_API_BATCHCODECOUNT=%d", cfg.batch))
	}
	s.startAPI()
	var gens []*proc
	for p := 0; p < cfg.procs; p++ {
		gens = append(gens, s.startGenerator(fmt.Sprintf("generator-%d", p),
			fmt.Sprintf("PROMOCODES_GENERATOR_WORKERS=%d", cfg.workers),
			fmt.Sprintf("PROMOCODES_GENERATOR_CHUNKSIZE=%d", cfg.chunk),
			fmt.Sprintf("PROMOCODES_DB_MAXCONNS=%d", cfg.workers+2),
			"PROMOCODES_LOG_LEVEL=debug")) // "batch complete" per worker: the tail
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := pgx.Identifier{s.schema}.Sanitize()

	checkpoint(b, conn)
	wal0 := readWAL(b, conn)
	gen0, mach0 := procsCPU(b, gens), machineCPU(b)
	start := time.Now()
	id := s.create(cfg.n)
	pid, _ := strconv.ParseInt(id, 10, 64)
	// Sample the committed progress (= rows in the table) and the
	// generator's memory until the promotion is complete.
	res.rss = make([]int64, 3)
	marks := []int64{int64(cfg.n) / 10, int64(cfg.n) / 2, int64(cfg.n)}
	deadline := start.Add(time.Duration(cfg.n/20_000+300) * time.Second) // ≥ 20,000 codes/s or fail
	var done int64
	var lastRSS time.Time
	for done < int64(cfg.n) {
		if time.Now().After(deadline) {
			b.Fatalf("promotion of %d codes not complete after %s: %d rows", cfg.n, time.Since(start).Round(time.Second), done)
		}
		time.Sleep(50 * time.Millisecond)
		if err := conn.QueryRow(ctx, "SELECT COALESCE(sum(done), 0)::bigint FROM "+schema+".batches WHERE promotion_id = $1", pid).Scan(&done); err != nil {
			b.Fatal(err)
		}
		res.pipeline.points = append(res.pipeline.points, point{time.Since(start), done})
		if time.Since(lastRSS) > time.Second || done == int64(cfg.n) {
			lastRSS = time.Now()
			for i, m := range marks {
				if done >= m && res.rss[i] == 0 {
					res.rss[i] = procStatusKiB(b, gens[0].cmd.Process.Pid, "VmRSS:")
				}
			}
		}
	}
	end := time.Now()
	res.genCPU, res.machCPU = procsCPU(b, gens)-gen0, machineCPU(b)-mach0
	res.pipeline.name = "pipeline"
	res.pipeline.took = end.Sub(start)
	res.pipeline.wal = readWAL(b, conn).minus(wal0)
	res.pipeline.windows = windowRates(res.pipeline.points, int64(cfg.n), cfg.windows)
	res.hwm = procStatusKiB(b, gens[0].cmd.Process.Pid, "VmHWM:")
	res.tail = end.Sub(firstIdle(b, gens, cfg.conns(), start))

	var rows, distinct int64
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT code) FROM "+schema+".codes WHERE promotion_id = $1", pid).Scan(&rows, &distinct); err != nil {
		b.Fatal(err)
	}
	if rows != int64(cfg.n) || distinct != int64(cfg.n) {
		b.Fatalf("%d rows, %d distinct; want exactly %d", rows, distinct, cfg.n)
	}
	fmt.Printf("run %d pipeline: %s codes in %s = %.0f codes/s, exact (%d rows, %d distinct); tail %s; curve %s\n",
		run, thousands(uint64(cfg.n)), res.pipeline.took.Round(time.Millisecond), rate(cfg.n, res.pipeline.took), rows, distinct,
		res.tail.Round(time.Millisecond), fmtRates(res.pipeline.windows))
	// The processes are idle from here on; stop them so that the ceilings
	// have the machine the pipeline had.
	s.stopAll()

	if len(cfg.ceilings) > 0 {
		data := renderRows(b, conn, schema, pid, cfg.chunk)
		for _, c := range cfg.ceilings {
			ddl := map[string]string{
				"unique": `CREATE TABLE %s.` + ceilingTable + ` (code text COLLATE "C" PRIMARY KEY, promotion_id bigint NOT NULL, used integer NOT NULL DEFAULT 0)`,
				"schema": `CREATE TABLE %[1]s.` + ceilingTable + ` (LIKE %[1]s.codes INCLUDING ALL)`,
			}[c]
			if ddl == "" {
				b.Fatalf("BENCH_CEILINGS: unknown ceiling %q (unique, schema, none)", c)
			}
			ph := copyCeiling(b, s.dsn, conn, s.schema, fmt.Sprintf(ddl, schema), data, cfg)
			ph.name = c
			res.ceilings = append(res.ceilings, ph)
		}
	}
	return res
}

// renderedRows are the promotion's codes as the generator derived them:
// per batch, chunks of the chunk size, each in byte order, back to back.
type renderedRows struct {
	pid     int64
	codeLen int
	codes   []byte
	batches [][]int // per batch, the chunk sizes in order
}

func renderRows(b *testing.B, conn *pgx.Conn, schema string, pid int64, chunk int) renderedRows {
	b.Helper()
	ctx := context.Background()
	var formatJSON string
	if err := conn.QueryRow(ctx, "SELECT format FROM "+schema+".promotions WHERE id = $1", pid).Scan(&formatJSON); err != nil {
		b.Fatal(err)
	}
	var f promo.Format
	if err := json.Unmarshal([]byte(formatJSON), &f); err != nil {
		b.Fatal(err)
	}
	eng, err := codes.New(f, []byte(testSecret))
	if err != nil {
		b.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT seq_start, code_count FROM "+schema+".batches WHERE promotion_id = $1 ORDER BY batch_no", pid)
	if err != nil {
		b.Fatal(err)
	}
	type rng struct{ seq, n int64 }
	var ranges []rng
	var total int64
	for rows.Next() {
		var r rng
		if err := rows.Scan(&r.seq, &r.n); err != nil {
			b.Fatal(err)
		}
		ranges = append(ranges, r)
		total += r.n
	}
	if rows.Err() != nil {
		b.Fatal(rows.Err())
	}
	l := eng.Layout().CodeLen()
	out := renderedRows{pid: pid, codeLen: l, codes: make([]byte, 0, total*int64(l))}
	var sorter generator.CodeSorter
	var buf []byte
	for _, r := range ranges {
		var sizes []int
		for from := int64(0); from < r.n; from += int64(chunk) {
			n := int(min(int64(chunk), r.n-from))
			buf = eng.AppendCodes(buf[:0], uint64(r.seq+from), n)
			out.codes = append(out.codes, sorter.Sort(buf, l, n)...)
			sizes = append(sizes, n)
		}
		out.batches = append(out.batches, sizes)
	}
	return out
}

// copyCeiling creates the ceiling table with ddl, binary-COPYs the rows into
// it chunk by chunk (each COPY its own transaction) on cfg.conns()
// connections that take whole batches from one queue (perfect balance: no
// tail), and drops the table again.
func copyCeiling(b *testing.B, dsn string, conn *pgx.Conn, schemaName, ddl string, data renderedRows, cfg benchConfig) phase {
	b.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, ddl); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if _, err := conn.Exec(ctx, "DROP TABLE "+pgx.Identifier{schemaName, ceilingTable}.Sanitize()); err != nil {
			b.Error(err)
		}
	}()
	conns := make([]*pgx.Conn, cfg.conns())
	for i := range conns {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		conns[i] = c
	}
	type job struct {
		off   int // byte offset of the batch's first code
		sizes []int
	}
	jobs := make(chan job, len(data.batches))
	off := 0
	for _, sizes := range data.batches {
		jobs <- job{off, sizes}
		for _, n := range sizes {
			off += n * data.codeLen
		}
	}
	close(jobs)
	var (
		mu     sync.Mutex
		rows   int64
		points []point
		wg     sync.WaitGroup
		errs   = make([]error, len(conns))
	)
	table := pgx.Identifier{schemaName, ceilingTable}
	checkpoint(b, conn)
	wal0 := readWAL(b, conn)
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				o := j.off
				for _, n := range j.sizes {
					src := &copySource{codes: data.codes[o : o+n*data.codeLen], l: data.codeLen, n: n, i: -1}
					src.row = []any{&src.code, data.pid}
					if _, err := c.CopyFrom(ctx, table, []string{"code", "promotion_id"}, src); err != nil {
						errs[i] = err
						return
					}
					o += n * data.codeLen
					mu.Lock()
					rows += int64(n)
					points = append(points, point{time.Since(start), rows})
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return phase{took: took, points: points, windows: windowRates(points, rows, cfg.windows), wal: readWAL(b, conn).minus(wal0)}
}

// copySource feeds a chunk to CopyFrom without allocating per row, as the
// store's own COPY source does.
type copySource struct {
	codes   []byte
	l, n, i int
	code    benchText
	row     []any
}

type benchText struct{ b []byte }

func (v *benchText) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(v.b), Valid: true}, nil
}

func (s *copySource) Next() bool {
	s.i++
	if s.i >= s.n {
		return false
	}
	s.code.b = s.codes[s.i*s.l : (s.i+1)*s.l]
	return true
}
func (s *copySource) Values() ([]any, error) { return s.row, nil }
func (s *copySource) Err() error             { return nil }

// windowRates splits [0, total) rows into k equal windows and returns the
// rate in each, the time a window's bounds were crossed interpolated between
// the two samples around it.
func windowRates(pts []point, total int64, k int) []float64 {
	at := func(rows int64) float64 { // seconds at which rows were reached
		prev := point{}
		for _, p := range pts {
			if p.rows >= rows {
				if p.rows == prev.rows {
					return p.t.Seconds()
				}
				f := float64(rows-prev.rows) / float64(p.rows-prev.rows)
				return prev.t.Seconds() + f*(p.t-prev.t).Seconds()
			}
			prev = p
		}
		return prev.t.Seconds()
	}
	out := make([]float64, k)
	for i := range out {
		lo, hi := total*int64(i)/int64(k), total*int64(i+1)/int64(k)
		if dt := at(hi) - at(lo); dt > 0 {
			out[i] = float64(hi-lo) / dt
		}
	}
	return out
}

// firstIdle reads the generators' logs: the earliest moment at which some
// worker finished its last batch of the run (the "batch complete" debug
// lines carry the worker id).
func firstIdle(b *testing.B, gens []*proc, workers int, since time.Time) time.Time {
	b.Helper()
	last := map[string]time.Time{}
	for _, g := range gens {
		f, err := os.Open(g.log)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l struct {
				Time   string `json:"time"`
				Msg    string `json:"msg"`
				Worker *int   `json:"worker"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "batch complete" || l.Worker == nil {
				continue
			}
			t, err := time.Parse("2006-01-02T15:04:05.000Z0700", l.Time)
			if err != nil || t.Before(since) {
				continue
			}
			key := fmt.Sprintf("%s/%d", g.name, *l.Worker)
			if t.After(last[key]) {
				last[key] = t
			}
		}
		f.Close()
	}
	first := time.Time{}
	for _, t := range last {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	if len(last) < workers || first.IsZero() {
		return since // a worker that completed no batch was idle throughout
	}
	return first
}

// walStats are cluster-wide WAL and checkpoint counters (pg_stat_wal,
// pg_stat_bgwriter): other databases on the server add to them, so they are
// indicative on a shared server.
type walStats struct {
	records, fpi, bytes, checkpoints int64
}

func (a walStats) minus(b walStats) walStats {
	return walStats{a.records - b.records, a.fpi - b.fpi, a.bytes - b.bytes, a.checkpoints - b.checkpoints}
}

func readWAL(b *testing.B, conn *pgx.Conn) walStats {
	b.Helper()
	var w walStats
	if err := conn.QueryRow(context.Background(), `SELECT w.wal_records, w.wal_fpi, w.wal_bytes::bigint,
		c.checkpoints_timed + c.checkpoints_req FROM pg_stat_wal w, pg_stat_bgwriter c`).Scan(&w.records, &w.fpi, &w.bytes, &w.checkpoints); err != nil {
		b.Fatal(err)
	}
	return w
}

// checkpoint starts each phase from the same state: no dirty buffers left
// over from the phase before, the next checkpoint max_wal_size away.
func checkpoint(b *testing.B, conn *pgx.Conn) {
	b.Helper()
	if _, err := conn.Exec(context.Background(), "CHECKPOINT"); err != nil {
		b.Logf("CHECKPOINT: %v (phases start from whatever state the server is in)", err)
	}
}

func procStatusKiB(b testing.TB, pid int, field string) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// withOptions adds a libpq options parameter (server settings) to a URL DSN.
func withOptions(dsn, options string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "options=" + url.QueryEscape(options)
}

// clockTicks is USER_HZ, the unit of /proc CPU times (100 on Linux).
const clockTicks = 100

// procsCPU sums user+system CPU seconds of the processes.
func procsCPU(b *testing.B, ps []*proc) float64 {
	b.Helper()
	var total float64
	for _, p := range ps {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		// Fields after the parenthesised command name: utime and stime are
		// the 12th and 13th.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += (u + st) / clockTicks
	}
	return total
}

// machineCPU is the busy CPU seconds of the whole machine (/proc/stat, all
// cores: everything but idle and iowait).
func machineCPU(b *testing.B) float64 {
	b.Helper()
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	var busy float64
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest time is already in user
			busy += v
		}
	}
	return busy / clockTicks
}

func loadAvg() string {
	out, err := exec.Command("uptime").Output()
	if err != nil {
		return "?"
	}
	s := strings.TrimSpace(string(out))
	if i := strings.Index(s, "load average:"); i >= 0 {
		return strings.TrimSpace(s[i+len("load average:"):])
	}
	return s
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

func (r runResult) print(cfg benchConfig) {
	p := r.pipeline
	fmt.Printf("\n-- run %d (load average at start: %s)\n", r.run, r.load)
	fmt.Printf("%-9s %12s %10s  %8s %8s %10s %11s\n", "phase", "codes/s", "took", "vs uniq", "vs schm", "WAL B/row", "FPI/1k rows")
	line := func(ph phase) {
		ratio := func(name string) string {
			if c, ok := r.ceiling(name); ok {
				return fmt.Sprintf("%.2f", c.took.Seconds()/ph.took.Seconds())
			}
			return "-"
		}
		fmt.Printf("%-9s %12.0f %10s  %8s %8s %10.0f %11.1f\n", ph.name, rate(cfg.n, ph.took), ph.took.Round(time.Millisecond),
			ratio("unique"), ratio("schema"), float64(ph.wal.bytes)/float64(cfg.n), 1000*float64(ph.wal.fpi)/float64(cfg.n))
	}
	line(p)
	for _, c := range r.ceilings {
		line(c)
	}
	fmt.Printf("checkpoints during the phases: pipeline %d", p.wal.checkpoints)
	for _, c := range r.ceilings {
		fmt.Printf(", %s %d", c.name, c.wal.checkpoints)
	}
	fmt.Printf("\ntail (first idle worker → complete): %s = %.1f%% of the total\n", r.tail.Round(time.Millisecond), 100*r.tail.Seconds()/p.took.Seconds())
	fmt.Printf("generator RSS: %.1f MiB at 10%%, %.1f MiB at 50%%, %.1f MiB at 100%% of the rows; peak %.1f MiB\n",
		float64(r.rss[0])/1024, float64(r.rss[1])/1024, float64(r.rss[2])/1024, float64(r.hwm)/1024)
	fmt.Printf("CPU during the pipeline: generator %.1f s (%.2f µs/code), machine %.1f s busy of %.1f s × %d cores\n",
		r.genCPU, 1e6*r.genCPU/float64(cfg.n), r.machCPU, p.took.Seconds(), runtime.NumCPU())
	fmt.Printf("curve (codes/s per %d%% of the rows, against rows already in the table):\n", 100/cfg.windows)
	fmt.Printf("%14s %10s", "rows before", "pipeline")
	for _, c := range r.ceilings {
		fmt.Printf(" %10s %6s", c.name, "ratio")
	}
	fmt.Println()
	for i, w := range p.windows {
		fmt.Printf("%14s %10.0f", thousands(uint64(cfg.n*i/cfg.windows)), w)
		for _, c := range r.ceilings {
			fmt.Printf(" %10.0f %6.2f", c.windows[i], w/c.windows[i])
		}
		fmt.Println()
	}
}

func fmtRates(ws []float64) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprintf("%.0f", w)
	}
	return strings.Join(parts, " ")
}

// minWindowRatio is the lowest pipeline/ceiling window ratio after the first
// 10% of the rows.
func (r runResult) minWindowRatio(cfg benchConfig, name string) float64 {
	c, ok := r.ceiling(name)
	if !ok {
		return 0
	}
	m := 0.0
	for i := cfg.windows / 10; i < cfg.windows; i++ {
		if v := r.pipeline.windows[i] / c.windows[i]; m == 0 || v < m {
			m = v
		}
	}
	return m
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(b *testing.B, cfg benchConfig, rs []runResult) {
	col := func(f func(runResult) float64) (vals []float64, med float64) {
		for _, r := range rs {
			vals = append(vals, f(r))
		}
		return vals, median(vals)
	}
	show := func(label, format string, f func(runResult) float64) float64 {
		vals, med := col(f)
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = fmt.Sprintf(format, v)
		}
		fmt.Printf("%-44s median "+format+"   runs: %s\n", label, med, strings.Join(parts, " "))
		return med
	}
	fmt.Printf("\n== summary: %s codes, %d×%d, %d run(s)\n", thousands(uint64(cfg.n)), cfg.procs, cfg.workers, len(rs))
	med := show("pipeline codes/s", "%.0f", func(r runResult) float64 { return rate(cfg.n, r.pipeline.took) })
	b.ReportMetric(med, "codes/s")
	for _, name := range cfg.ceilings {
		show(name+" ceiling rows/s", "%.0f", func(r runResult) float64 { c, _ := r.ceiling(name); return rate(cfg.n, c.took) })
		m := show("ratio to the "+name+" ceiling", "%.2f", func(r runResult) float64 {
			c, _ := r.ceiling(name)
			return c.took.Seconds() / r.pipeline.took.Seconds()
		})
		b.ReportMetric(m, "ratio-"+name)
		show("lowest window ratio after 10% ("+name+")", "%.2f", func(r runResult) float64 { return r.minWindowRatio(cfg, name) })
	}
	t := show("tail, % of the total time", "%.1f", func(r runResult) float64 { return 100 * r.tail.Seconds() / r.pipeline.took.Seconds() })
	b.ReportMetric(t, "tail-%")
	show("generator CPU, % of the machine's busy CPU", "%.1f", func(r runResult) float64 { return 100 * r.genCPU / r.machCPU })
	show("generator RSS at 10% / 100% of the rows", "%.2f", func(r runResult) float64 { return float64(r.rss[2]) / float64(r.rss[0]) })
	fmt.Println()
}

// benchOut is BENCH_OUT, a relative path taken from the module root (where
// `make bench` runs), not from this package's directory (where go test
// runs the benchmark): BENCH_OUT=docs/perf/10m lands in docs/perf/10m.
func benchOut(b *testing.B) string {
	out := os.Getenv("BENCH_OUT")
	if out == "" || filepath.IsAbs(out) {
		return out
	}
	dir, err := os.Getwd()
	if err != nil {
		b.Fatalf("BENCH_OUT: %v", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, out)
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, out)
		}
	}
}

// writeCurve writes the first run's curve to BENCH_OUT/curve.csv (and the
// plot next to it).
func (r runResult) writeCurve(b *testing.B, cfg benchConfig) {
	b.Helper()
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString("rows_before,pipeline")
	for _, c := range r.ceilings {
		sb.WriteString("," + c.name)
	}
	sb.WriteString("\n")
	for i, w := range r.pipeline.windows {
		fmt.Fprintf(&sb, "%d,%.0f", cfg.n*i/cfg.windows, w)
		for _, c := range r.ceilings {
			fmt.Fprintf(&sb, ",%.0f", c.windows[i])
		}
		sb.WriteString("\n")
	}
	if err := os.WriteFile(cfg.out+"/curve.csv", []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	plotCurve(b, cfg, r)
}
