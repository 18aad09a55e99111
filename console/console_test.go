package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/console"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/promotion"
	"github.com/promocodes/promocodes/redemption"
)

const (
	adminToken = "console-test-admin-token"
	testSecret = "console-test-secret-0123456789abcdef"
)

// site is the API and the console on a real SQLite store, as the API
// process serves them.
type site struct {
	t       *testing.T
	srv     *httptest.Server
	store   *sqlite.Store
	console *console.Console
	svc     *redemption.Service
	c       *http.Client
}

func newSite(t *testing.T, open, insecure bool) *site {
	t.Helper()
	return newSiteWith(t, open, insecure, nil)
}

// newSiteWith serves the console on wrap(api) (nil: the API itself), for
// tests that change what the API answers the console.
func newSiteWith(t *testing.T, open, insecure bool, wrap func(http.Handler) http.Handler) *site {
	t.Helper()
	return newSiteOps(t, open, insecure, wrap, console.Ops{})
}

// newSiteOps is newSiteWith with the operations pages' Kafka parts.
func newSiteOps(t *testing.T, open, insecure bool, wrap func(http.Handler) http.Handler, ops console.Ops) *site {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	acfg := api.Config{Open: open}
	ccfg := console.Config{Open: open, InsecureCookies: insecure, Version: "test"}
	if !open {
		acfg.AdminTokens = []string{adminToken}
		ccfg.AdminTokens = acfg.AdminTokens
	}
	// The redemption service too, as the API process has it: the code and
	// lifecycle endpoints, and the background purger of deletions.
	svc, err := redemption.New(redemption.Config{GuessLimit: -1}, st, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	// And the totals roller (the list's redeemed counts), polling quickly.
	roller := redemption.NewRoller(st, 20*time.Millisecond, nil, log)
	ps, err := promotion.New(promotion.Config{Secret: []byte(testSecret), BatchCodeCount: 1000}, st, svc, log)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan struct{}, 3)
	go func() {
		defer func() { ran <- struct{}{} }()
		_ = ps.Run(rctx)
	}()
	go func() {
		defer func() { ran <- struct{}{} }()
		_ = svc.Run(rctx)
	}()
	go func() {
		defer func() { ran <- struct{}{} }()
		_ = roller.Run(rctx)
	}()
	t.Cleanup(func() {
		stop()
		<-ran
		<-ran
		<-ran
		svc.Close()
	})
	a, err := api.New(acfg, st, ps, nil, log, api.WithRedemption(svc))
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = a
	if wrap != nil {
		h = wrap(a)
	}
	c, err := console.New(ccfg, h, st, ops, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(console.Mount(a, c))
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	client := srv.Client()
	client.Jar = jar
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &site{t: t, srv: srv, store: st, console: c, svc: svc, c: client}
}

func (s *site) get(path string) (*http.Response, string) {
	s.t.Helper()
	resp, err := s.c.Get(s.srv.URL + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (s *site) post(path string, form url.Values, header http.Header) (*http.Response, string) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestSignInSessionCookieAndCrossOriginProtection(t *testing.T) {
	s := newSite(t, false, false)

	// / leads to the console, which wants a sign-in.
	if resp, _ := s.get("/"); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("GET / = %d → %q, want 302 → /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := s.get("/console/"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin") {
		t.Fatalf("GET /console/ signed out = %d → %q, want a redirect to the sign-in", resp.StatusCode, resp.Header.Get("Location"))
	}

	// The sign-in form refuses another site (login CSRF), and a wrong token.
	for name, h := range map[string]http.Header{"Origin": {"Origin": {"https://evil.example"}},
		"Sec-Fetch-Site": {"Sec-Fetch-Site": {"cross-site"}}} {
		resp, body := s.post("/console/signin", url.Values{"token": {adminToken}}, h)
		if resp.StatusCode != http.StatusForbidden || !isHTML(resp) || !strings.Contains(body, "another site") {
			t.Errorf("cross-site sign-in (%s) = %d %s, want 403 and an HTML page", name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for _, c := range resp.Cookies() {
			if c.Name == "promocodes_session" {
				t.Errorf("cross-site sign-in (%s) set a session", name)
			}
		}
	}
	if resp, _ := s.post("/console/signin", url.Values{"token": {"wrong"}}, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("sign-in with a wrong token = %d, want 401", resp.StatusCode)
	}
	resp, _ := s.post("/console/signin", url.Values{"token": {adminToken}, "next": {"//evil.example/"}},
		http.Header{"Origin": {s.srv.URL}, "Sec-Fetch-Site": {"same-origin"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("sign-in = %d → %q, want 303 → /console/ (an off-site next is ignored)", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "promocodes_session" {
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie set")
	}
	if !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteStrictMode || session.Path != "/console" {
		t.Errorf("session cookie = %+v, want HttpOnly, Secure, SameSite=Strict, Path=/console", session)
	}
	// httptest serves plain HTTP, so the client's jar will not send a Secure
	// cookie back: carry it by hand from here.
	hdr := http.Header{"Cookie": {"promocodes_session=" + session.Value}}
	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
		req.Header = hdr.Clone()
		resp, err := s.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := get("/console/new")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /console/new signed in = %d", resp.StatusCode)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP = %q, want scripts from the console only", csp)
	}
	form := url.Values{"kind": {"generated"}, "name": {"origin-check"}, "codeCount": {"1000"}, "charset": {"alnum"},
		"length": {"8"}, "checkChar": {"1"}, "maxUsagePerCode": {"1"}, "perUserLimit": {"1"}, "nonce": {nonceOf(t, page)}}

	// A form another site sends with the admin's cookie is refused, as a
	// page, and writes nothing.
	for name, tc := range map[string]http.Header{
		"cross-site Origin":         {"Origin": {"https://evil.example"}},
		"cross-site Sec-Fetch-Site": {"Sec-Fetch-Site": {"cross-site"}},
		"same-site Sec-Fetch-Site":  {"Sec-Fetch-Site": {"same-site"}, "Origin": {"https://other.example"}},
	} {
		h := hdr.Clone()
		for k, v := range tc {
			h[k] = v
		}
		resp, body := s.post("/console/new", form, h)
		if resp.StatusCode != http.StatusForbidden || !isHTML(resp) || !strings.Contains(body, "nothing was done") {
			t.Errorf("%s: POST /console/new = %d %s, want 403 and an HTML page", name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	h := hdr.Clone()
	h.Set("Origin", "https://evil.example")
	if resp, _ := s.post("/console/ops/replay", url.Values{"action": {"confirm"}}, h); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site replay = %d, want 403", resp.StatusCode)
	}
	if l, err := s.store.ListPromotions(context.Background(), promoFilter()); err != nil || len(l) != 0 {
		t.Fatalf("refused posts wrote %d promotions (%v)", len(l), err)
	}

	// From the console itself (as a browser marks it) the form works.
	h = hdr.Clone()
	h.Set("Origin", s.srv.URL)
	h.Set("Sec-Fetch-Site", "same-origin")
	resp, _ = s.post("/console/new", form, h)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/promotions/") {
		t.Fatalf("create through the form = %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The same form submitted twice (a double click) is one promotion.
	resp2, _ := s.post("/console/new", form, h)
	if resp2.Header.Get("Location") != resp.Header.Get("Location") {
		t.Errorf("resubmitted form → %q, first → %q; want the same promotion", resp2.Header.Get("Location"), resp.Header.Get("Location"))
	}
	// Readable without JavaScript: the list and the promotion are in the HTML.
	if _, page := get("/console/"); !strings.Contains(page, "origin-check") || !strings.Contains(page, "<progress") {
		t.Errorf("list page lacks the promotion or its progress bar")
	}
	if _, page := get(resp.Header.Get("Location")); !strings.Contains(page, "0 / 1,000 codes") {
		t.Errorf("promotion page lacks the summary:\n%.800s", page)
	}
	// Signing out ends the session; a form sent after that says so.
	if resp, _ := s.post("/console/signout", nil, h); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-out = %d", resp.StatusCode)
	}
	if resp, _ := get("/console/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out GET /console/ = %d, want a redirect to the sign-in", resp.StatusCode)
	}
	h.Set("Referer", s.srv.URL+"/console/new")
	resp, body := s.post("/console/new", form, h)
	if resp.StatusCode != http.StatusUnauthorized || !isHTML(resp) || !strings.Contains(body, "session has ended") ||
		!strings.Contains(body, `name="next" value="/console/new"`) {
		t.Errorf("form after sign-out = %d %s, want 401 and the sign-in page leading back:\n%.1500s", resp.StatusCode,
			resp.Header.Get("Content-Type"), body)
	}
}

var nonceField = regexp.MustCompile(`name="nonce" value="([^"]+)"`)

func nonceOf(t *testing.T, page string) string {
	t.Helper()
	m := nonceField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no nonce field in page:\n%.500s", page)
	}
	return m[1]
}

func isHTML(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html")
}

// csrfOrNothing is the sign-in form's CSRF field when the page has one (the
// console before cross-origin protection had one), else nothing.
func csrfOrNothing(page string) url.Values {
	if m := csrfField.FindStringSubmatch(page); m != nil {
		return url.Values{"csrf": {m[1]}}
	}
	return url.Values{}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// A second sign-in after a wrong token works from the page the wrong token
// answered (it failed with a plain-text 403 when a CSRF token of that page
// matched no cookie).
func TestSecondSignInAfterAWrongToken(t *testing.T) {
	s := newSite(t, false, true)
	_, page := s.get("/console/signin")
	f := csrfOrNothing(page)
	f.Set("token", "not-the-token")
	resp, page := s.post("/console/signin", f, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "not an admin token") {
		t.Fatalf("wrong token = %d:\n%.800s", resp.StatusCode, page)
	}
	f = csrfOrNothing(page)
	f.Set("token", adminToken)
	resp, page = s.post("/console/signin", f, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("second attempt with the right token = %d %s → %q, want 303 → /console/:\n%.500s", resp.StatusCode,
			resp.Header.Get("Content-Type"), resp.Header.Get("Location"), page)
	}
	if resp, _ := s.get("/console/"); resp.StatusCode != http.StatusOK {
		t.Errorf("signed in, GET /console/ = %d", resp.StatusCode)
	}
}

// signInFrom posts a sign-in to the console's handler as if from addr.
func (s *site) signInFrom(addr, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/console/signin", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	s.console.ServeHTTP(rec, req)
	return rec
}

// 300 wrong tokens from one address (limit 10 in any window: a burst of 5,
// then 5 more over the window): the first 5 are answered 401, the rest 429
// with Retry-After and a page that says why; the genuine token
// from that address waits too, and a genuine admin from another address
// signs in. An IPv6 address counts with its /64.
func TestSignInThrottledPerAddress(t *testing.T) {
	s := newSite(t, false, true)
	counts := map[int]int{}
	var last *httptest.ResponseRecorder
	for i := range 300 {
		last = s.signInFrom("203.0.113.7:"+strconv.Itoa(40000+i), fmt.Sprintf("guess-%d", i))
		counts[last.Code]++
	}
	if counts[http.StatusUnauthorized] != 5 || counts[http.StatusTooManyRequests] != 295 {
		t.Errorf("300 wrong tokens from one address answered %v, want 5×401 then 295×429", counts)
	}
	body := last.Body.String()
	if last.Header().Get("Retry-After") == "" || !strings.HasPrefix(last.Header().Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "Too many sign-in attempts") {
		t.Errorf("throttled answer: Retry-After %q, %s:\n%.800s", last.Header().Get("Retry-After"),
			last.Header().Get("Content-Type"), body)
	}
	if rec := s.signInFrom("203.0.113.7:5000", adminToken); rec.Code != http.StatusTooManyRequests {
		t.Errorf("the genuine token from the throttled address = %d, want 429", rec.Code)
	}
	if rec := s.signInFrom("198.51.100.2:5000", adminToken); rec.Code != http.StatusSeeOther {
		t.Errorf("a genuine admin from another address = %d, want 303", rec.Code)
	}
	for i := range 10 {
		s.signInFrom(fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1), "wrong")
	}
	if rec := s.signInFrom("[2001:db8:1:2:ffff::1]:443", adminToken); rec.Code != http.StatusTooManyRequests {
		t.Errorf("an address in the same IPv6 /64 = %d, want 429", rec.Code)
	}
	if rec := s.signInFrom("[2001:db8:1:3::1]:443", adminToken); rec.Code != http.StatusSeeOther {
		t.Errorf("an address in another IPv6 /64 = %d, want 303", rec.Code)
	}
}

// Every error the console answers is an HTML page: an unknown page, a
// method a page does not take, a missing static file, a refused form, an
// API refusal.
func TestConsoleErrorsAreHTMLPages(t *testing.T) {
	s := newSite(t, true, true)
	for _, tc := range []struct {
		method, path string
		header       http.Header
		status       int
	}{
		{http.MethodGet, "/console/no-such-page", nil, http.StatusNotFound},
		{http.MethodGet, "/console/static/no-such.js", nil, http.StatusNotFound},
		{http.MethodGet, "/console/promotions/not-an-id", nil, http.StatusNotFound},
		{http.MethodGet, "/console/promotions/999999", nil, http.StatusNotFound},
		{http.MethodGet, "/console/promotions/999999/codes.csv", nil, http.StatusNotFound},
		{http.MethodGet, "/console/rows?active=maybe", nil, http.StatusUnprocessableEntity},
		// A query the pages could not read whole: a filter in it would be lost
		// without a word (r.URL.Query() drops a bad pair).
		{http.MethodGet, "/console/analytics?name=%zz", nil, http.StatusBadRequest},
		{http.MethodGet, "/console/find?q=a;b", nil, http.StatusBadRequest},
		{http.MethodPost, "/console/promotions/1/live", nil, http.StatusMethodNotAllowed},
		{http.MethodPost, "/console/new", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
	} {
		var resp *http.Response
		var body string
		if tc.method == http.MethodGet {
			resp, body = s.get(tc.path)
		} else {
			resp, body = s.post(tc.path, url.Values{}, tc.header)
		}
		if resp.StatusCode != tc.status || !isHTML(resp) || !strings.Contains(body, "</html>") {
			t.Errorf("%s %s = %d %q, want %d and an HTML page:\n%.300s", tc.method, tc.path, resp.StatusCode,
				resp.Header.Get("Content-Type"), tc.status, body)
		}
	}
}

func TestPreviewRefusesTooShortAndNamesTheShortestLength(t *testing.T) {
	s := newSite(t, true, true)
	_, frag := s.get("/console/preview?kind=generated&codeCount=200000&charset=alnum&length=3&checkChar=1")
	if !strings.Contains(frag, `id="preview-error"`) || !strings.Contains(frag, "too short") {
		t.Errorf("length 3 preview = %s, want the format refusal", frag)
	}
	_, frag = s.get("/console/preview?kind=generated&codeCount=200000&charset=alnum&length=5&checkChar=1")
	if !strings.Contains(frag, `id="capacity-refusal"`) || !strings.Contains(frag, `<strong id="shortest">8</strong>`) {
		t.Errorf("length 5 preview = %s, want the capacity refusal naming length 8", frag)
	}
	_, frag = s.get("/console/preview?kind=generated&codeCount=200000&charset=alnum&length=10&checkChar=1&prefix=WNTR-&separator=-&groupSize=4")
	if !strings.Contains(frag, `id="capacity-ok"`) || !strings.Contains(frag, "<code>WNTR-") || strings.Count(frag, "<li>") != 5 {
		t.Errorf("length 10 preview = %s, want 5 samples and a fit", frag)
	}
	_, frag = s.get("/console/preview?kind=vanity&code=megadeth21")
	if !strings.Contains(frag, "MEGADETH21") {
		t.Errorf("vanity preview = %s", frag)
	}
	// Open (dev without tokens): no sign-in; the form's refusal is inline.
	form := url.Values{"kind": {"generated"}, "name": {"short"}, "codeCount": {"200000"},
		"charset": {"alnum"}, "length": {"5"}, "checkChar": {"1"}}
	resp, body := s.post("/console/new", form, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "shortest length that fits") &&
		!strings.Contains(body, "use a length of at least") && !strings.Contains(body, `id="shortest"`) {
		t.Errorf("too-short create = %d, body lacks the refusal:\n%.1500s", resp.StatusCode, body)
	}
}

func promoFilter() promo.ListFilter { return promo.ListFilter{} }

// Behind a trusted reverse proxy every browser arrives from the proxy's
// address: the console counts sign-ins against the client the API reads
// from the proxy's X-Forwarded-For (api.Server.ClientAddr), so a stranger
// who spends the attempts locks out only themselves; from an untrusted peer
// the header counts for nothing.
func TestSignInThrottleBehindATrustedProxy(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	ps, err := promotion.New(promotion.Config{Secret: []byte(testSecret)}, st, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Config{AdminTokens: []string{adminToken},
		TrustedProxies: []string{"10.0.0.0/8"}}, st, ps, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	c, err := console.New(console.Config{AdminTokens: []string{adminToken}, InsecureCookies: true, ClientAddr: a.ClientAddr},
		a, st, console.Ops{}, log)
	if err != nil {
		t.Fatal(err)
	}
	signIn := func(peer, forwardedFor, token string) int {
		req := httptest.NewRequest(http.MethodPost, "/console/signin", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", forwardedFor)
		req.RemoteAddr = peer
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range 12 {
		signIn("10.1.2.3:4000", "203.0.113.9", fmt.Sprintf("guess-%d", i))
	}
	if got := signIn("10.1.2.3:4000", "203.0.113.9", adminToken); got != http.StatusTooManyRequests {
		t.Errorf("the stranger's address through the proxy after 12 wrong tokens = %d, want 429", got)
	}
	if got := signIn("10.1.2.3:4001", "198.51.100.7", adminToken); got != http.StatusSeeOther {
		t.Errorf("an admin through the same proxy = %d, want 303: the stranger locked everyone behind the proxy out", got)
	}
	for i := range 12 {
		signIn("192.0.2.1:4000", fmt.Sprintf("198.51.100.%d", i+10), fmt.Sprintf("guess-%d", i))
	}
	if got := signIn("192.0.2.1:4000", "198.51.100.200", adminToken); got != http.StatusTooManyRequests {
		t.Errorf("an untrusted peer rotating forged X-Forwarded-For = %d, want 429", got)
	}
}

// A redirect target a form names stays inside the console: anything else,
// a dot segment (even escaped) or a control character included, leads to
// /console/.
func TestSafeNextStaysInTheConsole(t *testing.T) {
	for in, want := range map[string]string{
		"/console/promotions/1?user=a%2Fb": "/console/promotions/1?user=a%2Fb",
		"/console/users/a%2Fb":             "/console/users/a%2Fb",
		"//evil.example/":                  "/console/",
		"https://evil.example/console/":    "/console/",
		`/console/\evil.example`:           "/console/",
		"/console/\t/evil.example":         "/console/",
		"/console/\r\nSet-Cookie: x=1":     "/console/",
		"/console/../v1/promotions":        "/console/",
		"/console/%2e%2E/v1":               "/console/",
		"/console/./x":                     "/console/",
		"/console":                         "/console/",
	} {
		if got := console.SafeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// An open console (dev without tokens) keeps a session only for a browser
// that has something to carry to its next page (a flash after an action):
// each request without a cookie made one, kept for 12 hours, and every new
// one swept them all under the console's lock, so 32,000 requests from a
// script made each request take 5.7 ms and the memory grow.
func TestOpenConsoleKeepsNoSessionPerRequest(t *testing.T) {
	s := newSite(t, true, true)
	for range 5000 {
		rec := httptest.NewRecorder()
		s.console.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/preview?kind=vanity&code=ABC", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("preview = %d", rec.Code)
		}
	}
	if n := s.console.Sessions(); n != 0 {
		t.Errorf("5,000 requests without a cookie left %d sessions, want 0", n)
	}
	// An action's flash still reaches the next page of the browser that acted.
	id := s.createPromotion(`{"name":"flash","code":"FLASH42","maxUsagePerCode":2}`)
	page := s.actOK(id, "active", url.Values{"active": {"false"}}, "Deactivated")
	if !strings.Contains(page, `id="flash"`) {
		t.Errorf("the flash did not reach the next page")
	}
	if n := s.console.Sessions(); n != 1 {
		t.Errorf("after one browser's action the console holds %d sessions, want 1", n)
	}
}
