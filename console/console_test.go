package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/console"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/redemption"
)

const adminToken = "console-test-admin-token"

// site is the API and the console on a real SQLite store, as the API
// process serves them.
type site struct {
	t     *testing.T
	srv   *httptest.Server
	store *sqlite.Store
	c     *http.Client
}

func newSite(t *testing.T, open, insecure bool) *site {
	t.Helper()
	return newSiteWith(t, open, insecure, nil)
}

// newSiteWith serves the console on wrap(api) (nil: the API itself), for
// tests that change what the API answers the console.
func newSiteWith(t *testing.T, open, insecure bool, wrap func(http.Handler) http.Handler) *site {
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
	acfg := api.Config{Secret: []byte("console-test-secret-0123456789abcdef"), BatchCodeCount: 1000, Open: open}
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
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan struct{}, 2)
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
		svc.Close()
	})
	a, err := api.New(acfg, st, nil, nil, log, api.WithRedemption(svc))
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = a
	if wrap != nil {
		h = wrap(a)
	}
	c, err := console.New(ccfg, h, st, console.Ops{}, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(console.Mount(a, c))
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	client := srv.Client()
	client.Jar = jar
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &site{t: t, srv: srv, store: st, c: client}
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

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in page:\n%.500s", page)
	}
	return m[1]
}

func TestSignInSessionCookieAndCSRF(t *testing.T) {
	s := newSite(t, false, false)

	// / leads to the console, which wants a sign-in.
	if resp, _ := s.get("/"); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("GET / = %d → %q, want 302 → /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := s.get("/console/"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin") {
		t.Fatalf("GET /console/ signed out = %d → %q, want a redirect to the sign-in", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page := s.get("/console/signin")
	csrf := csrfOf(t, page)

	// The sign-in form itself needs its CSRF token, and a right token.
	if resp, _ := s.post("/console/signin", url.Values{"token": {adminToken}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in without CSRF = %d, want 403", resp.StatusCode)
	}
	if resp, _ := s.post("/console/signin", url.Values{"token": {"wrong"}, "csrf": {csrf}}, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("sign-in with a wrong token = %d, want 401", resp.StatusCode)
	}
	_, page = s.get("/console/signin")
	resp, _ := s.post("/console/signin", url.Values{"token": {adminToken}, "csrf": {csrfOf(t, page)}, "next": {"//evil.example/"}}, nil)
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
	resp, page = get("/console/new")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /console/new signed in = %d", resp.StatusCode)
	}
	csrf = csrfOf(t, page)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP = %q, want scripts from the console only", csp)
	}
	form := url.Values{"kind": {"generated"}, "name": {"csrf-check"}, "codeCount": {"1000"}, "charset": {"alnum"},
		"length": {"8"}, "checkChar": {"1"}, "maxUsagePerCode": {"1"}, "perUserLimit": {"1"}, "nonce": {"n1"}}

	// Every form POST needs the session's token: none, a wrong one, or a
	// cross-site Origin are refused and write nothing.
	for name, tc := range map[string]struct {
		csrf, origin string
	}{"missing": {"", ""}, "wrong": {"x" + csrf, ""}, "cross-site": {csrf, "https://evil.example"}} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		if tc.csrf != "" {
			f.Set("csrf", tc.csrf)
		}
		h := hdr.Clone()
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		if resp, _ := s.post("/console/new", f, h); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s CSRF token: POST /console/new = %d, want 403", name, resp.StatusCode)
		}
	}
	if resp, _ := s.post("/console/ops/replay", url.Values{"action": {"confirm"}}, hdr); resp.StatusCode != http.StatusForbidden {
		t.Errorf("replay without CSRF = %d, want 403", resp.StatusCode)
	}
	if l, err := s.store.ListPromotions(context.Background(), promoFilter()); err != nil || len(l) != 0 {
		t.Fatalf("refused posts wrote %d promotions (%v)", len(l), err)
	}

	form.Set("csrf", csrf)
	h := hdr.Clone()
	h.Set("Origin", s.srv.URL)
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
	if _, page := get("/console/"); !strings.Contains(page, "csrf-check") || !strings.Contains(page, "<progress") {
		t.Errorf("list page lacks the promotion or its progress bar")
	}
	if _, page := get(resp.Header.Get("Location")); !strings.Contains(page, "0 / 1,000 codes") {
		t.Errorf("promotion page lacks the summary:\n%.800s", page)
	}
	// Signing out ends the session.
	_, page = get("/console/")
	if resp, _ := s.post("/console/signout", url.Values{"csrf": {csrfOf(t, page)}}, hdr); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-out = %d", resp.StatusCode)
	}
	if resp, _ := get("/console/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out GET /console/ = %d, want a redirect to the sign-in", resp.StatusCode)
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
	_, page := s.get("/console/new")
	form := url.Values{"csrf": {csrfOf(t, page)}, "kind": {"generated"}, "name": {"short"}, "codeCount": {"200000"},
		"charset": {"alnum"}, "length": {"5"}, "checkChar": {"1"}}
	resp, body := s.post("/console/new", form, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "shortest length that fits") &&
		!strings.Contains(body, "use a length of at least") && !strings.Contains(body, `id="shortest"`) {
		t.Errorf("too-short create = %d, body lacks the refusal:\n%.1500s", resp.StatusCode, body)
	}
}

func promoFilter() promo.ListFilter { return promo.ListFilter{} }
