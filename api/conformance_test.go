package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/health"
)

// The OpenAPI conformance check: newEnv wraps every test server in conform,
// so every response any API test receives, errors included, is validated
// against the document the server serves (status declared, media type
// declared, body matching its schema, declared headers). The document cannot
// drift from the handlers without some test failing.

var (
	specOnce      sync.Once
	specValidator validator.Validator
	specErr       error
	specMu        sync.Mutex // the validator's caches are not documented as safe for concurrent use
)

func openAPIValidator(t *testing.T) validator.Validator {
	t.Helper()
	specOnce.Do(func() {
		doc, err := libopenapi.NewDocument(api.OpenAPI())
		if err != nil {
			specErr = err
			return
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			specErr = errors.Join(errs...)
			return
		}
		specValidator = v
	})
	if specErr != nil {
		t.Fatalf("OpenAPI document: %v", specErr)
	}
	return specValidator
}

// conform serves h and validates each response against the OpenAPI
// document, failing t on any mismatch.
func conform(t *testing.T, h http.Handler) http.Handler {
	v := openAPIValidator(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil {
					// An aborted stream (http.ErrAbortHandler): nothing to validate; pass it on.
					copyResponse(w, rec)
					panic(p)
				}
			}()
			h.ServeHTTP(rec, r)
		}()
		res := rec.Result()
		res.Request = r
		body := rec.Body.Bytes()
		if status := res.StatusCode; status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			if !documented(v, r) {
				// No operation to check against: a route the API does not
				// serve. It must still be a problem document.
				checkProblem(t, r, res, body)
				copyResponse(w, rec)
				return
			}
		}
		specMu.Lock()
		ok, verrs := v.ValidateHttpResponse(r, res)
		specMu.Unlock()
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

// documented reports whether the document has an operation for r's method and path.
func documented(v validator.Validator, r *http.Request) bool {
	specMu.Lock()
	defer specMu.Unlock()
	probe := httptest.NewRecorder()
	probe.WriteHeader(http.StatusTeapot)
	_, errs := v.ValidateHttpResponse(r, probe.Result())
	for _, e := range errs {
		if e.ValidationType == "path" || strings.Contains(e.Message, "not found") && !strings.Contains(e.Message, "418") {
			return false
		}
	}
	return true
}

func checkProblem(t *testing.T, r *http.Request, res *http.Response, body []byte) {
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
	}
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

// TestOpenAPIDocument checks the document against the OpenAPI 3.1 schema,
// that the server serves it as JSON and YAML, and that /docs renders every
// operation.
func TestOpenAPIDocument(t *testing.T) {
	doc, err := libopenapi.NewDocument(api.OpenAPI())
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Errorf("OpenAPI version %q, want 3.1.0", v)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("NewValidator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("document: %s: %s", e.Message, e.Reason)
		}
	}

	e := newEnv(t, api.Config{AdminTokens: []string{"adm"}}, nil) // no token needed for these
	r := e.do(http.MethodGet, "/openapi.json", "", nil)
	if r.StatusCode != http.StatusOK || !bytes.Equal(r.body, api.OpenAPI()) {
		t.Errorf("GET /openapi.json = %d, %d bytes; want 200 and the document", r.StatusCode, len(r.body))
	}
	if r := e.do(http.MethodGet, "/openapi.yaml", "", nil); r.StatusCode != http.StatusOK || !bytes.Contains(r.body, []byte("openapi: 3.1.0")) {
		t.Errorf("GET /openapi.yaml = %d %.80s", r.StatusCode, r.body)
	}
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	decodeJSON(t, api.OpenAPI(), &spec)
	page := e.do(http.MethodGet, "/docs", "", nil)
	if page.StatusCode != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs = %d %s", page.StatusCode, page.Header.Get("Content-Type"))
	}
	for path, item := range spec.Paths {
		for m := range item {
			if m == "parameters" {
				continue
			}
			want := strings.ToUpper(m) + "</span> " + path
			if !strings.Contains(string(page.body), want) {
				t.Errorf("/docs does not list %s %s", strings.ToUpper(m), path)
			}
		}
	}
}

// TestEveryDocumentedOperationIsServed sends each documented operation to
// the server and requires an answer other than "no such route": the document
// lists nothing the API does not serve. Operations marked x-planned (built
// in parallel) are skipped by name.
func TestEveryDocumentedOperationIsServed(t *testing.T) {
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	decodeJSON(t, api.OpenAPI(), &spec)
	e := newEnv(t, api.Config{Open: true}, health.Handler(nil, nil, prometheus.NewRegistry()))
	for path, item := range spec.Paths {
		for m, raw := range item {
			if m == "parameters" {
				continue
			}
			var op struct {
				Planned string `json:"x-planned"`
			}
			_ = json.Unmarshal(raw, &op)
			if op.Planned != "" {
				t.Logf("%s %s: planned (%s), not checked", strings.ToUpper(m), path, op.Planned)
				continue
			}
			p := strings.NewReplacer("{id}", "1", "{code}", "ABC").Replace(path)
			r := e.do(strings.ToUpper(m), p, "", nil)
			if r.StatusCode == http.StatusMethodNotAllowed ||
				(r.StatusCode == http.StatusNotFound && strings.Contains(string(r.body), "no route")) {
				t.Errorf("%s %s is documented but not served: %d %s", strings.ToUpper(m), path, r.StatusCode, r.body)
			}
		}
	}
}
