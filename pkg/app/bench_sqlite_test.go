//go:build integration

package app

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/generator"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
)

// BenchmarkSQLiteVsBulkLoad (make bench, SQLite section) generates one
// promotion in process on the embedded defaults (kfake broker, SQLite file,
// API, generator with its default workers) and then loads the same rows —
// same order, same chunk size, one transaction per chunk — into a fresh
// SQLite file on the store's writer settings with SQLite's plainest bulk
// path: prepared multi-row INSERTs of 500 rows on one connection, into a
// WITHOUT ROWID table with only the code key ("unique"), and into a copy of
// the project's codes table ("schema"). BENCH_CODES (default 1,000,000) and
// BENCH_RUNS (default 3) as for PostgreSQL; medians are printed.
func BenchmarkSQLiteVsBulkLoad(b *testing.B) {
	if b.N > 1 {
		b.Skip("run with -benchtime=1x: one promotion per run is the unit")
	}
	n := benchEnvInt(b, "BENCH_CODES", 1_000_000)
	runs := benchEnvInt(b, "BENCH_RUNS", 3)
	fmt.Printf("\n== SQLite: %d codes in process, %d run(s)\n", n, runs)
	var pipe, uniq, schema []float64
	for r := 1; r <= runs; r++ {
		load := loadAvg()
		p, u, s := sqliteRun(b, n)
		pipe, uniq, schema = append(pipe, p), append(uniq, u), append(schema, s)
		fmt.Printf("run %d (load %s): pipeline %.0f codes/s; bulk load unique-only %.0f rows/s (ratio %.2f), schema %.0f rows/s (ratio %.2f)\n",
			r, load, p, u, p/u, s, p/s)
	}
	ratio := func(a, c []float64) []float64 {
		out := make([]float64, len(a))
		for i := range a {
			out[i] = a[i] / c[i]
		}
		return out
	}
	fmt.Printf("SQLite medians: pipeline %.0f codes/s, unique-only %.0f rows/s, schema %.0f rows/s; ratio to unique-only %.2f, to schema %.2f\n\n",
		benchMedian(pipe), benchMedian(uniq), benchMedian(schema), benchMedian(ratio(pipe, uniq)), benchMedian(ratio(pipe, schema)))
	b.ReportMetric(benchMedian(pipe), "codes/s")
	b.ReportMetric(benchMedian(ratio(pipe, uniq)), "ratio-unique")
	b.ReportMetric(benchMedian(ratio(pipe, schema)), "ratio-schema")
}

const benchSecret = "in-process-bench-secret-0123456789abcdef"

