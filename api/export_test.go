package api_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/health"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/promotion"
)

// generate commits every batch of promotion id through the store, as the
// generator does, in chunks of chunkSize, and returns the canonical codes.
func generate(t *testing.T, e *env, id string, secret []byte, chunkSize int) map[string]bool {
	t.Helper()
	ctx := context.Background()
	pid, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	batches, err := e.store.IncompleteBatches(ctx, pid)
	if err != nil {
		t.Fatalf("IncompleteBatches: %v", err)
	}
	committed := map[string]bool{}
	for _, b := range batches {
		w, err := e.store.LoadBatch(ctx, b.Ref())
		if err != nil {
			t.Fatalf("LoadBatch: %v", err)
		}
		eng, err := codes.New(*w.Promotion.Format, secret)
		if err != nil {
			t.Fatalf("codes.New: %v", err)
		}
		l := eng.Layout()
		for from := int64(0); from < b.CodeCount; from += int64(chunkSize) {
			n := int(min(int64(chunkSize), b.CodeCount-from))
			buf := make([]byte, 0, n*l.CodeLen())
			for i := range n {
				buf = eng.AppendCode(buf, b.SeqStart+uint64(from)+uint64(i))
			}
			c := promo.Chunk{Batch: b.Ref(), From: from, Count: n, Codes: buf, CodeLen: l.CodeLen(),
				CounterName: w.Promotion.CounterName, Replace: eng.AppendCode}
			if _, err := e.store.CommitChunk(ctx, c); err != nil {
				t.Fatalf("CommitChunk %d/%d from %d: %v", b.PromotionID, b.BatchNo, from, err)
			}
			for i := range n {
				committed[string(c.Code(i))] = true
			}
		}
	}
	return committed
}

func TestExportCSV(t *testing.T) {
	const n = 1234
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 500}, nil)
	c := e.create(winter(n))
	e.create(winter(7)) // another promotion's codes must not leak into the export
	committed := generate(t, e, c.ID, testSecret, 200)
	generate(t, e, "2", testSecret, 200)
	if len(committed) != n {
		t.Fatalf("committed %d distinct codes, want %d", len(committed), n)
	}
	if v := e.status(c.ID); v.Status != "completed" || v.GeneratedCount != n || v.Batches.Completed != 3 {
		t.Errorf("status after generation = %+v, want completed, %d generated, 3 batches completed", v, n)
	}

	r := e.do(http.MethodGet, "/v1/promotions/"+c.ID+"/codes", "", nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("export = %d %s", r.StatusCode, r.body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("Content-Type = %q, want text/csv", ct)
	}
	recs, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		t.Fatalf("export is not CSV: %v", err)
	}
	if len(recs) == 0 || recs[0][0] != "code" {
		t.Fatalf("first row = %v, want the header code", recs[:min(len(recs), 1)])
	}
	lines := strings.Split(strings.TrimRight(string(r.body), "\n"), "\n")
	if lines[0] != "code" {
		t.Errorf("first line = %q, want code", lines[0])
	}
	layout, err := codes.NewLayout(promo.Format{Charset: "alnum", Length: 10, Prefix: "WNTR-", Separator: "-", GroupSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, rec := range recs[1:] {
		display := rec[0]
		if seen[display] {
			t.Errorf("row %d: %q exported twice", i+1, display)
		}
		seen[display] = true
		// Display form: WNTR-XXXX-XXXX-XXX (body 10 + check, groups of 4).
		if parts := strings.Split(display, "-"); len(parts) != 4 || parts[0] != "WNTR" {
			t.Errorf("row %d: %q is not in display form WNTR-XXXX-XXXX-XXX", i+1, display)
		}
		canonical, err := layout.Parse(display)
		if err != nil {
			t.Errorf("row %d: Parse(%q): %v", i+1, display, err)
			continue
		}
		if !committed[canonical] {
			t.Errorf("row %d: %q (canonical %q) was not committed for this promotion", i+1, display, canonical)
		}
	}
	if len(seen) != n {
		t.Errorf("export has %d distinct codes, want %d", len(seen), n)
	}
}

// A cancelled promotion's export is refused with what is true of it: it
// will not complete (it said "export it once it is completed").
func TestExportOfCancelledPromotion(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 100}, nil)
	c := e.create(winter(200))
	if r := e.do(http.MethodPost, "/v1/promotions/"+c.ID+"/cancel", "", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("cancel = %d %s", r.StatusCode, r.body)
	}
	p := wantProblem(t, e.do(http.MethodGet, "/v1/promotions/"+c.ID+"/codes", "", nil), http.StatusConflict)
	if !strings.Contains(p.Detail, "cancelled") || !strings.Contains(p.Detail, "will not complete") ||
		strings.Contains(p.Detail, "once it is completed") {
		t.Errorf("409 detail = %q, want it to say cancelled and that it will not complete", p.Detail)
	}
}

