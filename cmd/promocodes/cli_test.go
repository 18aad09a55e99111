package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
)

// runCLI runs the root command in process with ctx and returns stdout,
// stderr and what the process would print and exit with.
func runCLI(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// seedPending creates a generated promotion of n codes (one batch) in st,
// as the API does, and returns it and a func that writes its codes the way a
// generator worker does.
func seedPending(t *testing.T, st *sqlite.Store, n int) (promo.Promotion, func()) {
	t.Helper()
	ctx := context.Background()
	eng, err := codes.New(promo.Format{Charset: codes.PresetNumeric, Length: 12}, []byte(devSecret))
	if err != nil {
		t.Fatal(err)
	}
	l := eng.Layout()
	f := l.Format()
	p, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: t.Name(),
		Kind: promo.KindGenerated, CodeCount: int64(n), Format: &f, MaxUsagePerCode: 1, CounterName: l.CounterName()},
		BatchSize: int64(n), SeqLimit: math.MaxInt64})
	if err != nil {
		t.Fatal(err)
	}
	return p, func() {
		bs, err := st.IncompleteBatches(ctx, p.ID)
		if err != nil || len(bs) != 1 {
			t.Errorf("IncompleteBatches = %v, %v", bs, err)
			return
		}
		b := bs[0]
		if _, err := st.CommitChunk(ctx, promo.Chunk{Batch: b.Ref(), Count: n, Codes: eng.AppendCodes(nil, b.SeqStart, n),
			CodeLen: l.CodeLen(), CounterName: p.CounterName, Replace: eng.AppendCode}); err != nil {
			t.Errorf("CommitChunk: %v", err)
		}
	}
}

