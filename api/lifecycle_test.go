package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/promotion"
)

// An operator's log has one info line per created promotion, with its id
// and counts; a repeated (idempotent) create logs nothing new.
func TestCreateLogsOneInfoLine(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "p.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	ps, err := promotion.New(promotion.Config{Secret: testSecret, BatchCodeCount: 1000}, st, zap.New(core))
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