// An unfinished promotion's export is refused (409) unless a partial export
// is asked for explicitly; it used to be a 200 with a partial file.
func TestExportOfUnfinishedPromotion(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 100}, nil)
	c := e.create(winter(200))
	path := "/v1/promotions/" + c.ID + "/codes"
	p := wantProblem(t, e.do(http.MethodGet, path, "", nil), http.StatusConflict)
	if !strings.Contains(p.Detail, "pending") || !strings.Contains(p.Detail, "partial=true") {
		t.Errorf("409 detail = %q, want it to say pending and name partial=true", p.Detail)
	}
	wantProblem(t, e.do(http.MethodGet, path+"?partial=maybe", "", nil), http.StatusUnprocessableEntity, "partial")
	r := e.do(http.MethodGet, path+"?partial=true", "", nil)
	if r.StatusCode != http.StatusOK || string(r.body) != "code\n" || r.Header.Get("Promocodes-Partial-Export") != "true" {
		t.Errorf("partial export of an ungenerated promotion = %d %q (header %q), want 200, the header row, marked partial",
			r.StatusCode, r.body, r.Header.Get("Promocodes-Partial-Export"))
	}

	// A parked batch: failed, still refused.
	pid, _ := strconv.ParseInt(c.ID, 10, 64)
	if err := e.store.SetBatchState(context.Background(), promo.BatchRef{PromotionID: pid, BatchNo: 1}, promo.BatchParked, "boom"); err != nil {
		t.Fatal(err)
	}
	p = wantProblem(t, e.do(http.MethodGet, path, "", nil), http.StatusConflict)
	if !strings.Contains(p.Detail, "failed") || !strings.Contains(p.Detail, "once its parked batches are replayed") {
		t.Errorf("409 detail = %q, want it to say failed, and that a replay completes it", p.Detail)
	}

	generate(t, e, c.ID, testSecret, 100)
	for _, q := range []string{"", "?partial=false", "?partial=true"} {
		r := e.do(http.MethodGet, path+q, "", nil)
		if lines := strings.Count(string(r.body), "\n"); r.StatusCode != http.StatusOK || lines != 201 {
			t.Errorf("export%s of the completed promotion = %d with %d lines, want 200 with 201", q, r.StatusCode, lines)
		}
	}
}

func TestExportVanity(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	c := e.create(`{"name":"megadeth","code":"megadeth21"}`)
	r := e.do(http.MethodGet, "/v1/promotions/"+c.ID+"/codes", "", nil)
	if r.StatusCode != http.StatusOK || string(r.body) != "code\nMEGADETH21\n" {
		t.Errorf("vanity export = %d %q, want the one code", r.StatusCode, r.body)
	}
}

