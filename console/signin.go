package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/throttle"
)

// Sessions, sign-in and cross-origin protection.
//
// A session is a random id in an HttpOnly, SameSite=Strict (and, outside
// dev, Secure) cookie that names the admin token signed in with; sessions
// live in this process's memory. Forms carry no token: every unsafe request
// (POST) passes http.CrossOriginProtection, which refuses a request that
// the browser marks as cross-site (Sec-Fetch-Site) or whose Origin is not
// this host, so another site cannot submit the console's forms; requests
// from non-browser clients (no such headers) pass, since they carry no
// session cookie of a browser. A refusal is an HTML page.
//
// Failed sign-ins are limited per client address (an IPv6 address by its
// /64, which one host usually owns whole): at most SignInAttempts in any
// SignInWindow, in bounded memory (pkg/throttle, the guess limiter's buckets).
// An attempt takes its token before the token is compared, so a burst of
// parallel attempts cannot slip past the count; a successful sign-in gives
// it back. The client address is the API's (Config.ClientAddr): behind a
// trusted reverse proxy, the one the proxy names, so that a stranger's
// attempts lock out only that stranger; a header from any other peer is
// ignored.

type session struct {
	token   string // the admin token signed in with ("" when open)
	expires time.Time
	flash   string // shown once by the next page (after a redirect)
	kept    bool   // stored, its id in the browser's cookie (an open console's may not be)
}

// signInKeys bounds the addresses the sign-in throttle remembers.
const signInKeys = 100_000

func newSignInLimiter(cfg Config) (*throttle.Limiter, error) {
	l, err := throttle.New(cfg.SignInWindow, signInKeys)
	if err != nil {
		return nil, fmt.Errorf("console sign-in limiter: %w", err)
	}
	return l, nil
}

// clientAddr is the key sign-in attempts are counted against: the remote
// host, an IPv6 one by its /64.
func clientAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	return throttle.AddrKey(host)
}

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
	s := &session{token: token, expires: time.Now().Add(c.cfg.SessionTTL)}
	c.keep(w, s)
	return s
}

// keep stores s under a new id and gives the browser its cookie. Expired
// sessions go when a new one comes, at most once a minute (a sweep reads
// every session under the lock).
func (c *Console) keep(w http.ResponseWriter, s *session) {
	id := randomToken()
	c.mu.Lock()
	now := time.Now()
	if now.Sub(c.swept) >= time.Minute {
		c.swept = now
		for k, old := range c.sessions {
			if now.After(old.expires) {
				delete(c.sessions, k)
			}
		}
	}
	s.kept = true
	c.sessions[id] = s
	c.mu.Unlock()
	http.SetCookie(w, c.cookie(sessionCookie, id, int(c.cfg.SessionTTL.Seconds())))
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

// auth requires a session (created on the fly when open). Without one a GET
// leads to the sign-in page; a form sent after the session ended shows the
// sign-in page with a word on what happened (nothing was done).
func (c *Console) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, s := c.session(r)
		if s == nil {
			if !c.cfg.Open {
				if r.Method != http.MethodGet {
					next := "/console/"
					if u, err := url.Parse(r.Referer()); err == nil && (u.Host == "" || u.Host == r.Host) {
						next = safeNext(u.RequestURI())
					}
					w.WriteHeader(http.StatusUnauthorized)
					c.render(w, r, "signin", map[string]any{"Next": next,
						"Error": "Your session has ended, so that form was not sent: sign in, then send it again."})
					return
				}
				http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			// Open: a session is kept only once it has something to carry
			// to the browser's next page (setFlash), so that requests
			// without a cookie leave nothing behind.
			s = &session{expires: time.Now().Add(c.cfg.SessionTTL)}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

// crossOrigin answers a form another site sent (http.CrossOriginProtection
// refused it): nothing was done.
func (c *Console) crossOrigin(w http.ResponseWriter, r *http.Request) {
	c.log.Warn("console: cross-origin request refused", zap.String("method", r.Method), zap.String("path", r.URL.Path),
		zap.String("origin", r.Header.Get("Origin")), zap.String("sec_fetch_site", r.Header.Get("Sec-Fetch-Site")))
	c.fail(w, r, http.StatusForbidden, fmt.Errorf("this form was sent from another site (%s), so it was refused and nothing was done; "+
		"open the console at its own address and send it from there", originOf(r)))
}

func originOf(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		return o
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return "Sec-Fetch-Site: " + s
	}
	return "unknown origin"
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Open {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	c.render(w, r, "signin", map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Open {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	addr := clientAddr(c.remote(r))
	adm, wait := c.signins.Admit([]throttle.Key{{ID: addr, Limit: c.cfg.SignInAttempts}}, time.Now())
	if wait > 0 {
		wait = max(wait.Round(time.Second), time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())))
		w.WriteHeader(http.StatusTooManyRequests)
		c.render(w, r, "signin", map[string]any{"Next": next, "Throttled": true,
			"Error": fmt.Sprintf("Too many sign-in attempts from your address (%s): at most %d failed in any %s. Try again in %s.",
				addr, c.cfg.SignInAttempts, c.cfg.SignInWindow, wait)})
		c.log.Warn("console sign-in throttled", zap.String("remote", addr))
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	known := false
	for _, t := range c.cfg.AdminTokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			known = true
		}
	}
	if !known {
		adm.Failed()
		w.WriteHeader(http.StatusUnauthorized)
		c.render(w, r, "signin", map[string]any{"Error": "That token is not an admin token.", "Next": next})
		return
	}
	adm.Settle(time.Now())
	c.newSession(w, token)
	c.log.Info("console sign-in", zap.String("remote", c.remote(r)))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// safeNext keeps redirects inside the console: a path under /console/
// (with its query), without backslashes, control characters or dot
// segments (a browser resolves "/console/../v1" or "%2e%2e" out of the
// console), else /console/.
func safeNext(next string) string {
	p, _, _ := strings.Cut(next, "?")
	if !strings.HasPrefix(p, "/console/") || strings.Contains(next, "\\") ||
		strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "/console/"
	}
	for _, seg := range strings.Split(p, "/") {
		if seg = strings.ToLower(strings.ReplaceAll(strings.ToLower(seg), "%2e", ".")); seg == "." || seg == ".." {
			return "/console/"
		}
	}
	return next
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
