package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/promotion"
	"github.com/promocodes/promocodes/redemption"
)

// apiServer is a Promotion API (with redemption and the lifecycle
// endpoints) on SQLite without any generator: promotions stay pending.
func apiServer(t *testing.T) string {
	t.Helper()
	url, _ := apiServerStore(t)
	return url
}

// apiServerStore is apiServer and its store.
func apiServerStore(t *testing.T) (string, *sqlite.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "p.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	svc, err := redemption.New(redemption.Config{GuessLimit: -1}, st, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	ps, err := promotion.New(promotion.Config{BatchCodeCount: 100, Secret: []byte(devSecret)}, st, svc, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.New(api.Config{Open: true}, st, ps, nil, zaptest.NewLogger(t),
		api.WithRedemption(svc))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL, st
}

// Exporting a promotion that is still generating wrote a partial file and
// exited 0: now it is refused, nothing is written, and the CLI says how to
// get a partial export.
func TestPromotionsExportRefusesUnfinished(t *testing.T) {
	url := apiServer(t)
	out, _, err := runCodes(t, "promotions", "create", "--api-url", url, "--name", "winter", "--count", "300")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("create: %q, %v", out, err)
	}
	file := filepath.Join(t.TempDir(), "winter.csv")
	_, _, err = runCodes(t, "promotions", "export", "1", "-o", file, "--api-url", url)
	var ex *exitError
	if !errors.As(err, &ex) || ex.code != 1 {
		t.Fatalf("export of a pending promotion: %v, want exit 1", err)
	}
	for _, want := range []string{"pending", "--partial", "promocodes promotions status 1", "nothing was written"} {
		if !strings.Contains(ex.msg, want) {
			t.Errorf("message %q lacks %q", ex.msg, want)
		}
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists after a refused export (%v)", file, err)
	}
	if _, err := os.Stat(file + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.tmp left behind (%v)", file, err)
	}

	_, errOut, err := runCodes(t, "promotions", "export", "1", "-o", file, "--partial", "--api-url", url)
	if err != nil {
		t.Fatalf("export --partial: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "code\n" {
		t.Errorf("partial export wrote %q, want the header row", b)
	}
	if !strings.Contains(errOut, "partial export") {
		t.Errorf("stderr %q does not say the export is partial", errOut)
	}
}

// `create --wait` with no generator running used to wait silently forever:
// after --stall-warning without progress it says that no generator seems to
// be consuming, and how to check.
func TestPromotionsWaitSaysNoGenerator(t *testing.T) {
	url := apiServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCmd()
	var out strings.Builder
	stderr := &notifyWriter{fn: func(s string) {
		if strings.Contains(s, "no generator seems to be consuming") {
			cancel() // seen: stop waiting
		}
	}, b: &out}
	root.SetOut(&strings.Builder{})
	root.SetErr(stderr)
	root.SetArgs([]string{"promotions", "create", "--api-url", url, "--name", "stuck", "--count", "100", "--wait",
		"--poll-interval", "50ms", "--stall-warning", "300ms"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	select {
	case err := <-done:
		var ex *exitError
		if !errors.As(err, &ex) || ex.code != 130 {
			t.Errorf("wait ended with %v, want the Ctrl-C exit after the warning", err)
		}
	case <-timeAfter(t, 20):
		t.Fatalf("no stall warning within 20s; stderr:\n%s", stderr.String())
	}
	msg := stderr.String()
	for _, want := range []string{"no progress for", "0 / 100 codes", "no generator seems to be consuming",
		"promocodes generator", "consumer group", "Still waiting"} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr lacks %q:\n%s", want, msg)
		}
	}
}

// notifyWriter collects writes and shows each to fn.
type notifyWriter struct {
	mu sync.Mutex
	b  *strings.Builder
	fn func(string)
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.b.Write(p)
	s := w.b.String()
	w.mu.Unlock()
	w.fn(s)
	return len(p), nil
}

func timeAfter(t *testing.T, seconds int) <-chan time.Time {
	t.Helper()
	return time.After(time.Duration(seconds) * time.Second)
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
