package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Store is what the API needs from the database.
type Store interface {
	CreatePromotion(ctx context.Context, np promo.NewPromotion) (promo.Promotion, bool, error)
	GetPromotion(ctx context.Context, id int64) (promo.PromotionStatus, error)
	ExportCodes(ctx context.Context, id int64, fn func(code string) error) error
}

// Config tunes the API. Zero values take the defaults.
type Config struct {
	BatchCodeCount int64   // codes per batch event (default 50,000)
	MaxCodeCount   int64   // largest promotion accepted (default 100,000,000)
	MaxBodyBytes   int64   // largest request body (default 1 MiB)
	MaxDensity     float64 // issued/space limit per format (default codes.DefaultMaxDensity)
	Secret         []byte  // the code key: only its presence matters here (formats are checked with it)
	AdminTokens    []string
	RedeemTokens   []string
	// MaxMetadataBytes bounds a redemption's metadata object (default 1 KiB).
	MaxMetadataBytes int
	// Open serves without authentication (dev only); the caller logs that it does.
	Open bool
}

func (c *Config) setDefaults() {
	if c.BatchCodeCount == 0 {
		c.BatchCodeCount = 50_000
	}
	if c.MaxCodeCount == 0 {
		c.MaxCodeCount = 100_000_000
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxDensity == 0 {
		c.MaxDensity = codes.DefaultMaxDensity
	}
}

// Validate checks the configuration after defaults.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.BatchCodeCount < 1 || c.BatchCodeCount > 10_000_000:
		return fmt.Errorf("api.batchCodeCount: %d is outside 1..10,000,000", c.BatchCodeCount)
	case c.MaxCodeCount < 1:
		return fmt.Errorf("api.maxCodeCount: must be positive, got %d", c.MaxCodeCount)
	case c.MaxBodyBytes < 1024:
		return fmt.Errorf("api.maxBodyBytes: must be at least 1024, got %d", c.MaxBodyBytes)
	case c.MaxDensity <= 0 || c.MaxDensity > 1:
		return fmt.Errorf("codes.maxDensity: must be in (0, 1], got %g", c.MaxDensity)
	case len(c.Secret) < codes.MinSecretLen:
		return fmt.Errorf("codes.secret: must be at least %d bytes", codes.MinSecretLen)
	case !c.Open && len(c.AdminTokens) == 0:
		return errors.New("auth.adminTokens: at least one token is required outside dev mode")
	}
	return nil
}

// Server is the HTTP API.
type Server struct {
	cfg    Config
	store  Store
	outbox *Outbox
	log    *zap.Logger
	mux    *http.ServeMux
	now    func() time.Time
	// redeemer serves the code endpoints; nil leaves them out (WithRedemption).
	redeemer Redeemer
}

// New builds the Server. outbox may be nil (then creates only write the
// outbox rows and rely on the publisher's polling). ops serves /healthz,
// /readyz and /metrics (pkg/health); nil leaves them out.
func New(cfg Config, store Store, outbox *Outbox, ops http.Handler, log *zap.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, store: store, outbox: outbox, log: log, mux: http.NewServeMux(), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if s.redeemer != nil {
		s.redemptionRoutes()
	}
	s.mux.Handle("POST /v1/promotions", s.admin(s.createPromotion))
	s.mux.Handle("GET /v1/promotions/{id}", s.admin(s.getPromotion))
	s.mux.Handle("GET /v1/promotions/{id}/codes", s.admin(s.exportCodes))
	if ops != nil {
		s.mux.Handle("GET /healthz", ops)
		s.mux.Handle("GET /readyz", ops)
		s.mux.Handle("GET /metrics", ops)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, promo.Errorf(promo.ENotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

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
	for _, t := range tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			return nil
		}
	}
	return promo.Errorf(promo.EForbidden, "this token may not do that")
}
