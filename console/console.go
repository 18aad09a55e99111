// Package console is the admin console: server-rendered pages (html/template,
// embedded with go:embed) for promotion admins and SREs, served by the API
// process under /console. It calls the API through the typed client
// (pkg/client) over the API's handler in-process (client.InProcess, no
// network), with the signed-in admin's token, so every create, read, export
// and lifecycle action (deactivate, cancel, top-up, revoke, delete:
// lifecycle.go) goes through the API's own validation, authorisation and
// audit log; it adds sessions, sign-in throttling and cross-origin
// protection (signin.go), the format preview (from pkg/codes), the
// analytics (analytics.go: the API's stats of one or several promotions)
// and the operations pages (ops.go: consumer lag, dead-letter inspection
// and replay from shovel's tools, the shovel, a topic browser).
//
// Pages read without JavaScript; a small script (static/console.js, no
// framework, no CDN) adds live progress and the live preview, and
// static/charts.js draws the charts with uPlot (vendored, static/vendor).
//
// Concurrency: a Console is an http.Handler and safe for concurrent use.
package console

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
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
	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/throttle"
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
	// SignInAttempts is how many failed sign-ins one client address may
	// make in any SignInWindow (default 10 in 15m: a burst of half, the rest
	// spread over the window); past it the sign-in page answers 429 with
	// Retry-After, for that address only.
	SignInAttempts int
	SignInWindow   time.Duration
	// ClientAddr says which client a request comes from, for the sign-in
	// limit and for the API's count of failed code look-ups: the API's
	// reading of http.trustedProxies (api.Server.ClientAddr), so that behind
	// a reverse proxy each browser counts for itself. Nil: the connection's
	// peer.
	ClientAddr func(*http.Request) string
}

func (c *Config) setDefaults() {
	if c.MaxDensity == 0 {
		c.MaxDensity = codes.DefaultMaxDensity
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.SignInAttempts == 0 {
		c.SignInAttempts = 10
	}
	if c.SignInWindow == 0 {
		c.SignInWindow = 15 * time.Minute
	}
}

// Validate checks the configuration as given (New fills in the defaults of
// zero fields first), naming each field by its key: "adminTokens",
// "signInAttempts".
func (c Config) Validate() error {
	var errs configkey.List
	if !c.Open && len(c.AdminTokens) == 0 {
		errs.Add("adminTokens", "required unless the console is open")
	}
	if c.MaxDensity <= 0 || c.MaxDensity > 1 {
		errs.Add("maxDensity", "must be in (0, 1], got %g", c.MaxDensity)
	}
	if c.SessionTTL <= 0 {
		errs.Add("sessionTTL", "must be positive, got %s", c.SessionTTL)
	}
	if c.SignInAttempts < 1 {
		errs.Add("signInAttempts", "must be at least 1 per window, got %d", c.SignInAttempts)
	}
	if c.SignInWindow < time.Second {
		errs.Add("signInWindow", "must be at least 1s, got %s", c.SignInWindow)
	}
	return errs.Err()
}

// Batches lists a promotion's incomplete batches (with their last error).
type Batches interface {
	IncompleteBatches(ctx context.Context, promotionID int64) ([]promo.Batch, error)
}

// Ops is what the operations pages need (ops.go): the Kafka client and
// producer of the SRE tools, the topic names and consumer groups. Nil or
// empty fields leave the pages' parts out.
type Ops struct {
	Client           OpsClient
	Publisher        shovel.Publisher
	DeadTopic        string
	BatchesTopic     string
	RetryTopic       string
	ErrorTopic       string
	RedemptionsTopic string
	GeneratorGroup   string          // the generators' consumer group (batches and retry topics)
	ShovelGroup      string          // the shovel's group (error topic)
	ShovelHistory    *shovel.History // the shovel's last cycles when it runs in this process
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
	swept    time.Time                   // the last sweep of expired sessions
	signins  *throttle.Limiter           // failed sign-ins per client address
	origins  *http.CrossOriginProtection // refuses cross-origin forms

	previewKey []byte // random: preview samples are never real codes
}

const (
	sessionCookie = "promocodes_session"
	// Prefix is where the console lives.
	Prefix = "/console"
)

// New builds the console on api (the API's http.Handler).
func New(cfg Config, api http.Handler, batches Batches, ops Ops, log *zap.Logger) (*Console, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	ac, err := client.New(apiHost, "", client.WithHTTPClient(&http.Client{Transport: client.InProcess(api)}),
		client.WithUserAgent("promocodes-console"))
	if err != nil {
		return nil, err
	}
	signins, err := newSignInLimiter(cfg)
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, api: ac, batches: batches, ops: ops, log: log, mux: http.NewServeMux(),
		sessions: map[string]*session{}, previewKey: make([]byte, codes.MinSecretLen), signins: signins,
		origins: http.NewCrossOriginProtection()}
	c.origins.SetDenyHandler(http.HandlerFunc(c.crossOrigin))
	_, _ = rand.Read(c.previewKey)
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	c.mux.HandleFunc("GET /console/static/{file...}", c.static)
	c.mux.HandleFunc("GET /console/signin", c.signinPage)
	c.mux.HandleFunc("POST /console/signin", c.signin)
	c.mux.Handle("POST /console/signout", c.auth(c.signout))
	c.mux.Handle("GET /console/{$}", c.auth(c.listPage))
	c.mux.Handle("GET /console/rows", c.auth(c.listRows))
	c.mux.Handle("GET /console/new", c.auth(c.newPage))
	c.mux.Handle("GET /console/preview", c.auth(c.previewFragment))
	c.mux.Handle("POST /console/new", c.auth(c.create))
	c.mux.Handle("GET /console/promotions/{id}", c.auth(c.promotionPage))
	c.mux.Handle("GET /console/promotions/{id}/live", c.auth(c.live))
	c.mux.Handle("GET /console/promotions/{id}/codes.csv", c.auth(c.export))
	c.mux.Handle("POST /console/promotions/{id}/active", c.auth(c.setActive))
	c.mux.Handle("GET /console/promotions/{id}/cancel", c.auth(c.cancelPage))
	c.mux.Handle("POST /console/promotions/{id}/cancel", c.auth(c.cancelGeneration))
	c.mux.Handle("GET /console/promotions/{id}/edit", c.auth(c.editPage))
	c.mux.Handle("POST /console/promotions/{id}/edit", c.auth(c.editPromotion))
	c.mux.Handle("POST /console/promotions/{id}/topups", c.auth(c.topUp))
	c.mux.Handle("POST /console/promotions/{id}/revoke", c.auth(c.revoke))
	c.mux.Handle("POST /console/promotions/{id}/issue", c.auth(c.issue))
	c.mux.Handle("GET /console/promotions/{id}/delete", c.auth(c.deletePage))
	c.mux.Handle("POST /console/promotions/{id}/delete", c.auth(c.deletePromotion))
	c.mux.Handle("GET /console/analytics", c.auth(c.analyticsPage))
	c.mux.Handle("GET /console/ops", c.auth(c.opsPage))
	c.mux.Handle("POST /console/ops/replay", c.auth(c.replay))
	c.mux.Handle("GET /console/ops/topics", c.auth(c.topicsPage))
	c.recordRoutes()
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
	c.origins.Handler(http.HandlerFunc(c.route)).ServeHTTP(w, r)
}

