package api

import (
	"context"
	"crypto/subtle"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Store is what the API needs from the database.
type Store interface {
	GetPromotion(ctx context.Context, id int64) (promo.PromotionStatus, error)
	ExportCodes(ctx context.Context, id int64, fn func(code string) error) error
	ListPromotions(ctx context.Context, f promo.ListFilter) ([]promo.PromotionStatus, error)
	Stats(ctx context.Context, q promo.StatsQuery) (promo.PromotionStats, error)
	RefusalsByReason(ctx context.Context, promotionID int64) ([]promo.ReasonCount, error)
	// Unavailable reports whether err means the database cannot serve now
	// (unreachable, connection lost, shutting down): answered 503 with
	// Retry-After, not 500.
	Unavailable(err error) bool
}

// Config tunes the API. Zero values take the defaults.
type Config struct {
	MaxBodyBytes int64 // largest request body (default 1 MiB)
	AdminTokens  []string
	RedeemTokens []string
	// MaxMetadataBytes bounds a redemption's metadata object (default 1 KiB).
	MaxMetadataBytes int
	// Open serves without authentication (dev only); the caller logs that it does.
	Open bool
	// Metrics, when set, records every request by route pattern and status.
	Metrics *Metrics
	// DBTimeout bounds the database work of a create or status request
	// (default 10s): a stuck database answers 503, it does not hang clients.
	DBTimeout time.Duration
	// AdmissionWait is the longest a shopper request waits in the
	// redemption service's admission queue (redeem.admission.maxWait;
	// default 0: none): the code endpoints' deadline is DBTimeout after it,
	// so a request that waited its whole turn still has DBTimeout for its
	// database work and is refused by the queue (503 with Retry-After)
	// rather than cut by its deadline.
	AdmissionWait time.Duration
	// MaxExports is how many CSV exports may stream at once (default 2).
	// Each holds a database connection for as long as its client reads, so
	// keep it below db.maxConns: creates and status reads need the rest.
	MaxExports int
	// ExportQueueWait is how long an export waits for a free slot before
	// it is answered 503 with Retry-After (default 2s).
	ExportQueueWait time.Duration
	// ExportStallTimeout cuts an export whose client has not taken any data
	// for this long (default 1m), freeing its database connection.
	ExportStallTimeout time.Duration
	// TrustedProxies are the addresses and CIDR ranges of the reverse
	// proxies in front of the API (http.trustedProxies); only from them are
	// ClientAddressHeaders (default X-Forwarded-For) read to know a
	// request's client address, which failed code look-ups count against.
	TrustedProxies       []string
	ClientAddressHeaders []string
	// Clock is the time a stats window ends at by default (nil: time.Now).
	// Replicas must share one: the wiring passes the database's
	// (pkg/dbclock).
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.DBTimeout == 0 {
		c.DBTimeout = 10 * time.Second
	}
	if c.MaxExports == 0 {
		c.MaxExports = 2
	}
	if c.ExportQueueWait == 0 {
		c.ExportQueueWait = 2 * time.Second
	}
	if c.ExportStallTimeout == 0 {
		c.ExportStallTimeout = time.Minute
	}
}

// Validate checks the configuration as given (New fills in the defaults of
// zero fields first, so a zero there means the default), naming each field
// by its key: "maxBodyBytes", "adminTokens", "trustedProxies".
func (c Config) Validate() error {
	var errs configkey.List
	if c.MaxBodyBytes < 1024 {
		errs.Add("maxBodyBytes", "must be at least 1024, got %d", c.MaxBodyBytes)
	}
	if !c.Open && len(c.AdminTokens) == 0 {
		errs.Add("adminTokens", "at least one token is required outside dev mode")
	}
	byRole := map[string][]string{"adminTokens": c.AdminTokens, "redeemTokens": c.RedeemTokens}
	for _, key := range slices.Sorted(maps.Keys(byRole)) {
		tokens := byRole[key]
		for _, tok := range tokens {
			if len(tok) < 16 {
				errs.Add(key, "tokens must be at least 16 characters")
				break
			}
		}
	}
	errs.NotNegative(map[string]time.Duration{"dbTimeout": c.DBTimeout, "exportQueueWait": c.ExportQueueWait,
		"exportStallTimeout": c.ExportStallTimeout, "admissionWait": c.AdmissionWait})
	if c.MaxExports < 0 {
		errs.Add("maxExports", "must not be negative, got %d", c.MaxExports)
	}
	errs.Join(c.ValidateClientAddress())
	return errs.Err()
}

// ValidateClientAddress checks TrustedProxies and ClientAddressHeaders alone.
func (c Config) ValidateClientAddress() error {
	_, err := newClientAddress(c.TrustedProxies, c.ClientAddressHeaders)
	return err
}

// Server is the HTTP API.
type Server struct {
	cfg   Config
	store Store
	// promotions creates promotions and carries them through their life.
	promotions Promotions
	log        *zap.Logger
	mux        *http.ServeMux
	now        func() time.Time
	// exports holds one token per export streaming now (cap MaxExports).
	exports chan struct{}
	// largeBodies holds one token per request body being read past
	// largeBody bytes (cap maxLargeBodies): see readBody.
	largeBodies chan struct{}
	// redeemer serves the code endpoints, all of them; nil leaves them out
	// (WithRedemption).
	redeemer Redeemer
	// shoppers verifies shopper tokens; nil: none are used (WithShopperTokens).
	shoppers ShopperVerifier
	// clientAddr tells a request's client address (trusted proxies).
	clientAddr clientAddress
}

// New builds the Server: store answers the reads, promotions (package
// promotion) the creates and changes. ops serves /healthz, /readyz and
// /metrics (pkg/health); nil leaves them out.
func New(cfg Config, store Store, promotions Promotions, ops http.Handler, log *zap.Logger, opts ...Option) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	clientAddr, err := newClientAddress(cfg.TrustedProxies, cfg.ClientAddressHeaders)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, clientAddr: clientAddr, store: store, promotions: promotions, log: log, mux: http.NewServeMux(),
		now: cfg.Clock, exports: make(chan struct{}, cfg.MaxExports), largeBodies: make(chan struct{}, maxLargeBodies)}
	if s.now == nil {
		s.now = time.Now
	}
	for _, o := range opts {
		o(s)
	}
	for _, r := range s.routes() {
		s.mux.Handle(r.pattern, r.h)
	}
	s.mux.HandleFunc("GET /openapi.json", serveOpenAPIJSON)
	s.mux.HandleFunc("GET /openapi.yaml", serveOpenAPIYAML)
	s.mux.HandleFunc("GET /docs", serveDocs)
	for _, f := range docsAssets {
		s.mux.HandleFunc("GET /docs/assets/"+f, serveDocsAsset(f))
	}
	if ops != nil {
		s.mux.Handle("GET /healthz", ops)
		s.mux.Handle("GET /readyz", ops)
		s.mux.Handle("GET /metrics", ops)
	}
	return s, nil
}