func sqliteRun(b *testing.B, n int) (pipeline, unique, schema float64) {
	b.Helper()
	cfg := Defaults()
	cfg.Env = "dev"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = []string{"127.0.0.1:0"}
	cfg.Kafka.Partitions = 4
	cfg.DB = DBConfig{Driver: "sqlite", MaxConns: 4}
	cfg.Codes.Secret = benchSecret
	cfg.Dev.DataDir = b.TempDir()
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := StartDev(ctx, cfg, zap.NewNop())
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	url := "http://" + p.HTTPAddr
	format := promo.Format{Charset: "alnum", Length: 10}
	fj, _ := json.Marshal(format)
	start := time.Now()
	resp, err := http.Post(url+"/v1/promotions", "application/json", strings.NewReader(fmt.Sprintf(
		`{"name":"bench","codeCount":%d,"format":%s}`, n, fj)))
	if err != nil {
		b.Fatal(err)
	}
	var created struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Fatalf("create: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(time.Duration(n/5_000+120) * time.Second)
	for {
		resp, err := http.Get(url + "/v1/promotions/" + created.ID)
		if err != nil {
			b.Fatal(err)
		}
		var st struct {
			Status         string
			GeneratedCount int64
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if st.Status == "completed" && st.GeneratedCount == int64(n) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("not completed in time: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pipeline = float64(n) / time.Since(start).Seconds()
	cancel()
	if err := p.Wait(); err != nil {
		b.Fatal(err)
	}

	// The rows as the generator derived them.
	db, err := sql.Open("sqlite", filepath.Join(cfg.Dev.DataDir, "promocodes.db")+"?_pragma=query_only(1)")
	if err != nil {
		b.Fatal(err)
	}
	var rows, distinct int64
	pid, _ := strconv.ParseInt(created.ID, 10, 64)
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT code) FROM codes WHERE promotion_id = ?`, pid).Scan(&rows, &distinct); err != nil {
		b.Fatal(err)
	}
	if rows != int64(n) || distinct != int64(n) {
		b.Fatalf("%d rows, %d distinct; want %d", rows, distinct, n)
	}
	q, err := db.Query(`SELECT seq_start, code_count FROM batches WHERE promotion_id = ? ORDER BY batch_no`, pid)
	if err != nil {
		b.Fatal(err)
	}
	eng, err := codes.New(format, []byte(benchSecret))
	if err != nil {
		b.Fatal(err)
	}
	l := eng.Layout().CodeLen()
	var chunks [][]string
	var sorter generator.CodeSorter
	var buf []byte
	for q.Next() {
		var seq, cnt int64
		if err := q.Scan(&seq, &cnt); err != nil {
			b.Fatal(err)
		}
		for from := int64(0); from < cnt; from += int64(cfg.Generator.ChunkSize) {
			k := int(min(int64(cfg.Generator.ChunkSize), cnt-from))
			buf = eng.AppendCodes(buf[:0], uint64(seq+from), k)
			all := string(sorter.Sort(buf, l, k))
			c := make([]string, k)
			for i := range c {
				c[i] = all[i*l : (i+1)*l]
			}
			chunks = append(chunks, c)
		}
	}
	if q.Err() != nil {
		b.Fatal(q.Err())
	}
	q.Close()
	db.Close()

	unique = sqliteBulkLoad(b, chunks, pid, `CREATE TABLE codes (code TEXT NOT NULL PRIMARY KEY, promotion_id INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID`)
	ddl := sqliteCodesDDL(b)
	schema = sqliteBulkLoad(b, chunks, pid, ddl...)
	return pipeline, unique, schema
}

// sqliteCodesDDL is the project's current codes table and its indexes, as the
// migrations leave them (read from a migrated file).
func sqliteCodesDDL(b *testing.B) []string {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "schema.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT sql FROM sqlite_master WHERE tbl_name = 'codes' AND sql IS NOT NULL ORDER BY type DESC`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var ddl []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			b.Fatal(err)
		}
		ddl = append(ddl, s)
	}
	return ddl
}

// sqliteBulkLoad loads the chunks into a fresh file created with ddl, on the
// store's writer settings and checkpointer, and returns rows/s.
func sqliteBulkLoad(b *testing.B, chunks [][]string, pid int64, ddl ...string) float64 {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "bulk.db")
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&"+sqlite.WriterParams)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(path)
	defer db.Close()
	db.SetMaxOpenConns(1)
	// The store's checkpointer too (sqlite.StartCheckpoints): the store runs it.
	stopCheckpoints := sqlite.StartCheckpoints(path+"?_pragma=busy_timeout(10000)", sqlite.CheckpointEvery)
	defer stopCheckpoints()
	for _, s := range ddl {
		if _, err := db.Exec(s); err != nil {
			b.Fatalf("%s: %v", s, err)
		}
	}
	const per = 500
	stmt := "INSERT INTO codes (code, promotion_id) VALUES " + strings.TrimSuffix(strings.Repeat("(?,?),", per), ",")
	total := 0
	start := time.Now()
	args := make([]any, 0, 2*per)
	for _, c := range chunks {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		full, err := tx.PrepareContext(ctx, stmt)
		if err != nil {
			b.Fatal(err)
		}
		for rest := c; len(rest) > 0; {
			k := min(len(rest), per)
			args = args[:0]
			for _, code := range rest[:k] {
				args = append(args, code, pid)
			}
			if k == per {
				_, err = full.ExecContext(ctx, args...)
			} else {
				_, err = tx.ExecContext(ctx, "INSERT INTO codes (code, promotion_id) VALUES "+strings.TrimSuffix(strings.Repeat("(?,?),", k), ","), args...)
			}
			if err != nil {
				b.Fatal(err)
			}
			rest = rest[k:]
		}
		full.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		total += len(c)
	}
	return float64(total) / time.Since(start).Seconds()
}

func benchEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func benchMedian(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], ", ")
}
