package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/promotion"
	"github.com/promocodes/promocodes/redemption"
)

// TestLifecycleCommands drives `codes revoke`, `promotions update` and
// `promotions audit` against the real API on a SQLite file.
func TestLifecycleCommands(t *testing.T) {
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "p.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	svc, err := redemption.New(redemption.Config{GuessLimit: -1}, st, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	const token = "cli-admin-token-0123456789"
	ps, err := promotion.New(promotion.Config{Secret: []byte("cli-test-secret-0123456789abcdefghij")}, st, svc, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{AdminTokens: []string{token},
		RedeemTokens: []string{"cli-redeem-token-0123456789"}}, st, ps, nil, zap.NewNop(), api.WithRedemption(svc))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	p, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "cli", Kind: promo.KindVanity,
		CodeCount: 1, VanityCode: "CLIREVOKE1", MaxUsagePerCode: 10, PerUserLimit: 1}})
	if err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		root := newRootCmd()
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(append(args, "--api-url", hs.URL, "--token", token))
		err := root.ExecuteContext(ctx)
		return out.String() + errOut.String(), err
	}
	id := p.IDString()
	if out, err := run("promotions", "update", id, "--active=false", "--name", "renamed"); err != nil ||
		!strings.Contains(out, `"renamed": active false`) {
		t.Fatalf("promotions update: %q, %v", out, err)
	}
	if st, _ := st.CodeState(ctx, "CLIREVOKE1", ""); st.Active {
		t.Errorf("the promotion is still active after update --active=false")
	}
	if out, err := run("promotions", "update", id, "--expires-at", "soon"); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("a bad time: %q, %v", out, err)
	}
	if out, err := run("codes", "revoke", "clirevoke1", "--reason", "leaked"); err != nil ||
		!strings.Contains(out, "CLIREVOKE1 revoked") {
		t.Fatalf("codes revoke: %q, %v", out, err)
	}
	if out, err := run("codes", "revoke", "CLIREVOKE1", "--reason", "again"); err != nil || !strings.Contains(out, "already revoked") {
		t.Errorf("codes revoke again: %q, %v", out, err)
	}
	if _, err := run("codes", "revoke", "CLIREVOKE1"); err == nil {
		t.Errorf("codes revoke without --reason succeeded")
	}
	if cs, _ := st.CodeState(ctx, "CLIREVOKE1", ""); !cs.Revoked {
		t.Errorf("the code is not revoked")
	}
	if out, err := run("promotions", "cancel", id); err == nil || !strings.Contains(err.Error(), "nothing to cancel") {
		t.Errorf("cancel a vanity promotion: %q, %v; want the 409 explained", out, err)
	}
	if out, err := run("promotions", "topup", id, "--count", "5"); err == nil || !strings.Contains(err.Error(), "vanity") {
		t.Errorf("top up a vanity promotion: %q, %v; want the 409 explained", out, err)
	}
	gen, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "cli-gen",
		Kind: promo.KindGenerated, CodeCount: 10, Format: &promo.Format{Charset: "numeric", Length: 12},
		MaxUsagePerCode: 1, CounterName: "cli-gen-counter"}, BatchSize: 10, SeqLimit: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run("promotions", "topup", gen.IDString(), "--count", "25"); err != nil ||
		!strings.Contains(out, "top-up 1 of 25 codes") || !strings.Contains(out, "total 35") {
		t.Errorf("promotions topup: %q, %v", out, err)
	}
	if out, err := run("promotions", "delete", gen.IDString()); err != nil || !strings.Contains(out, "deletion requested") {
		t.Errorf("promotions delete: %q, %v", out, err)
	}
	if out, err := run("promotions", "delete", gen.IDString()); err != nil || !strings.Contains(out, "already requested") {
		t.Errorf("promotions delete again: %q, %v", out, err)
	}
	out, err := run("promotions", "audit", id)
	if err != nil || strings.Count(out, "code.revoked") != 1 || strings.Count(out, "promotion.updated") != 1 ||
		!strings.Contains(out, "admin:") {
		t.Errorf("promotions audit: %q, %v", out, err)
	}

	// purge: an ended vanity promotion loses its code, once, in a dry run
	// nothing.
	ended := time.Now().Add(-48 * time.Hour)
	old, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "old", Kind: promo.KindVanity,
		CodeCount: 1, VanityCode: "CLIOLD1", MaxUsagePerCode: 1, ExpiresAt: &ended}})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PROMOCODES_DB_DRIVER", "sqlite")
	t.Setenv("PROMOCODES_DB_DSN", dbPath)
	purge := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := newRootCmd()
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"purge"}, args...))
		err := root.ExecuteContext(ctx)
		return out.String(), err
	}
	// A date in the future, or within the safety margin, is refused before
	// anything is read.
	tomorrow := time.Now().Add(24 * time.Hour).UTC().Format(time.DateOnly)
	if out, err := purge("--expired-before", tomorrow); err == nil || !strings.Contains(err.Error(), "in the future") ||
		strings.Contains(out, "purge") {
		t.Errorf("purge --expired-before tomorrow: %q, %v; want refused", out, err)
	}
	if out, err := purge("--ended-more-than", "1h"); err == nil || !strings.Contains(err.Error(), "safety margin") {
		t.Errorf("purge --ended-more-than 1h: %q, %v; want refused (margin 24h)", out, err)
	}
	if _, err := st.CodeState(ctx, "CLIOLD1", ""); err != nil {
		t.Errorf("a refused purge deleted the code: %v", err)
	}
	day := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	if out, err := purge("--expired-before", day, "--dry-run"); err != nil ||
		!strings.Contains(out, fmt.Sprintf("will purge promotion %d: 1 codes", old.ID)) ||
		!strings.Contains(out, fmt.Sprintf("promotion %d: would purge (dry run) 1 codes", old.ID)) {
		t.Errorf("purge --dry-run: %q, %v", out, err)
	}
	if _, err := st.CodeState(ctx, "CLIOLD1", ""); err != nil {
		t.Errorf("a dry run deleted the code: %v", err)
	}
	if out, err := purge("--ended-more-than", "24h"); err != nil ||
		!strings.Contains(out, fmt.Sprintf("promotion %d: purged 1 codes", old.ID)) {
		t.Errorf("purge: %q, %v", out, err)
	}
	if _, err := st.CodeState(ctx, "CLIOLD1", ""); !promo.Is(err, promo.ENotFound) {
		t.Errorf("the ended promotion's code after purge: %v, want not found", err)
	}
	if out, err := purge("--dry-run"); err == nil {
		t.Errorf("purge without a date: %q, want a usage error", out)
	}
}

