//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkGenerationVsCopyCeiling (make bench) generates a 2,000,000-code
// promotion end to end — API, embedded broker, one generator process with
// two workers, PostgreSQL — and, in the same run, measures the database's
// own bulk-load ceiling: binary COPY of the same rows into an empty copy of
// the codes table (same indexes) on two connections. It reports both rates,
// their ratio, and the generator's peak RSS after a 200,000-code promotion
// and after the 2,000,000-code one (bounded memory: the second is not
// larger).
func BenchmarkGenerationVsCopyCeiling(b *testing.B) {
	if b.N > 1 {
		b.Skip("run with -benchtime=1x: one 2,000,000-code promotion is the unit")
	}
	s := newStack(b)
	s.startBroker()
	s.startAPI()
	gen := s.startGenerator("generator", "PROMOCODES_GENERATOR_WORKERS=2")

	warm := s.create(200_000)
	s.waitCompleted(warm, 2*time.Minute)
	rssSmall := peakRSS(b, gen.cmd.Process.Pid)

	const n = 2_000_000
	start := time.Now()
	id := s.create(n)
	deadline := time.Now().Add(5 * time.Minute)
	for s.status(id).Status != "completed" {
		if time.Now().After(deadline) {
			b.Fatal("2,000,000-code promotion did not complete in 5 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	rssLarge := peakRSS(b, gen.cmd.Process.Pid)
	if rows, distinct := s.rowCount(id); rows != n || distinct != n {
		b.Fatalf("%d rows, %d distinct; want %d", rows, distinct, n)
	}
	rate := float64(n) / took.Seconds()

	ceiling := copyCeiling(b, s, id)
	b.ReportMetric(rate, "codes/s")
	b.ReportMetric(ceiling, "ceiling-rows/s")
	b.ReportMetric(rate/ceiling, "ratio")
	b.ReportMetric(float64(rssLarge)/1024, "gen-peak-RSS-MiB")
	fmt.Printf("\nend-to-end: %d codes in %s = %.0f codes/s (API → Kafka → 1 generator process, 2 workers → PostgreSQL)\n",
		n, took.Round(time.Millisecond), rate)
	fmt.Printf("ceiling:    binary COPY of the same %d rows into an empty copy of codes on 2 connections = %.0f rows/s\n", n, ceiling)
	fmt.Printf("ratio:      %.2f of the ceiling\n", rate/ceiling)
	fmt.Printf("generator peak RSS: %.1f MiB after 200,000 codes, %.1f MiB after 2,000,000 codes\n\n",
		float64(rssSmall)/1024, float64(rssLarge)/1024)
}

// peakRSS reads VmHWM (peak resident set, KiB) of a process.
func peakRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	tb.Fatal("no VmHWM in /proc status")
	return 0
}

// copyCeiling copies the promotion's rows into an empty copy of the codes
// table (LIKE ... INCLUDING ALL: same primary key and indexes) with binary
// COPY on two connections at once, and returns rows/s.
func copyCeiling(tb testing.TB, s *stack, id string) float64 {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := pgx.Identifier{s.schema}.Sanitize()
	pid, _ := strconv.ParseInt(id, 10, 64)
	rows, err := conn.Query(ctx, "SELECT code, promotion_id FROM "+schema+".codes WHERE promotion_id = $1", pid)
	if err != nil {
		tb.Fatal(err)
	}
	var data [][]any
	for rows.Next() {
		var code string
		var p int64
		if err := rows.Scan(&code, &p); err != nil {
			tb.Fatal(err)
		}
		data = append(data, []any{code, p})
	}
	if rows.Err() != nil {
		tb.Fatal(rows.Err())
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE "+schema+".codes_ceiling (LIKE "+schema+".codes INCLUDING ALL)"); err != nil {
		tb.Fatal(err)
	}
	half := len(data) / 2
	parts := [][][]any{data[:half], data[half:]}
	conns := make([]*pgx.Conn, 2)
	for i := range conns {
		if conns[i], err = pgx.Connect(ctx, s.dsn); err != nil {
			tb.Fatal(err)
		}
		defer conns[i].Close(ctx)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = conns[i].CopyFrom(ctx, pgx.Identifier{s.schema, "codes_ceiling"},
				[]string{"code", "promotion_id"}, pgx.CopyFromRows(parts[i]))
		}(i)
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return float64(len(data)) / took.Seconds()
}
