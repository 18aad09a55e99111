// Package client is the typed HTTP client of the Promotion API (api/openapi.yaml,
// the published contract) that the admin CLI (`promocodes promotions ...`) and
// end-to-end tests use: create a promotion, read its status, wait for it to
// finish generating, and stream its codes as CSV.
//
// A *Client is safe for concurrent use by several goroutines; its options are
// fixed by New. Every call takes a ctx and returns when it is cancelled.
// Errors the server reports (application/problem+json) come back as
// *ProblemError; network faults come back wrapped as they are. IsTransient
// tells the two kinds apart for callers that retry.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Default timeouts. The http.Client itself has no total timeout, because an
// export of tens of millions of codes may legitimately stream for minutes;
// instead each phase is bounded: dialing, TLS, waiting for response headers,
// each non-streaming call as a whole, and a stalled export stream.
const (
	DefaultRequestTimeout = 30 * time.Second
	DefaultStallTimeout   = 2 * time.Minute
	DefaultRetryMaxTime   = 5 * time.Minute

	dialTimeout           = 10 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 60 * time.Second
	idleConnTimeout       = 90 * time.Second
)

// maxErrorBody bounds how much of an error response the client reads.
const maxErrorBody = 64 << 10

// Client talks to one Promotion API.
type Client struct {
	base           *url.URL
	token          string
	hc             *http.Client
	userAgent      string
	requestTimeout time.Duration
	stallTimeout   time.Duration
	retryMaxTime   time.Duration
	newBackOff     func() backoff.BackOff
	retryNotify    func(err error, next time.Duration)
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the http.Client (for tests, proxies, custom TLS).
// Give it no total Timeout, or exports will be cut off.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRequestTimeout bounds each non-streaming call (create, status); 0
// disables the bound. Default DefaultRequestTimeout.
func WithRequestTimeout(d time.Duration) Option { return func(c *Client) { c.requestTimeout = d } }

// WithStallTimeout aborts an export when no byte arrives for d; 0 disables
// it. Default DefaultStallTimeout.
func WithStallTimeout(d time.Duration) Option { return func(c *Client) { c.stallTimeout = d } }

// WithRetryBackOff sets how WaitPromotion spaces retries of transient errors.
// newBackOff is called once per retry sequence. Default: exponential from
// 500ms up to 10s.
func WithRetryBackOff(newBackOff func() backoff.BackOff) Option {
	return func(c *Client) { c.newBackOff = newBackOff }
}

// WithRetryMaxTime bounds how long WaitPromotion keeps retrying one poll
// through transient errors before it gives up; 0 retries until ctx ends.
// Default DefaultRetryMaxTime.
func WithRetryMaxTime(d time.Duration) Option { return func(c *Client) { c.retryMaxTime = d } }

// WithRetryNotify is called (from WaitPromotion's goroutine) with each
// transient error before the retry it schedules, so a CLI can say the API is
// unreachable instead of looking stuck.
func WithRetryNotify(fn func(err error, next time.Duration)) Option {
	return func(c *Client) { c.retryNotify = fn }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the API at baseURL (e.g. "http://127.0.0.1:8080",
// any path prefix is kept). token, when not empty, is sent as a bearer token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("api url %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api url %q: want http(s)://host[:port]", baseURL)
	}
	c := &Client{
		base:           u,
		token:          token,
		userAgent:      "promocodes-client",
		requestTimeout: DefaultRequestTimeout,
		stallTimeout:   DefaultStallTimeout,
		retryMaxTime:   DefaultRetryMaxTime,
		newBackOff: func() backoff.BackOff {
			b := backoff.NewExponentialBackOff()
			b.MaxInterval = 10 * time.Second
			return b
		},
	}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: newTransport()}
	}
	return c, nil
}

// WithToken returns a copy of c that sends token as its bearer token ("" for
// none): the console's calls on behalf of the admin signed in. The copy
// shares c's http.Client and options.
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.token = token
	return &cc
}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: responseHeaderTimeout,
		IdleConnTimeout:       idleConnTimeout,
		MaxIdleConnsPerHost:   4,
		ExpectContinueTimeout: time.Second,
	}
}

// URL returns the absolute URL of an API path such as "/v1/promotions/7",
// optionally with a query ("/v1/codes/X?userId=u"). The path is in escaped
// form: callers url.PathEscape each variable segment and url.QueryEscape
// each query value.
func (c *Client) URL(path string) string {
	u := *c.base
	path, query, _ := strings.Cut(path, "?")
	raw := c.base.EscapedPath() + path
	if p, err := url.PathUnescape(raw); err == nil {
		u.Path, u.RawPath = p, raw
	} else {
		u.Path, u.RawPath = c.base.Path+path, ""
	}
	u.RawQuery = query
	return u.String()
}

func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL(path), r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// doJSON sends a request and decodes a JSON answer into out, bounded by the
// request timeout. It returns the response (body closed) for its headers.
func (c *Client) doJSON(ctx context.Context, req *http.Request, out any) (*http.Response, []byte, error) {
	if c.requestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.requestTimeout)
		defer cancel()
		req = req.WithContext(ctx)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, nil, decodeProblem(resp)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, nil, fmt.Errorf("read response: %w", err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return resp, raw, fmt.Errorf("decode %d response: %w", resp.StatusCode, err)
	}
	return resp, raw, nil
}

// IsTransient reports whether err is worth retrying: the server could not be
// reached or the connection broke (refused, reset, timed out), or it answered
// 5xx, 408 or 429. Anything else (4xx, undecodable answers, a cancelled ctx)
// is permanent.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var p *ProblemError
	if errors.As(err, &p) {
		return p.Status >= 500 || p.Status == http.StatusRequestTimeout || p.Status == http.StatusTooManyRequests
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true // a per-request timeout or a connection closed mid-answer
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return false // a mistyped host does not heal by waiting
	}
	// Dial, read and write faults on the connection (refused, reset, broken
	// pipe) are *net.OpError. *url.Error is a net.Error too, so only its
	// Timeout is trusted: it also wraps permanent faults such as a bad
	// certificate.
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