// TestPromotionsStatusWait: `promotions topup --help` recommends `promotions
// status --wait`, which exists: it follows a pending promotion until it
// completes (exit 0, the final status line), and ends with exit 1 for a
// promotion whose generation was cancelled instead of waiting forever.
func TestPromotionsStatusWait(t *testing.T) {
	ctx := context.Background()
	help, _, err := runCLI(ctx, "promotions", "topup", "--help")
	if err != nil || !strings.Contains(help, "promotions status --wait") {
		t.Fatalf("topup --help: %v\n%s", err, help)
	}
	url, st := apiServerStore(t)

	p, generate := seedPending(t, st, 40)
	go func() {
		time.Sleep(300 * time.Millisecond)
		generate()
	}()
	out, errOut, err := runCLI(ctx, "promotions", "status", p.IDString(), "--wait", "--poll-interval", "50ms", "--api-url", url)
	if err != nil || !strings.Contains(out, "completed 40 / 40 codes") {
		t.Fatalf("status --wait: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}

	p2, _ := seedPending(t, st, 40)
	go func() {
		time.Sleep(300 * time.Millisecond)
		if _, _, err := runCLI(ctx, "promotions", "cancel", p2.IDString(), "--api-url", url); err != nil {
			t.Errorf("cancel: %v", err)
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		out, errOut, err = runCLI(ctx, "promotions", "status", p2.IDString(), "--wait", "--poll-interval", "50ms", "--api-url", url)
	}()
	select {
	case <-done:
	case <-timeAfter(t, 30):
		t.Fatal("status --wait on a cancelled promotion did not end within 30 s")
	}
	if _, code := exitStatus(err); err == nil || code != 1 || !strings.Contains(out, "cancelled 0 / 40 codes") {
		t.Errorf("status --wait on a cancelled promotion: exit %d (%v)\nstdout: %s\nstderr: %s", code, err, out, errOut)
	}
}

// TestToolsTakeNoHTTPAddr: the commands that serve nothing list no
// --http-addr, and every one of them (purge too) takes --config and
// --data-dir; the services keep --http-addr.
func TestToolsTakeNoHTTPAddr(t *testing.T) {
	root := newRootCmd()
	tools := [][]string{{"topics", "inspect"}, {"topics", "replay"}, {"reconcile"}, {"migrate"}, {"purge"}}
	for _, path := range tools {
		cmd, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Flags().Lookup("http-addr") != nil {
			t.Errorf("%s lists --http-addr, which it does not use", cmd.CommandPath())
		}
		for _, f := range []string{"config", "data-dir"} {
			if cmd.Flags().Lookup(f) == nil {
				t.Errorf("%s has no --%s", cmd.CommandPath(), f)
			}
		}
	}
	for _, name := range []string{"dev", "api", "generator", "shovel"} {
		cmd, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Flags().Lookup("http-addr") == nil {
			t.Errorf("%s has no --http-addr", name)
		}
	}
}

// TestPurgeTakesConfig: `purge --config FILE` reads the database from the
// file, like every SRE command (it was an unknown flag).
func TestPurgeTakesConfig(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "p.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ended := time.Now().Add(-72 * time.Hour)
	old, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "old", Kind: promo.KindVanity,
		CodeCount: 1, VanityCode: "PURGECONFIG1", MaxUsagePerCode: 1, ExpiresAt: &ended}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "purge.yaml")
	if err := os.WriteFile(cfg, []byte("env: dev\ndb:\n  driver: sqlite\n  dsn: "+db+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCLI(ctx, "purge", "--config", cfg, "--ended-more-than", "24h", "--dry-run")
	if err != nil || !strings.Contains(out, "promotion "+old.IDString()+": would purge (dry run) 1 codes") {
		t.Errorf("purge --config: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
}

// TestCLIRefusalsSpeakCLI: refusals name the CLI's own commands and flags,
// not the HTTP API's, and every error line starts with "error:".
func TestCLIRefusalsSpeakCLI(t *testing.T) {
	ctx := context.Background()
	url, st := apiServerStore(t)

	// Cancel of a promotion whose generation ended: the command that stops
	// its codes is `promotions update --active=false`, not a PATCH body.
	done, generate := seedPending(t, st, 10)
	generate()
	_, _, err := runCLI(ctx, "promotions", "cancel", done.IDString(), "--api-url", url)
	msg, code := exitStatus(err)
	if code != 1 || !strings.HasPrefix(msg, "error: ") || !strings.Contains(msg, "nothing to cancel") ||
		!strings.Contains(msg, "promocodes promotions update "+done.IDString()+" --active=false") ||
		strings.Contains(msg, "PATCH") || strings.Contains(msg, `"active"`) {
		t.Errorf("cancel of a completed promotion: exit %d: %s", code, msg)
	}

	// Export of a cancelled promotion: it will never complete; the flag is
	// the CLI's --partial, not the API's ?partial=true.
	cancelled, _ := seedPending(t, st, 10)
	if _, _, err := runCLI(ctx, "promotions", "cancel", cancelled.IDString(), "--api-url", url); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	file := filepath.Join(t.TempDir(), "x.csv")
	_, _, err = runCLI(ctx, "promotions", "export", cancelled.IDString(), "-o", file, "--api-url", url)
	msg, code = exitStatus(err)
	if code != 1 || !strings.HasPrefix(msg, "error: ") || !strings.Contains(msg, "is cancelled") ||
		!strings.Contains(msg, "will not complete") || !strings.Contains(msg, "--partial") ||
		strings.Contains(msg, "?partial=true") || strings.Contains(msg, "once it is completed") {
		t.Errorf("export of a cancelled promotion: exit %d: %s", code, msg)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s written by a refused export (%v)", file, err)
	}

	// codes lookup: a refusal and an unreachable API both say "error:".
	for _, args := range [][]string{{"codes", "lookup", "NOSUCHCODE1", "--api-url", url},
		{"codes", "lookup", "NOSUCHCODE1", "--api-url", "http://127.0.0.1:1"}} {
		_, _, err := runCLI(ctx, args...)
		if msg, code := exitStatus(err); code != 1 || !strings.HasPrefix(msg, "error: ") {
			t.Errorf("%v: exit %d: %q, want exit 1 and an error: line", args, code, msg)
		}
	}
}

// TestUpdateActiveFlag: `update --help` shows no "(default true)" for
// --active (only a given --active changes anything), and --active alone
// switches a promotion back on.
func TestUpdateActiveFlag(t *testing.T) {
	ctx := context.Background()
	help, _, err := runCLI(ctx, "promotions", "update", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(help, "\n") {
		if strings.Contains(l, "--active ") && strings.Contains(l, "default") {
			t.Errorf("update --help shows a default for --active: %q", l)
		}
	}
	url, st := apiServerStore(t)
	p, generate := seedPending(t, st, 10)
	generate()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--active=false"}, "active false"},
		{[]string{"--name", "renamed"}, "active false"}, // no --active: unchanged
		{[]string{"--active"}, "active true"},
	} {
		out, _, err := runCLI(ctx, append([]string{"promotions", "update", p.IDString(), "--api-url", url}, c.args...)...)
		if err != nil || !strings.Contains(out, c.want) {
			t.Errorf("update %v: %q, %v; want %q", c.args, out, err, c.want)
		}
	}
}

// TestMigrateSaysWhatItApplied: the first run lists every migration it
// applied and the version; the second says there was nothing to apply
// (SQLite, and PostgreSQL in a schema of its own).
func TestMigrateSaysWhatItApplied(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			files, err := filepath.Glob(filepath.Join("..", "..", "pkg", "store", driver, "migrations", "*.sql"))
			if err != nil || len(files) == 0 {
				t.Fatalf("migration files: %v, %v", files, err)
			}
			dsn := filepath.Join(t.TempDir(), "m.db")
			if driver == "postgres" {
				dsn = postgresSchemaDSN(t)
			}
			t.Setenv("PROMOCODES_DB_DRIVER", driver)
			t.Setenv("PROMOCODES_DB_DSN", dsn)
			t.Setenv("PROMOCODES_LOG_LEVEL", "warn")
			n := strconv.Itoa(len(files))
			last := filepath.Base(files[len(files)-1])
			version, err := strconv.Atoi(strings.SplitN(last, "_", 2)[0]) // versions may skip a number
			if err != nil {
				t.Fatal(err)
			}
			v := strconv.Itoa(version)
			out, _, err := runCLI(ctx, "migrate")
			if err != nil {
				t.Fatal(err)
			}
			want := "applied " + n + " migrations (" + filepath.Base(files[0])
			if !strings.Contains(out, want) || !strings.Contains(out, last) || !strings.Contains(out, driver+" schema is at version "+v) {
				t.Errorf("first migrate: %q; want %q ... %s ... version %s", out, want, last, v)
			}
			out, _, err = runCLI(ctx, "migrate")
			if err != nil || !strings.Contains(out, "nothing to apply") || !strings.Contains(out, "at version "+v) {
				t.Errorf("second migrate: %q, %v", out, err)
			}
		})
	}
}

// postgresSchemaDSN is the test server's DSN pointed at a new, empty schema
// of this test (dropped after it); it skips, saying why, without a server.
func postgresSchemaDSN(t *testing.T) string {
	t.Helper()
	dsn, schema := postgrestest.DSN(t), postgrestest.Schema(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}