// route serves r with its page; a path the console has no page for is an
// HTML page too (404, or 405 with Allow), never the mux's plain text.
func (c *Console) route(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery != "" {
		// The pages read r.URL.Query(), which drops a pair it cannot parse:
		// a filter in it would be lost without a word.
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("the address's query is not well formed (%v)", err))
			return
		}
	}
	if _, pattern := c.mux.Handler(r); pattern != "" {
		c.mux.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := c.mux.Handler(probe); pattern != "" && m != r.Method {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		c.fail(w, r, http.StatusMethodNotAllowed, fmt.Errorf("%s is not something this page takes (it takes %s)",
			r.Method, strings.Join(allow, ", ")))
		return
	}
	c.fail(w, r, http.StatusNotFound, fmt.Errorf("there is no console page at %s", r.URL.Path))
}

// static serves the embedded script and style sheet.
func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if _, err := fs.Stat(staticFS, "static/"+name); err != nil || !fs.ValidPath(name) {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("there is no console file %s", name))
		return
	}
	static, _ := fs.Sub(staticFS, "static")
	http.ServeFileFS(w, r, static, name)
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
	return c.api.WithToken(token), client.WithClientAddr(r.Context(), c.remote(r))
}

// remote is the client r comes from: Config.ClientAddr's answer, else the
// connection's peer.
func (c *Console) remote(r *http.Request) string {
	if c.cfg.ClientAddr != nil {
		if a := c.cfg.ClientAddr(r); a != "" {
			return a
		}
	}
	return r.RemoteAddr
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

// asProblem is the API's refusal in err, if it is one.
func asProblem(err error) (*client.ProblemError, bool) {
	var p *client.ProblemError
	ok := errors.As(err, &p)
	return p, ok
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
	for _, e := range p.Errors {
		if e.Field != "" {
			msg += "; " + e.Field + ": " + e.Message
		} else {
			msg += "; " + e.Message
		}
	}
	return strings.TrimPrefix(msg, "; ")
}
