//go:build integration

package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
)

// runFor runs the binary with env for at most d, or until its output holds
// until (when not empty), and returns its output.
func runFor(t *testing.T, d time.Duration, until string, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return out.String()
		case <-tick.C:
			if until != "" && strings.Contains(out.String(), until) {
				cancel()
				<-done
				return out.String()
			}
		}
	}
}

// cleanEnv is the environment without PROMOCODES_* settings of the caller.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PROMOCODES_") {
			env = append(env, kv)
		}
	}
	return env
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A missing broker used to surface after 97 s as "[8] Broker Not
// Available"; each deployable demanded config it never uses (the generator
// admin tokens, the shovel a code secret and a DSN). Now: "cannot reach
// host:port" within seconds, and each asks only for what it uses.
func TestStartupMissingBrokerAndOnlyNeededConfig(t *testing.T) {
	broker := freePort(t) // nothing listens there
	base := []string{"PROMOCODES_ENV=production", "PROMOCODES_KAFKA_BROKERS=" + broker, "PROMOCODES_HTTP_ADDR=127.0.0.1:0"}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"generator without admin tokens", []string{"PROMOCODES_DB_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
			"PROMOCODES_CODES_SECRET=" + testSecret}, []string{"generator"}},
		{"shovel without secret and DSN", nil, []string{"shovel"}},
		{"shovel --once without secret and DSN", nil, []string{"shovel", "--once"}},
		{"topics inspect", nil, []string{"topics", "inspect", "promotion-code-batches-dead"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			want := "cannot reach " + broker
			out := runFor(t, 6*time.Second, want, append(append([]string{}, base...), tc.env...), tc.args...)
			if !strings.Contains(out, want) || time.Since(start) > 5*time.Second {
				t.Fatalf("within %s the output lacks %q:\n%s", time.Since(start).Round(time.Millisecond), want, out)
			}
			for _, unwanted := range []string{"auth.adminTokens", "codes.secret", "db.dsn", "invalid configuration"} {
				if strings.Contains(out, unwanted) {
					t.Errorf("%s asks for %s it does not use:\n%s", tc.name, unwanted, out)
				}
			}
		})
	}
}

// A startup error is reported once, without a Go stack trace.
func TestStartupErrorOnceWithoutStackTrace(t *testing.T) {
	out := runFor(t, 30*time.Second, "", []string{"PROMOCODES_ENV=production",
		"PROMOCODES_DB_DSN=postgres://postgres@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=2"}, "migrate")
	if n := strings.Count(out, "connection refused"); n != 1 {
		t.Errorf("the error appears %d times, want once:\n%s", n, out)
	}
	for _, trace := range []string{"stacktrace", "goroutine ", ".go:", "\tgithub.com/"} {
		if strings.Contains(strings.ReplaceAll(out, `"caller":"`, ""), trace) && trace != ".go:" {
			t.Errorf("output has a stack trace (%q):\n%s", trace, out)
		}
	}
	if strings.Contains(out, "main.main") || strings.Contains(out, "runtime/") {
		t.Errorf("output has a stack trace:\n%s", out)
	}
}

// The API reported ready against an unmigrated database and then answered
// 500 (relation "counters" does not exist): now /readyz is 503 and says
// what to do, until `promocodes migrate` ran.
func TestReadyzUntilMigrated(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	schema := postgrestest.Schema(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	sep := "?"
	if strings.Contains(s.dsn, "?") {
		sep = "&"
	}
	dsnEnv := "PROMOCODES_DB_DSN=" + s.dsn + sep + "search_path=" + schema
	addr := freePort(t)
	s.start("api-unmigrated", []string{"PROMOCODES_HTTP_ADDR=" + addr, dsnEnv}, "api")
	url := "http://" + addr + "/readyz"
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("/readyz is 200 on an unmigrated database: %s", body)
			}
			if strings.Contains(body, "run promocodes migrate") {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(body, `"schema":"schema not migrated: run promocodes migrate"`) {
		t.Fatalf("/readyz on an unmigrated database = %q, want it to say run promocodes migrate", body)
	}
	cmd := exec.Command(binary, "migrate")
	cmd.Env = append(append(append([]string{}, os.Environ()...), s.env...), dsnEnv)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	waitHTTP(t, url, 30*time.Second)
}
