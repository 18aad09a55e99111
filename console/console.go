// Package console is the admin console: server-rendered pages (html/template,
// embedded with go:embed) for promotion admins and SREs, served by the API
// process under /console. It calls the API through the typed client
// (pkg/client) over the API's handler in-process (client.InProcess, no
// network), with the signed-in admin's token, so every create, read, export
// and lifecycle action (deactivate, cancel, top-up, revoke, delete:
// lifecycle.go) goes through the API's own validation, authorisation and
// audit log; it adds sessions, CSRF
// protection, the format preview (from
// pkg/codes) and the operations page (dead-letter inspection and replay, from
// shovel's tools).
//
// Pages read without JavaScript; a small script (static/console.js, no
// framework, no CDN) adds live progress and the live preview.
//
// Concurrency: a Console is an http.Handler and safe for concurrent use.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/shovel"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config tunes the console.
type Config struct {
	// AdminTokens are the tokens an admin signs in with (the API's).
	AdminTokens []string
	// Open serves the console without sign-in (dev without tokens).
	Open bool
	// InsecureCookies drops the Secure flag of the session cookie, for
	// plain-HTTP development only.
	InsecureCookies bool
	// MaxDensity is codes.maxDensity, for the preview (default codes.DefaultMaxDensity).
	MaxDensity float64
	// SessionTTL is how long a sign-in lasts (default 12h).
	SessionTTL time.Duration
	// Version is shown in the footer.
	Version string
}

// Batches lists a promotion's incomplete batches (with their last error).
type Batches interface {
	IncompleteBatches(ctx context.Context, promotionID int64) ([]promo.Batch, error)
}

// Ops is what the operations page needs: the Kafka client and producer of
// the SRE tools and the topic names. Nil fields disable the page's parts.
type Ops struct {
	Client        shovel.Client
	Publisher     shovel.Publisher
	DeadTopic     string
	BatchesTopic  string
	ShovelHistory *shovel.History // the shovel's last cycles when it runs in this process
}

// Console serves /console.
type Console struct {
	cfg     Config
	api     *client.Client // the API's handler, in-process, without a token
	batches Batches
	ops     Ops
	log     *zap.Logger
	pages   map[string]*template.Template
	mux     *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session

	previewKey []byte // random: preview samples are never real codes
}

type session struct {
	token   string // the admin token signed in with ("" when open)
	csrf    string
	expires time.Time
	flash   string              // shown once by the next page (after a redirect)
	used    map[string]struct{} // nonces of forms already acted on
}

const (
	sessionCookie = "promocodes_session"
	preCSRFCookie = "promocodes_signin_csrf"
	// Prefix is where the console lives.
	Prefix = "/console"
)

// New builds the console on api (the API's http.Handler).
func New(cfg Config, api http.Handler, batches Batches, ops Ops, log *zap.Logger) (*Console, error) {
	if !cfg.Open && len(cfg.AdminTokens) == 0 {
		return nil, errors.New("console: admin tokens are required unless open")
	}
	if cfg.MaxDensity == 0 {
		cfg.MaxDensity = codes.DefaultMaxDensity
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	ac, err := client.New(apiHost, "", client.WithHTTPClient(&http.Client{Transport: client.InProcess(api)}),
		client.WithUserAgent("promocodes-console"))
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, api: ac, batches: batches, ops: ops, log: log, mux: http.NewServeMux(),
		sessions: map[string]*session{}, previewKey: make([]byte, codes.MinSecretLen)}
	_, _ = rand.Read(c.previewKey)
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /console/signin", c.signinPage)
	c.mux.HandleFunc("POST /console/signin", c.signin)
	c.mux.Handle("POST /console/signout", c.auth(c.signout))
	c.mux.Handle("GET /console/{$}", c.auth(c.listPage))
	c.mux.Handle("GET /console/rows", c.auth(c.listRows))
	c.mux.Handle("GET /console/new", c.auth(c.newPage))
	c.mux.Handle("GET /console/preview", c.auth(c.previewFragment))
	c.mux.Handle("POST /console/new", c.auth(c.create))
	c.mux.Handle("GET /console/promotions/{id}", c.auth(c.promotionPage))
	c.mux.Handle("GET /console/promotions/{id}/progress", c.auth(c.progress))
	c.mux.Handle("GET /console/promotions/{id}/codes.csv", c.auth(c.export))
	c.mux.Handle("POST /console/promotions/{id}/active", c.auth(c.setActive))
	c.mux.Handle("POST /console/promotions/{id}/cancel", c.auth(c.cancelGeneration))
	c.mux.Handle("POST /console/promotions/{id}/topups", c.auth(c.topUp))
	c.mux.Handle("POST /console/promotions/{id}/revoke", c.auth(c.revoke))
	c.mux.Handle("GET /console/promotions/{id}/delete", c.auth(c.deletePage))
	c.mux.Handle("POST /console/promotions/{id}/delete", c.auth(c.deletePromotion))
	c.mux.Handle("GET /console/ops", c.auth(c.opsPage))
	c.mux.Handle("POST /console/ops/replay", c.auth(c.replay))
	return c, nil
}

