package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// devTestSecret is devSystem's codes.secret.
const devTestSecret = "in-process-test-secret-0123456789abcdef"

// devSystem starts the whole system in this process on embedded defaults:
// kfake broker with a data dir, SQLite file, API, generators, shovel.
func devSystem(t *testing.T) (url string, stop func()) {
	t.Helper()
	cfg := Defaults()
	cfg.Env = "dev"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = []string{"127.0.0.1:0"}
	cfg.Kafka.Partitions = 4
	cfg.DB = DBConfig{Driver: "sqlite", MaxConns: 4}
	cfg.Codes.Secret = devTestSecret
	cfg.Shovel.Interval = 2 * time.Second
	cfg.Dev.DataDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := StartDev(ctx, cfg, zaptest.NewLogger(t).Named("dev"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		cancel()
		if err := p.Wait(); err != nil {
			t.Errorf("dev stopped with %v", err)
		}
	}
	t.Cleanup(stop)
	return "http://" + p.HTTPAddr, stop
}

func createAndWait(t *testing.T, url string, n int, within time.Duration) string {
	t.Helper()
	return createFormatAndWait(t, url, `{"charset":"alnum","length":10}`, n, within)
}

// createFormatAndWait creates a promotion of n codes of format (JSON) and
// waits until it is completed with exactly n codes.
func createFormatAndWait(t *testing.T, url, format string, n int, within time.Duration) string {
	t.Helper()
	resp, err := http.Post(url+"/v1/promotions", "application/json", strings.NewReader(fmt.Sprintf(
		`{"name":"in-process","codeCount":%d,"format":%s}`, n, format)))
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("create: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url + "/v1/promotions/" + created.ID)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Status         string
			GeneratedCount int64
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if st.Status == "completed" {
			if st.GeneratedCount != int64(n) {
				t.Fatalf("completed with %d codes, want %d", st.GeneratedCount, n)
			}
			return created.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("not completed within %s: %+v", within, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exportDistinct streams the CSV export and counts distinct codes.
func exportDistinct(t *testing.T, url, id string) int {
	t.Helper()
	seen := map[string]struct{}{}
	for _, c := range exportCodes(t, url, id) {
		seen[c] = struct{}{}
	}
	return len(seen)
}

func TestDevInProcessOnSQLiteIsExact(t *testing.T) {
	url, _ := devSystem(t)
	const n = 30_000
	id := createAndWait(t, url, n, 3*time.Minute)
	if got := exportDistinct(t, url, id); got != n {
		t.Fatalf("export has %d distinct codes, want %d", got, n)
	}
}
