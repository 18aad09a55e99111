package redemption_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/api/apitest"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/promotion"
	"github.com/promocodes/promocodes/redemption"
	"github.com/promocodes/promocodes/relay"
)

var testSecret = []byte("redemption-test-secret-0123456789abcdef")

// Tokens of the two roles.
const (
	adminToken  = "admin-token-0123456789"
	redeemToken = "redeem-token-0123456789"
)

// store is what the harness needs of a real store: the API's, the
// service's, and enough of the generator's to seed codes.
type store interface {
	api.Store
	redemption.Store
	promotion.Store
	relay.EventStore
	IncompleteBatches(ctx context.Context, promotionID int64) ([]promo.Batch, error)
	CommitChunk(ctx context.Context, c promo.Chunk) (int64, error)
}

// harness is a real API server (HTTP on loopback) with the redemption
// service on a real database.
type harness struct {
	t      testing.TB
	ctx    context.Context
	st     store
	svc    *redemption.Service
	srv    *httptest.Server
	client *http.Client
}

// backends lists the databases the HTTP tests run on. PostgreSQL needs
// PROMOCODES_TEST_POSTGRES_DSN (or Docker); without it, its subtests skip
// with the reason.
var backends = []string{"sqlite", "postgres"}

func openStore(t testing.TB, backend string, conns int) store {
	t.Helper()
	ctx := context.Background()
	switch backend {
	case "sqlite":
		st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "promocodes.db")})
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		t.Cleanup(st.Close)
		if err := st.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return st
	case "postgres":
		dsn := postgrestest.DSN(t) // skips with the reason when there is no server
		st, err := postgres.Open(ctx, postgres.Config{DSN: dsn, Schema: postgrestest.Schema(t), MaxConns: int32(conns)})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		t.Cleanup(st.Close)
		if err := st.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return st
	}
	t.Fatalf("unknown backend %q", backend)
	return nil
}