// `promotions topup` retries a transient failure (5xx, a broken connection)
// with the same Idempotency-Key, three tries 0.5 s and 1 s apart, and stops
// at once on a 4xx; when it gives up it names the key to re-run with.
func TestTopUpRetriesTransientFailuresWithTheSameKey(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failures  int // answers before a success
		status    int // of the failures
		wantCalls int
		wantOK    bool
	}{
		{"two 503s then success", 2, http.StatusServiceUnavailable, 3, true},
		{"503 every time", 5, http.StatusServiceUnavailable, 3, false},
		{"a 409 is final", 5, http.StatusConflict, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				keys []string
			)
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				keys = append(keys, r.Header.Get("Idempotency-Key"))
				n := len(keys)
				mu.Unlock()
				if n <= tc.failures {
					w.Header().Set("Content-Type", "application/problem+json")
					w.WriteHeader(tc.status)
					fmt.Fprintf(w, `{"title":"injected","status":%d}`, tc.status)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				fmt.Fprint(w, `{"topup":{"no":1,"codeCount":25,"firstBatchNo":1,"batchCount":1},"promotion":{"id":"7","codeCount":35}}`)
			}))
			t.Cleanup(hs.Close)
			var out bytes.Buffer
			root := newRootCmd()
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs([]string{"promotions", "topup", "7", "--count", "25", "--api-url", hs.URL, "--token", "cli-admin-token-0123456789"})
			start := time.Now()
			err := root.ExecuteContext(context.Background())
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if (err == nil) != tc.wantOK || len(keys) != tc.wantCalls {
				t.Fatalf("topup = %v after %d calls (%q); want ok=%v after %d calls", err, len(keys), out.String(), tc.wantOK, tc.wantCalls)
			}
			for _, k := range keys {
				if k == "" || k != keys[0] {
					t.Errorf("Idempotency-Keys %q: want one key on every try", keys)
				}
			}
			if tc.wantCalls == 3 && took < 1500*time.Millisecond {
				t.Errorf("three tries took %v; want the 0.5 s and 1 s pauses between them", took)
			}
			if !tc.wantOK && !strings.Contains(out.String(), "--idempotency-key "+keys[0]) {
				t.Errorf("output %q does not name the key to re-run with", out.String())
			}
		})
	}
}