// Mount serves the console under /console beside api, and redirects / to
// it; every other path goes to api.
func Mount(api http.Handler, c *Console) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/console/", c)
	mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusFound))
	mux.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusFound))
	mux.Handle("/", api)
	return mux
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// ---- sessions and CSRF ----

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *Console) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge, HttpOnly: true,
		Secure: !c.cfg.InsecureCookies, SameSite: http.SameSiteStrictMode}
}

func (c *Console) newSession(w http.ResponseWriter, token string) *session {
	s := &session{token: token, csrf: randomToken(), expires: time.Now().Add(c.cfg.SessionTTL)}
	id := randomToken()
	c.mu.Lock()
	now := time.Now()
	for k, old := range c.sessions { // expired sessions go when a new one comes
		if now.After(old.expires) {
			delete(c.sessions, k)
		}
	}
	c.sessions[id] = s
	c.mu.Unlock()
	http.SetCookie(w, c.cookie(sessionCookie, id, int(c.cfg.SessionTTL.Seconds())))
	return s
}

func (c *Console) session(r *http.Request) (string, *session) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[ck.Value]
	if !ok || time.Now().After(s.expires) {
		delete(c.sessions, ck.Value)
		return "", nil
	}
	return ck.Value, s
}

type sessionKey struct{}

func sessionOf(r *http.Request) *session { return r.Context().Value(sessionKey{}).(*session) }

// auth requires a session (created on the fly when open) and, for every
// POST, the session's CSRF token in the form and a same-origin request.
func (c *Console) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, s := c.session(r)
		if s == nil {
			if !c.cfg.Open {
				if r.Method != http.MethodGet {
					http.Error(w, "sign in first", http.StatusForbidden)
					return
				}
				http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s = c.newSession(w, "")
		}
		if r.Method == http.MethodPost && !c.checkCSRF(r, s.csrf) {
			http.Error(w, "invalid or missing CSRF token; reload the page and try again", http.StatusForbidden)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

func (c *Console) checkCSRF(r *http.Request, want string) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Open {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	pre := randomToken()
	http.SetCookie(w, c.cookie(preCSRFCookie, pre, 600))
	c.render(w, r, "signin", map[string]any{"CSRF": pre, "Next": safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(preCSRFCookie)
	if err != nil || !c.checkCSRF(r, ck.Value) {
		http.Error(w, "invalid or missing CSRF token; reload the sign-in page", http.StatusForbidden)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	ok := false
	for _, t := range c.cfg.AdminTokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			ok = true
		}
	}
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		pre := randomToken()
		http.SetCookie(w, c.cookie(preCSRFCookie, pre, 600))
		c.render(w, r, "signin", map[string]any{"CSRF": pre, "Error": "That token is not an admin token.",
			"Next": safeNext(r.PostFormValue("next"))})
		return
	}
	http.SetCookie(w, c.cookie(preCSRFCookie, "", -1))
	c.newSession(w, token)
	c.log.Info("console sign-in", zap.String("remote", r.RemoteAddr))
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// safeNext keeps redirects inside the console.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/console/") && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return next
	}
	return "/console/"
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request) {
	if id, _ := c.session(r); id != "" {
		c.mu.Lock()
		delete(c.sessions, id)
		c.mu.Unlock()
	}
	http.SetCookie(w, c.cookie(sessionCookie, "", -1))
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}

// ---- the API, in-process ----

// apiHost names the API in the URLs of in-process calls (no network: the
// transport hands each request to the API's handler).
const apiHost = "http://api.in-process"

// apiFor is the API client acting for r: the signed-in admin's token, and a
// context carrying the browser's address (the API counts failed look-ups
// against it) that ends with r.
func (c *Console) apiFor(r *http.Request) (*client.Client, context.Context) {
	token := ""
	if s, ok := r.Context().Value(sessionKey{}).(*session); ok {
		token = s.token
	}
	return c.api.WithToken(token), client.WithClientAddr(r.Context(), r.RemoteAddr)
}

// apiStatus is the status the console answers for a failed API call: the
// API's own for a refusal, 502 for anything else.
func apiStatus(err error) int {
	var p *client.ProblemError
	if errors.As(err, &p) && p.Status >= 400 {
		return p.Status
	}
	return http.StatusBadGateway
}

// apiMessage is what a failed API call says to an admin: the refusal's
// detail and each field's message, or the error.
func apiMessage(err error) string {
	var p *client.ProblemError
	if !errors.As(err, &p) {
		return err.Error()
	}
	msg := p.Detail
	if msg == "" {
		msg = p.Title
	}
	for _, e := range p.Fields {
		if e.Field != "" {
			msg += "; " + e.Field + ": " + e.Message
		} else {
			msg += "; " + e.Message
		}
	}
	return strings.TrimPrefix(msg, "; ")
}
