// Package apitest keeps the OpenAPI document true: Conform wraps a test
// server's handler so that every response a test receives, errors included,
// is validated against the document the API serves (status declared, media
// type declared, body against its schema, declared headers), and every
// request the API accepted (2xx) against the operation's parameters and
// request body: the document may be neither stricter than the handlers nor
// describe answers they do not give. With pb33f/libopenapi-validator. The API tests and the redemption tests wrap
// their servers in it, so the document cannot drift from the handlers
// without a test failing. For tests only.
package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/wire"
)

var (
	once sync.Once
	v    validator.Validator
	err  error
	mu   sync.Mutex // the validator's caches are not documented as safe for concurrent use
)

// Validator returns the validator of the served document, built once.
func Validator(t testing.TB) validator.Validator {
	t.Helper()
	once.Do(func() {
		doc, e := libopenapi.NewDocument(api.OpenAPI())
		if e != nil {
			err = e
			return
		}
		// Security is the server's configuration (Open in dev), tested with it.
		val, errs := validator.NewValidator(doc, config.WithoutSecurityValidation())
		if len(errs) > 0 {
			err = errors.Join(errs...)
			return
		}
		v = val
	})
	if err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	return v
}

// Conform serves h and validates each response against the OpenAPI
// document, failing t (t.Errorf) on any mismatch. Responses are buffered,
// then passed on unchanged; an aborted stream (http.ErrAbortHandler) is
// passed on without validation.
func Conform(t testing.TB, h http.Handler) http.Handler {
	val := Validator(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The handler reads the body through a copy of r: net/http looks at
		// the original request's Body to decide whether to drain it after
		// the handler (it must not, for a body refused before it was sent).
		reqBody := &cappedBuffer{max: maxRequestCopy}
		served := r
		if r.Body != nil && r.Body != http.NoBody {
			served = r.WithContext(r.Context())
			served.Body = struct {
				io.Reader
				io.Closer
			}{io.TeeReader(r.Body, reqBody), r.Body}
		}
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil {
					copyResponse(w, rec)
					panic(p)
				}
			}()
			h.ServeHTTP(rec, served)
		}()
		res := rec.Result()
		res.Request = r
		body := rec.Body.Bytes()
		if loc := res.Header.Get("Location"); loc != "" && (res.StatusCode == http.StatusMovedPermanently ||
			res.StatusCode == http.StatusTemporaryRedirect || res.StatusCode == http.StatusPermanentRedirect) {
			// net/http's path cleaning (a double slash, a dot segment): not an API answer.
			copyResponse(w, rec)
			return
		}
		if status := res.StatusCode; status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			if !documented(val, r) {
				// No operation to check against: a route the API does not
				// serve. It must still be a problem document.
				checkProblem(t, r, res, body)
				copyResponse(w, rec)
				return
			}
		}
		if res.StatusCode < 300 && !reqBody.over {
			checkRequest(t, val, r, reqBody.Bytes())
		}
		mu.Lock()
		ok, verrs := val.ValidateHttpResponse(r, res)
		mu.Unlock()
		if !ok {
			var msgs []string
			for _, e := range verrs {
				msg := e.Message + ": " + e.Reason
				for _, se := range e.SchemaValidationErrors {
					msg += " [" + se.FieldPath + ": " + se.Reason + "]"
				}
				msgs = append(msgs, msg)
			}
			t.Errorf("OpenAPI: %s %s → %d %s does not conform:\n  %s\n  body: %.300s", r.Method, r.URL.Path,
				res.StatusCode, res.Header.Get("Content-Type"), strings.Join(msgs, "\n  "), body)
		}
		copyResponse(w, rec)
	})
}

// maxRequestCopy bounds the copy of a request body kept for its check (an
// accepted request is small; the copy must not swell the tests that watch
// the process's memory while they send 1 MiB bodies).
const maxRequestCopy = 64 << 10

// cappedBuffer keeps the first max bytes written to it; over says more came.
type cappedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// checkRequest validates a request the API accepted (its body as read by
// the handler) against the document's operation.
func checkRequest(t testing.TB, val validator.Validator, r *http.Request, body []byte) {
	req := r.Clone(r.Context())
	// The API reads an empty query parameter (?status=) as an absent one.
	q := req.URL.Query()
	for k, vs := range q {
		if len(vs) == 1 && vs[0] == "" {
			q.Del(k)
		}
	}
	req.URL.RawQuery = q.Encode()
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	mu.Lock()
	ok, verrs := val.ValidateHttpRequest(req)
	mu.Unlock()
	if ok {
		return
	}
	var msgs []string
	for _, e := range verrs {
		msg := e.Message + ": " + e.Reason
		for _, se := range e.SchemaValidationErrors {
			msg += " [" + se.FieldPath + ": " + se.Reason + "]"
		}
		msgs = append(msgs, msg)
	}
	t.Errorf("OpenAPI: request %s %s was accepted but does not conform:\n  %s\n  body: %.300s", r.Method, r.URL.String(),
		strings.Join(msgs, "\n  "), body)
}

// documented reports whether the document has an operation for r's method and path.
func documented(val validator.Validator, r *http.Request) bool {
	mu.Lock()
	defer mu.Unlock()
	probe := httptest.NewRecorder()
	probe.WriteHeader(http.StatusTeapot)
	_, errs := val.ValidateHttpResponse(r, probe.Result())
	for _, e := range errs {
		if e.ValidationType == "path" || strings.Contains(e.Message, "not found") && !strings.Contains(e.Message, "418") {
			return false
		}
	}
	return true
}

func checkProblem(t testing.TB, r *http.Request, res *http.Response, body []byte) {
	var p wire.Problem
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("OpenAPI: %s %s → %d with Content-Type %q, want a problem document", r.Method, r.URL.Path, res.StatusCode, ct)
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Status != res.StatusCode || p.Type == "" || p.Title == "" {
		t.Errorf("OpenAPI: %s %s → %d body %s is not a problem document", r.Method, r.URL.Path, res.StatusCode, body)
	}
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}