func TestAuth(t *testing.T) {
	const token = "admin-token-for-tests-0123456789"
	ops := health.Handler(nil, nil, prometheus.NewRegistry())
	const redeemToken = "redeem-token-for-tests-012345678"
	e := newEnv(t, envConfig{AdminTokens: []string{token}, RedeemTokens: []string{redeemToken}, BatchCodeCount: 1000}, ops)
	body := winter(1000)

	for _, tc := range []struct {
		name   string
		auth   string
		status int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"basic auth", "Basic YWRtaW46YWRtaW4=", http.StatusUnauthorized},
		{"wrong token", "Bearer not-the-token", http.StatusUnauthorized},
		{"token prefix", "Bearer " + token[:10], http.StatusUnauthorized},
		{"redeem token on an admin endpoint", "Bearer " + redeemToken, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.auth != "" {
				h.Set("Authorization", tc.auth)
			}
			for _, req := range []struct{ method, path, body string }{
				{"POST", "/v1/promotions", body}, {"GET", "/v1/promotions/1", ""}, {"GET", "/v1/promotions/1/codes", ""},
			} {
				r := e.do(req.method, req.path, req.body, h)
				wantProblem(t, r, tc.status)
				www := r.Header.Get("WWW-Authenticate")
				if tc.status == http.StatusUnauthorized && !strings.HasPrefix(www, "Bearer") {
					t.Errorf("%s %s: 401 without a Bearer WWW-Authenticate (%q)", req.method, req.path, www)
				}
			}
			if got := e.rows(); got != (rows{}) {
				t.Errorf("an unauthorized create wrote %+v", got)
			}
		})
	}

	e.token = token
	c := e.create(body)
	if v := e.status(c.ID); v.CodeCount != 1000 {
		t.Errorf("status with the token = %+v", v)
	}
	e.token = ""
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if r := e.do(http.MethodGet, path, "", nil); r.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a token = %d %s, want 200", path, r.StatusCode, r.body)
		}
	}
}

func TestNewRefusesClosedServerWithoutTokens(t *testing.T) {
	if _, err := api.New(api.Config{}, nil, nil, nil, nil); err == nil {
		t.Error("api.New without Open or admin tokens succeeded")
	}
	if _, err := promotion.New(promotion.Config{Secret: testSecret[:31]}, nil, nil, nil); err == nil {
		t.Error("promotion.New with a 31-byte secret succeeded")
	}
}

func TestStatusViewParkedAndRetrying(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 100}, nil)
	c := e.create(winter(300))
	pid, _ := strconv.ParseInt(c.ID, 10, 64)
	ctx := context.Background()
	if err := e.store.SetBatchState(ctx, promo.BatchRef{PromotionID: pid, BatchNo: 1}, promo.BatchParked, "boom"); err != nil {
		t.Fatalf("SetBatchState parked: %v", err)
	}
	v := e.status(c.ID)
	if v.Batches.Parked != 1 || v.Batches.Total != 3 || v.Status != "failed" {
		t.Errorf("status = %+v, want 1 of 3 batches parked, status failed", v)
	}
	if !strings.Contains(v.Summary, "parked") || !strings.Contains(v.Summary, "0 / 300") {
		t.Errorf("summary = %q, want it to say 0 / 300 codes and mention parked", v.Summary)
	}

	if err := e.store.SetBatchState(ctx, promo.BatchRef{PromotionID: pid, BatchNo: 2}, promo.BatchRetrying, "timeout"); err != nil {
		t.Fatalf("SetBatchState retrying: %v", err)
	}
	v = e.status(c.ID)
	if v.Batches.Retrying != 1 || v.Batches.Parked != 1 || v.Status != "failed" {
		t.Errorf("status = %+v, want 1 retrying, 1 parked, failed", v)
	}
	if !strings.Contains(v.Summary, "retrying") || !strings.Contains(v.Summary, "parked") {
		t.Errorf("summary = %q, want it to mention retrying and parked", v.Summary)
	}

	// A replayed batch that is generated after all leaves the failed state.
	generate(t, e, c.ID, testSecret, 100)
	v = e.status(c.ID)
	if v.Status != "completed" || v.Batches.Parked != 0 || v.Batches.Retrying != 0 || v.GeneratedCount != 300 {
		t.Errorf("after generating everything: %+v, want completed with nothing parked", v)
	}
	if !strings.Contains(v.Summary, "300 / 300") {
		t.Errorf("summary = %q", v.Summary)
	}
}
