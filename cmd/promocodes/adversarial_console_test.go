//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
)

// An attacker guesses the console's admin token from one address against
// the real API process: 300 wrong tokens, 16 at a time. The console counts
// every attempt per client address, so exactly its limit (10 per 15 min)
// is answered 401 and the rest 429 with Retry-After and a page that says
// why; a genuine admin from another address (127.0.0.2) still signs in.
// The database plays no part (the limiter is in the API process's memory):
// the case runs once, on the PostgreSQL stack.
func TestAdversarialConsoleSignInThrottle(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	s.startAPI()

	signIn := func(c *http.Client, token string) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodPost, s.apiURL+"/console/signin",
			strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("sign-in: %v", err)
			return 0, nil, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	attacker := &http.Client{CheckRedirect: noRedirect}

	const attempts, parallel = 300, 16
	var mu sync.Mutex
	counts := map[int]int{}
	var retryAfter, page string
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range jobs {
				status, h, body := signIn(attacker, fmt.Sprintf("guess-%03d", i))
				mu.Lock()
				counts[status]++
				if status == http.StatusTooManyRequests {
					retryAfter, page = h.Get("Retry-After"), body
				}
				mu.Unlock()
			}
		})
	}
	for i := range attempts {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	// signInAttempts 10 in any window: a burst of 5 answered, the rest throttled.
	if counts[http.StatusUnauthorized] != 5 || counts[http.StatusTooManyRequests] != attempts-5 {
		t.Errorf("%d wrong tokens from one address answered %v, want exactly 5×401 and %d×429", attempts, counts, attempts-5)
	}
	if retryAfter == "" || !strings.Contains(page, "Too many sign-in attempts") || !strings.Contains(page, "</html>") {
		t.Errorf("throttled answer: Retry-After %q, page:\n%.600s", retryAfter, page)
	}
	if status, _, _ := signIn(attacker, testToken); status != http.StatusTooManyRequests {
		t.Errorf("the admin token from the throttled address = %d, want 429 until the window ends", status)
	}

	// The genuine admin, from another address.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	admin := &http.Client{CheckRedirect: noRedirect, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
	status, h, _ := signIn(admin, testToken)
	if status != http.StatusSeeOther || h.Get("Location") != "/console/" {
		t.Errorf("the admin token from 127.0.0.2 = %d → %q, want 303 → /console/", status, h.Get("Location"))
	}
	var answered []string
	for code, n := range counts {
		answered = append(answered, fmt.Sprintf("%d×%d", n, code))
	}
	sort.Strings(answered)
	t.Logf("adversarial: %s [%s]: %s", "console sign-in throttle", "postgres",
		fmt.Sprintf("%d wrong tokens from 127.0.0.1 (%d at a time) answered %s (Retry-After %s s); the admin token from 127.0.0.2 answered %d",
			attempts, parallel, strings.Join(answered, ", "), retryAfter, status))
}

// Behind a reverse proxy (http.trustedProxies) every browser reaches the
// console from the proxy's address. A stranger spends the sign-in attempts
// through the proxy: only the client the proxy names for them is throttled,
// and an admin the proxy names with another address still signs in (they
// were all one bucket, so 10 wrong tokens from anyone locked every admin out
// for 15 minutes). From a peer that is not a trusted proxy a forged
// X-Forwarded-For counts for nothing: rotating it past the limit is still
// answered 429. The case runs once, on the PostgreSQL stack.
func TestAdversarialConsoleSignInBehindProxy(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	const proxyAddr = "127.0.0.2" // the proxy dials from here; direct clients from 127.0.0.1
	s.env = append(s.env, "PROMOCODES_HTTP_TRUSTEDPROXIES="+proxyAddr)
	s.startAPI()

	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	from := func(local string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		return &http.Client{CheckRedirect: noRedirect, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			}}}
	}
	proxy, direct := from(proxyAddr), from("127.0.0.1")
	signIn := func(c *http.Client, forwardedFor, token string) int {
		req, _ := http.NewRequest(http.MethodPost, s.apiURL+"/console/signin",
			strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", forwardedFor)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("sign-in: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	tally := func(m map[int]int) string {
		var parts []string
		for code, n := range m {
			parts = append(parts, fmt.Sprintf("%d×%d", n, code))
		}
		sort.Strings(parts)
		return strings.Join(parts, ", ")
	}

	const attempts = 15
	stranger := map[int]int{}
	for i := range attempts {
		stranger[signIn(proxy, "203.0.113.9", fmt.Sprintf("guess-%d", i))]++
	}
	// signInAttempts 10 in any window: a burst of 5 answered, the rest throttled.
	if stranger[http.StatusUnauthorized] != 5 || stranger[http.StatusTooManyRequests] != attempts-5 {
		t.Errorf("%d wrong tokens from 203.0.113.9 through the proxy answered %s, want 5×401 and %d×429",
			attempts, tally(stranger), attempts-5)
	}
	admin := signIn(proxy, "198.51.100.7", testToken)
	if admin != http.StatusSeeOther {
		t.Errorf("the admin token from 198.51.100.7 through the same proxy = %d, want 303 (the stranger's attempts locked them out)", admin)
	}
	forged := map[int]int{}
	for i := range attempts {
		forged[signIn(direct, fmt.Sprintf("192.0.2.%d", i+1), fmt.Sprintf("guess-%d", i))]++
	}
	if forged[http.StatusUnauthorized] != 5 || forged[http.StatusTooManyRequests] != attempts-5 {
		t.Errorf("%d wrong tokens from the untrusted 127.0.0.1, each with another forged X-Forwarded-For, answered %s, "+
			"want 5×401 and %d×429", attempts, tally(forged), attempts-5)
	}
	t.Logf("adversarial: %s [%s]: %s", "console sign-in behind a proxy", "postgres",
		fmt.Sprintf("%d wrong tokens for 203.0.113.9 via trusted proxy %s answered %s; the admin token for 198.51.100.7 via the same proxy %d; "+
			"%d wrong tokens from untrusted 127.0.0.1 with rotating forged X-Forwarded-For answered %s",
			attempts, proxyAddr, tally(stranger), admin, attempts, tally(forged)))
}