type route struct {
	pattern string
	h       http.Handler
}

// routes are the API's endpoints (not the operational ones); the code
// endpoints (validation, redemption, reservations, personal codes, the
// audit trail) with a redeemer (WithRedemption), every one of them.
func (s *Server) routes() []route {
	rs := []route{
		{"POST /v1/promotions", s.admin(s.deadline(s.createPromotion))},
		{"GET /v1/promotions", s.admin(s.deadline(s.listPromotions))},
		{"GET /v1/promotions/{id}", s.admin(s.deadline(s.getPromotion))},
		{"GET /v1/promotions/{id}/codes", s.admin(s.exportCodes)},
		{"GET /v1/promotions/{id}/stats", s.admin(s.deadline(s.promotionStats))},
	}
	rs = append(rs, s.lifecycleRoutes()...)
	if s.redeemer != nil {
		rs = append(rs, s.redemptionRoutes()...)
	}
	return rs
}

// Routes lists every endpoint the API can serve as "METHOD /path"
// patterns, for tests that must cover each of them.
func Routes() []string {
	var out []string
	for _, r := range (&Server{redeemer: noRedeemer{}}).routes() {
		out = append(out, r.pattern)
	}
	return out
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.cfg.Metrics.observe("unmatched", http.HandlerFunc(s.noRoute), w, r)
		return
	}
	if strings.Contains(pattern, " /v1/") {
		if err := checkRequestLine(r); err != nil {
			s.cfg.Metrics.observe(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s.writeError(w, r, err)
			}), w, r)
			return
		}
	}
	s.cfg.Metrics.observe(pattern, s.mux, w, r) // the mux sets the path values that Handler does not
}

// singleHeaders are the request headers the API reads one value of.
var singleHeaders = []string{"Idempotency-Key", "Authorization", ShopperTokenHeader, "Content-Type"}

