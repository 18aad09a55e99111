package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/promotion"
	"github.com/promocodes/promocodes/redemption"
)

// testSecret is a code key for tests only (32 bytes).
var testSecret = []byte("api-test-secret-0123456789abcdef")

// envConfig is what a test sets of the API's configuration and of the
// promotion service's behind it.
type envConfig struct {
	Open                         bool
	AdminTokens, RedeemTokens    []string
	MaxBodyBytes                 int64
	Metrics                      *api.Metrics
	BatchCodeCount, MaxCodeCount int64
	MaxDensity                   float64
	Secret                       []byte // testSecret when nil
}

func (c envConfig) split() (api.Config, promotion.Config) {
	if c.Secret == nil {
		c.Secret = testSecret
	}
	return api.Config{Open: c.Open, AdminTokens: c.AdminTokens, RedeemTokens: c.RedeemTokens,
			MaxBodyBytes: c.MaxBodyBytes, Metrics: c.Metrics},
		promotion.Config{BatchCodeCount: c.BatchCodeCount, MaxCodeCount: c.MaxCodeCount, MaxDensity: c.MaxDensity,
			Secret: c.Secret}
}

// notifier counts the server's notifications of new batch rows (the batch
// outbox relay's Notify in the wiring).
type notifier struct{ n atomic.Int64 }

func (n *notifier) Notify() { n.n.Add(1) }

// env is one API server on its own SQLite database (newEnv) or PostgreSQL
// schema (newEnvOn with backendPostgres).
type env struct {
	t      testing.TB
	store  *sqlite.Store                 // nil on PostgreSQL
	query  func(q string) (int64, error) // a separate read connection, to count what was written
	st     apiStore
	outbox *notifier
	srv    *httptest.Server
	token  string // sent as a bearer token when set
	// closeStore closes the server's store under it, as a shutdown or a
	// lost database would.
	closeStore func()
}

// Backends the input tests run on.
const (
	backendSQLite   = "sqlite"
	backendPostgres = "postgres"
)

// newEnvOn builds the server on the given backend. PostgreSQL needs
// PROMOCODES_TEST_POSTGRES_DSN (or Docker); without it the test skips saying so.
func newEnvOn(t testing.TB, backend string, cfg envConfig, ops http.Handler) *env {
	t.Helper()
	if backend == backendSQLite {
		return newEnv(t, cfg, ops)
	}
	ctx := context.Background()
	dsn := postgrestest.DSN(t)
	schema := postgrestest.Schema(t)
	st, err := postgres.Open(ctx, postgres.Config{DSN: dsn, Schema: schema, MaxConns: 4})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	pcfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		t.Fatalf("connect for counts: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var mu sync.Mutex
	query := func(q string) (int64, error) {
		mu.Lock()
		defer mu.Unlock()
		var n int64
		err := conn.QueryRow(ctx, q).Scan(&n)
		return n, err
	}
	return serveEnv(t, cfg, ops, st, nil, query)
}

// newEnv builds the server; cfg.Secret defaults to testSecret.
func newEnv(t testing.TB, cfg envConfig, ops http.Handler) *env {
	t.Helper()
	return newEnvWith(t, cfg, ops)
}

// newEnvWith is newEnv with options for the server (WithShopperTokens).
func newEnvWith(t testing.TB, cfg envConfig, ops http.Handler, opts ...api.Option) *env {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "promocodes.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	// The driver "sqlite" is registered by pkg/store/sqlite's import.
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatalf("open count connection: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	query := func(q string) (int64, error) {
		var n int64
		err := db.QueryRow(q).Scan(&n)
		return n, err
	}
	return serveEnv(t, cfg, ops, st, st, query, opts...)
}

// apiStore is what the test server needs from either store.
type apiStore interface {
	api.Store
	redemption.Store
	promotion.Store
	// ClaimPendingBatches reads the batch outbox (see pending).
	ClaimPendingBatches(ctx context.Context, limit int, lease time.Duration) ([]promo.Batch, error)
	Close()
}

func serveEnv(t testing.TB, cfg envConfig, ops http.Handler, st apiStore, sq *sqlite.Store,
	query func(string) (int64, error), opts ...api.Option) *env {
	t.Helper()
	log := zaptest.NewLogger(t)
	ob := &notifier{}
	acfg, pcfg := cfg.split()
	// The code endpoints too, so that every route is there.
	svc, err := redemption.New(redemption.Config{GuessLimit: -1, GuessLimitPerToken: -1}, st, nil, log)
	if err != nil {
		t.Fatalf("redemption.New: %v", err)
	}
	ps, err := promotion.New(pcfg, st, svc, log)
	if err != nil {
		t.Fatalf("promotion.New: %v", err)
	}
	ps.OnBatches(ob.Notify)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = svc.Run(ctx)
	}()
	pdone := make(chan struct{})
	go func() {
		defer close(pdone)
		_ = ps.Run(ctx)
	}()
	s, err := api.New(acfg, st, ps, ops, log, append([]api.Option{api.WithRedemption(svc)}, opts...)...)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	srv := httptest.NewServer(conform(t, s)) // every response checked against the OpenAPI document
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		<-pdone
		svc.Close()
	})
	return &env{t: t, store: sq, st: st, query: query, outbox: ob, srv: srv, closeStore: st.Close}
}

