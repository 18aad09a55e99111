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