// checkRequestLine refuses, before any handler reads them, a query string
// checkQuery refuses and a header of singleHeaders given more than once:
// the handlers read the first value, a gateway that de-duplicates on the
// key or a proxy that authenticates may read the last, so the two could
// disagree about which request this is and who sent it.
func checkRequestLine(r *http.Request) error {
	for _, h := range singleHeaders {
		if len(r.Header[h]) > 1 {
			return &promo.Error{Code: promo.EInvalid, Message: "invalid request",
				Fields: []promo.FieldError{{Field: h, Message: "is given more than once"}}}
		}
	}
	if r.URL.RawQuery == "" {
		return nil
	}
	return checkQuery(r.URL.RawQuery)
}

// checkQuery refuses a query string the handlers could not read whole, or
// could read otherwise than a proxy or cache in front of them: one that
// url.ParseQuery refuses (a bad escape, more than its limit of parameters),
// which r.URL.Query() would read as fewer parameters without a word (so
// ?userId=%zz would drop the filter), and a parameter given more than once
// other than segments (the handlers read the first value, another reader
// may take the last: ?limit=5&limit=zz must not pass as limit=5).
func checkQuery(rawQuery string) error {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return &promo.Error{Code: promo.EInvalid, Message: "invalid query",
			Fields: []promo.FieldError{{Field: "query", Message: "is not a well-formed query string: " + truncate(err.Error(), 80)}}}
	}
	for k, vs := range q {
		if len(vs) > 1 && k != "segments" {
			return &promo.Error{Code: promo.EInvalid, Message: "invalid query",
				Fields: []promo.FieldError{{Field: truncate(k, 40), Message: "is given more than once"}}}
		}
	}
	return nil
}

// routeMethods are the methods tried when a path has no route for the
// request's method.
var routeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete}

// noRoute answers a request that matches no route: 405 with Allow when the
// path is known under other methods, else 404, both as problem+json.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range routeMethods {
		if m == r.Method {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, p := s.mux.Handler(r2); p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.writeError(w, r, promo.Errorf(errMethodNotAllowed, "%s is not allowed on %s (allowed: %s)",
			r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	s.writeError(w, r, promo.Errorf(promo.ENotFound, "no route for %s %s", r.Method, r.URL.Path))
}

// deadline bounds a short request's database work by DBTimeout.
func (s *Server) deadline(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.DBTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	}
}

// queued bounds a shopper request that the redemption service admits
// (validate, redeem, roll back, reserve, confirm, release, issue): its
// admission wait, then DBTimeout for its database work.
func (s *Server) queued(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.AdmissionWait+s.cfg.DBTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	}
}

// exportSlot takes one of MaxExports slots, waiting up to ExportQueueWait.
// It returns the release function, or an error (503) when none came free.
func (s *Server) exportSlot(ctx context.Context) (func(), error) {
	t := time.NewTimer(s.cfg.ExportQueueWait)
	defer t.Stop()
	select {
	case s.exports <- struct{}{}:
		return func() { <-s.exports }, nil
	case <-t.C:
		return nil, errBusy(fmt.Sprintf("%d exports are running, the most this server streams at once; "+
			"try again shortly", s.cfg.MaxExports))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// admin wraps a handler with the admin-token check.
func (s *Server) admin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.authorize(r, s.cfg.AdminTokens); err != nil {
			if promo.Is(err, promo.EUnauthorized) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="promocodes"`)
			}
			s.writeError(w, r, err)
			return
		}
		h(w, r)
	})
}

func (s *Server) authorize(r *http.Request, tokens []string) error {
	if s.cfg.Open {
		return nil
	}
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return promo.Errorf(promo.EUnauthorized, "a bearer token is required")
	}
	if knownToken(tokens, token) {
		return nil
	}
	// A token of another role is known but not allowed here (403); any other
	// token is no credential at all (401), so a typo is not told apart from
	// a missing token by anything but the message.
	if knownToken(s.cfg.AdminTokens, token) || knownToken(s.cfg.RedeemTokens, token) {
		return promo.Errorf(promo.EForbidden, "this token's role may not do that")
	}
	return promo.Errorf(promo.EUnauthorized, "the bearer token is not valid")
}

// knownToken compares token with each of tokens in constant time.
func knownToken(tokens []string, token string) bool {
	ok := false
	for _, t := range tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			ok = true
		}
	}
	return ok
}

// noRedeemer stands in for a Redeemer when Routes lists the code endpoints
// (all of them: the routes never depend on what else a Redeemer is); its
// methods are never called.
type noRedeemer struct{ Redeemer }