// response is an answer with its body read.
type response struct {
	*http.Response
	body []byte
}

func (e *env) do(method, path, body string, header http.Header) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{resp, b}
}

func (e *env) post(body string, header http.Header) response {
	e.t.Helper()
	return e.do(http.MethodPost, "/v1/promotions", body, header)
}

type created struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// create posts body and requires a new promotion's answer: 202 pending for
// generated codes, 201 completed for a vanity code.
func (e *env) create(body string) created {
	e.t.Helper()
	r := e.post(body, nil)
	var c created
	if r.StatusCode == http.StatusAccepted || r.StatusCode == http.StatusCreated {
		decodeJSON(e.t, r.body, &c)
	}
	if want := map[int]string{http.StatusAccepted: "pending", http.StatusCreated: "completed"}[r.StatusCode]; want == "" || c.Status != want {
		e.t.Fatalf("POST /v1/promotions = %d %s, want 202 pending (generated) or 201 completed (vanity)", r.StatusCode, r.body)
	}
	return c
}

type statusView struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Kind           string `json:"kind"`
	Status         string `json:"status"`
	CodeCount      int64  `json:"codeCount"`
	GeneratedCount int64  `json:"generatedCount"`
	Batches        struct {
		Total     int `json:"total"`
		Completed int `json:"completed"`
		Retrying  int `json:"retrying"`
		Parked    int `json:"parked"`
	} `json:"batches"`
	Code    string `json:"code"`
	Summary string `json:"summary"`
}

func (e *env) status(id string) statusView {
	e.t.Helper()
	r := e.do(http.MethodGet, "/v1/promotions/"+id, "", nil)
	if r.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /v1/promotions/%s = %d %s, want 200", id, r.StatusCode, r.body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		e.t.Errorf("GET /v1/promotions/%s Content-Type = %q, want application/json", id, ct)
	}
	var v statusView
	decodeJSON(e.t, r.body, &v)
	return v
}

// rows counts the rows of each table: what a request wrote.
type rows struct{ Promotions, Batches, Codes, Counters int }

func (e *env) rows() rows {
	e.t.Helper()
	var n rows
	for _, c := range []struct {
		table string
		dst   *int
	}{{"promotions", &n.Promotions}, {"batches", &n.Batches}, {"codes", &n.Codes}, {"counters", &n.Counters}} {
		v, err := e.query("SELECT count(*) FROM " + c.table)
		if err != nil {
			e.t.Fatalf("count %s: %v", c.table, err)
		}
		*c.dst = int(v)
	}
	return n
}

// counterNext sums the counters: how many sequence numbers were reserved.
func (e *env) counterNext() int64 {
	e.t.Helper()
	n, err := e.query("SELECT coalesce(sum(next), 0) FROM counters")
	if err != nil {
		e.t.Fatalf("sum counters: %v", err)
	}
	return n
}

type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// field returns the message for field, and whether the problem names it.
func (p problemDoc) field(name string) (string, bool) {
	for _, e := range p.Errors {
		if e.Field == name {
			return e.Message, true
		}
	}
	return "", false
}

// wantProblem checks that r is a problem+json answer with status whose
// errors name every field in fields, and returns the document.
func wantProblem(t *testing.T, r response, status int, fields ...string) problemDoc {
	t.Helper()
	if r.StatusCode != status {
		t.Errorf("status = %d, want %d; body %s", r.StatusCode, status, r.body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problemDoc
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if p.Status != status {
		t.Errorf("problem status = %d, want %d", p.Status, status)
	}
	if p.Title == "" || p.Type == "" {
		t.Errorf("problem lacks title or type: %s", r.body)
	}
	for _, f := range fields {
		if _, ok := p.field(f); !ok {
			t.Errorf("problem does not name field %q: %s", f, r.body)
		}
	}
	return p
}

func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// pending claims every batch row of the outbox not yet published (as the
// batch relay would, for a minute), oldest first.
func (e *env) pending() []promo.Batch {
	e.t.Helper()
	bs, err := e.st.ClaimPendingBatches(context.Background(), 1_000_000, time.Minute)
	if err != nil {
		e.t.Fatalf("ClaimPendingBatches: %v", err)
	}
	return bs
}