func newHarness(t *testing.T, backend string, cfg redemption.Config) *harness {
	t.Helper()
	st := openStore(t, backend, 16)
	return newHarnessOn(t, st, cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
}

func newHarnessOn(t testing.TB, st store, cfg redemption.Config, log *zap.Logger) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := redemption.New(cfg, st, nil, log)
	if err != nil {
		t.Fatalf("redemption.New: %v", err)
	}
	// The default 10 s database deadline answers 503 when a request waits
	// longer. Under the race detector SQLite runs ~30x slower, and on a
	// loaded 2-core machine a burst's last writers waited past 10 s for its
	// single write lock: these tests are about limits and answers, not
	// speed, so -race runs get a minute (the full-size runs without -race
	// keep the default).
	dbTimeout := time.Duration(0)
	if raceEnabled {
		dbTimeout = time.Minute
	}
	// Deletions are finished as often as reservations are swept.
	ps, err := promotion.New(promotion.Config{Secret: testSecret, DeletionInterval: cfg.SweepInterval}, st, svc, log)
	if err != nil {
		t.Fatalf("promotion.New: %v", err)
	}
	srv, err := api.New(api.Config{AdminTokens: []string{adminToken},
		RedeemTokens: []string{redeemToken}, DBTimeout: dbTimeout,
		// The test client is the proxy: tests name client addresses in X-Forwarded-For.
		TrustedProxies: []string{"127.0.0.1", "::1"}}, st, ps, nil, log, api.WithRedemption(svc))
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		_ = svc.Run(ctx)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		_ = ps.Run(ctx)
	}()
	hs := httptest.NewServer(apitest.Conform(t, srv)) // every response checked against the OpenAPI document
	t.Cleanup(func() {
		hs.Close()
		cancel()
		<-done
		<-done
		svc.Close()
	})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 1000
	tr.MaxIdleConns = 1000
	t.Cleanup(tr.CloseIdleConnections)
	return &harness{t: t, ctx: ctx, st: st, svc: svc, srv: hs, client: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// promotionSpec is a generated promotion to seed.
type promotionSpec struct {
	n         int
	maxUsage  int
	perUser   int
	format    promo.Format
	startsAt  *time.Time
	expiresAt *time.Time
	rules     *promo.Eligibility
}

var defaultFormat = promo.Format{Charset: "alnum", Length: 10, Prefix: "T", Separator: "-", GroupSize: 4}

// seed creates a generated promotion and commits its n codes the way a
// generator worker does (the real code engine, one chunk), and returns the
// promotion and its codes in display form.
func (h *harness) seed(spec promotionSpec) (promo.Promotion, []string) {
	h.t.Helper()
	if spec.format.Charset == "" {
		spec.format = defaultFormat
	}
	eng, err := codes.New(spec.format, testSecret)
	if err != nil {
		h.t.Fatalf("codes.New: %v", err)
	}
	l := eng.Layout()
	f := l.Format()
	p, _, err := h.st.CreatePromotion(h.ctx, promo.NewPromotion{
		Promotion: promo.Promotion{Name: h.t.Name(), Kind: promo.KindGenerated, CodeCount: int64(spec.n), Format: &f,
			MaxUsagePerCode: spec.maxUsage, PerUserLimit: spec.perUser, StartsAt: spec.startsAt,
			ExpiresAt: spec.expiresAt, CounterName: l.CounterName(), Eligibility: spec.rules},
		BatchSize: int64(spec.n), SeqLimit: math.MaxInt64,
	})
	if err != nil {
		h.t.Fatalf("CreatePromotion: %v", err)
	}
	bs, err := h.st.IncompleteBatches(h.ctx, p.ID)
	if err != nil || len(bs) != 1 {
		h.t.Fatalf("IncompleteBatches = %v, %v", bs, err)
	}
	b := bs[0]
	buf := eng.AppendCodes(nil, b.SeqStart, spec.n)
	if _, err := h.st.CommitChunk(h.ctx, promo.Chunk{Batch: b.Ref(), Count: spec.n, Codes: buf, CodeLen: l.CodeLen(),
		CounterName: p.CounterName, Replace: eng.AppendCode}); err != nil {
		h.t.Fatalf("CommitChunk: %v", err)
	}
	out := make([]string, spec.n)
	for i := range out {
		out[i] = l.Display(string(buf[i*l.CodeLen() : (i+1)*l.CodeLen()]))
	}
	return p, out
}

// vanity creates a vanity promotion over HTTP.
func (h *harness) vanity(code string, maxUsage, perUser int) string {
	h.t.Helper()
	r := h.do("POST", "/v1/promotions", adminToken, fmt.Sprintf(`{"name":"vanity","code":%q,"maxUsagePerCode":%d,"perUserLimit":%d}`,
		code, maxUsage, perUser), nil)
	if r.status != http.StatusCreated {
		h.t.Fatalf("create vanity: %d %s, want 201", r.status, r.body)
	}
	var c struct{ ID string }
	decode(h.t, r.body, &c)
	return c.ID
}

// reply is an HTTP answer, read.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (h *harness) do(method, path, token, body string, header map[string]string) reply {
	h.t.Helper()
	r, err := h.try(method, path, token, body, header)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// try is do for goroutines: it returns the transport error.
func (h *harness) try(method, path, token, body string, header map[string]string) (reply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		return reply{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// redeem posts a redemption of code for user.
func (h *harness) redeem(code, user string, header map[string]string) (reply, error) {
	return h.try("POST", "/v1/codes/"+pathEscape(code)+"/redemptions", redeemToken,
		fmt.Sprintf(`{"userId":%q}`, user), header)
}

func pathEscape(s string) string { return strings.ReplaceAll(s, " ", "%20") }

// problemDoc is a problem+json answer.
type problemDoc struct {
	Status int    `json:"status"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
	Errors []struct {
		Field string `json:"field"`
	} `json:"errors"`
}

func decode(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func reasonOf(t testing.TB, r reply) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("answer %d with Content-Type %q, want application/problem+json: %s", r.status, ct, r.body)
	}
	var p problemDoc
	decode(t, r.body, &p)
	if p.Status != r.status {
		t.Fatalf("problem status %d in a %d answer", p.Status, r.status)
	}
	return p.Reason
}

// used sums the uses of codes as the database has them.
func (h *harness) used(codeList []string) int {
	h.t.Helper()
	total := 0
	for _, c := range codeList {
		canon, err := codes.Canonical(c)
		if err != nil {
			h.t.Fatalf("Canonical(%q): %v", c, err)
		}
		st, err := h.st.CodeState(h.ctx, canon, "")
		if err != nil {
			h.t.Fatalf("CodeState(%q): %v", c, err)
		}
		total += st.Used
	}
	return total
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
