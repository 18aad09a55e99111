package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/promotion"
)

// slowExportStore holds each export inside its database cursor (so on a
// pool connection) until release is closed, like a client that reads slowly.
type slowExportStore struct {
	*postgres.Store
	inside  chan struct{}
	release chan struct{}
}

func (s *slowExportStore) ExportCodes(ctx context.Context, id int64, fn func(string) error) error {
	return s.Store.ExportCodes(ctx, id, func(code string) error {
		s.inside <- struct{}{}
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return fn(code)
	})
}

// Slow exports used to take every pool connection, and creates and status
// reads then hung without a deadline. Now exports take at most MaxExports
// connections (more wait briefly, then 503 with Retry-After), creates and
// status reads keep answering, and a request whose database is stuck
// answers 503 within DBTimeout.
func TestExportsDoNotStarveCreateAndStatus(t *testing.T) {
	ctx := context.Background()
	st, err := postgres.Open(ctx, postgres.Config{DSN: postgrestest.DSN(t), Schema: postgrestest.Schema(t), MaxConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	slow := &slowExportStore{Store: st, inside: make(chan struct{}, 10), release: make(chan struct{})}
	srv := func(cfg api.Config) *httptest.Server {
		cfg.Open = true
		ps, err := promotion.New(promotion.Config{Secret: testSecret}, slow, nil, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		s, err := api.New(cfg, slow, ps, nil, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s)
		t.Cleanup(ts.Close)
		return ts
	}
	ts := srv(api.Config{MaxExports: 1, ExportQueueWait: 200 * time.Millisecond, DBTimeout: 2 * time.Second})
	do := func(method, path, body string) (int, string, http.Header) {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	// A vanity promotion is complete at once: one code to export.
	if code, body, _ := do("POST", "/v1/promotions", `{"name":"m","code":"MEGADETH21"}`); code != http.StatusCreated {
		t.Fatalf("create vanity: %d %s", code, body)
	}

	const exports = 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range exports {
		wg.Go(func() {
			code, _, h := do("GET", "/v1/promotions/1/codes", "")
			mu.Lock()
			statuses[code]++
			mu.Unlock()
			if code == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		})
	}
	<-slow.inside // one export holds a connection
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	for i := range 3 {
		code, body, _ := do("POST", "/v1/promotions", fmt.Sprintf(`{"name":"n%d","codeCount":10,"format":{"charset":"alnum","length":10}}`, i))
		if code != http.StatusAccepted {
			t.Errorf("create during slow exports: %d %s", code, body)
		}
		if code, body, _ := do("GET", "/v1/promotions/1", ""); code != http.StatusOK {
			t.Errorf("status during slow exports: %d %s", code, body)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("3 creates and 3 status reads took %s during slow exports", took)
	}
	close(slow.release)
	wg.Wait()
	if statuses[http.StatusOK] < 1 || statuses[http.StatusOK]+statuses[http.StatusServiceUnavailable] != exports {
		t.Errorf("export answers %v, want at least one 200 and the rest 503", statuses)
	}
	t.Logf("export answers with 1 slot: %v", statuses)

	// Without the slot limit the pool is exhausted: then the deadline
	// answers 503 within DBTimeout instead of hanging.
	slow.release = make(chan struct{})
	ts = srv(api.Config{MaxExports: 10, DBTimeout: 500 * time.Millisecond})
	for range 3 {
		wg.Go(func() { do("GET", "/v1/promotions/1/codes", "") })
	}
	for range 3 {
		<-slow.inside
	}
	start = time.Now()
	code, body, h := do("GET", "/v1/promotions/1", "")
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || time.Since(start) > 3*time.Second {
		t.Errorf("status with the pool exhausted: %d %s after %s, want 503 with Retry-After within the 500ms deadline",
			code, body, time.Since(start))
	}
	close(slow.release)
	wg.Wait()
}
