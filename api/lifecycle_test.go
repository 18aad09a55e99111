package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/pkg/store/storetest"
	"github.com/promocodes/promocodes/promotion"
)

// An operator's log has one info line per created promotion, with its id
// and counts; a repeated (idempotent) create logs nothing new.
func TestCreateLogsOneInfoLine(t *testing.T) {
	ctx := context.Background()
	opened, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "p.db")})
	st := storetest.Migrated(t, opened, err)
	core, logs := observer.New(zap.InfoLevel)
	ps, err := promotion.New(promotion.Config{Secret: testSecret, BatchCodeCount: 1000}, st, nil, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.New(api.Config{Open: true}, st, ps, nil, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/promotions",
			strings.NewReader(`{"name":"logged","codeCount":2500,"format":{"charset":"numeric","length":12}}`))
		req.Header.Set("Idempotency-Key", "k1")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	lines := logs.FilterMessage("promotion created").All()
	if len(lines) != 1 {
		t.Fatalf("%d \"promotion created\" lines, want 1: %v", len(lines), logs.All())
	}
	f := lines[0].ContextMap()
	if f["promotion_id"] != int64(1) || f["codes"] != int64(2500) || f["batches"] != int64(3) || f["name"] != "logged" {
		t.Errorf("fields = %v, want promotion_id 1, codes 2500, batches 3, name logged", f)
	}
}

// Revoking a code and reading the audit log are the promotion service's: a
// server built without the redemption service answers them as before
// (200 with the revocation, a replay with Idempotent-Replayed, 404 for an
// unknown code, the revocation's audit row), codes in canonical form when
// no Displayer is given.
func TestRevokeAndAuditLogArePromotionAdmin(t *testing.T) {
	ctx := context.Background()
	opened, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "p.db")})
	st := storetest.Migrated(t, opened, err)
	ps, err := promotion.New(promotion.Config{Secret: testSecret, BatchCodeCount: 1000}, st, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.New(api.Config{Open: true}, st, ps, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	do := func(method, path, body string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, _, body := do("POST", "/v1/promotions", `{"name":"vanity","code":"REVOKEME1"}`); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	code, _, body := do("POST", "/v1/codes/revokeme1/revoke", `{"reason":"leaked"}`)
	var rev struct{ Code, PromotionID, Reason string }
	if err := json.Unmarshal([]byte(body), &rev); err != nil || code != http.StatusOK ||
		rev != (struct{ Code, PromotionID, Reason string }{"REVOKEME1", "1", "leaked"}) {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, h, body := do("POST", "/v1/codes/REVOKEME1/revoke", `{"reason":"again"}`); code != http.StatusOK ||
		h.Get("Idempotent-Replayed") != "true" || !strings.Contains(body, `"leaked"`) {
		t.Errorf("second revoke: %d %v %s", code, h, body)
	}
	if code, _, body := do("POST", "/v1/codes/NOSUCHCODE42/revoke", `{"reason":"x"}`); code != http.StatusNotFound ||
		!strings.Contains(body, "code_not_found") {
		t.Errorf("revoke of an unknown code: %d %s, want 404 code_not_found", code, body)
	}
	code, _, body = do("GET", "/v1/promotions/1/audit", "")
	var log struct {
		Entries []struct{ Action, Actor, Code, PromotionID string }
	}
	if err := json.Unmarshal([]byte(body), &log); err != nil || code != http.StatusOK || len(log.Entries) != 1 ||
		log.Entries[0].Action != "code.revoked" || log.Entries[0].Actor != "admin:open" ||
		log.Entries[0].Code != "REVOKEME1" || log.Entries[0].PromotionID != "1" {
		t.Errorf("audit log: %d %s, want one code.revoked entry of REVOKEME1 by admin:open", code, body)
	}
}
