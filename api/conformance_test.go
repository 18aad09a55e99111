package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/api/apitest"
	"github.com/promocodes/promocodes/pkg/health"
)

// The OpenAPI conformance check lives in api/apitest: newEnv wraps every
// test server in apitest.Conform, so every response any API test receives,
// errors included, is validated against the served document.

func conform(t testing.TB, h http.Handler) http.Handler { return apitest.Conform(t, h) }

// TestOpenAPIDocument checks the document against the OpenAPI 3.1 schema,
// that the server serves it as JSON and YAML, and that /docs and its files
// are served.
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

	e := newEnv(t, envConfig{AdminTokens: []string{"admin-token-0123456789"}}, nil) // no token needed for these
	r := e.do(http.MethodGet, "/openapi.json", "", nil)
	if r.StatusCode != http.StatusOK || !bytes.Equal(r.body, api.OpenAPI()) {
		t.Errorf("GET /openapi.json = %d, %d bytes; want 200 and the document", r.StatusCode, len(r.body))
	}
	if r := e.do(http.MethodGet, "/openapi.yaml", "", nil); r.StatusCode != http.StatusOK || !bytes.Contains(r.body, []byte("openapi: 3.1.0")) {
		t.Errorf("GET /openapi.yaml = %d %.80s", r.StatusCode, r.body)
	}
	page := e.do(http.MethodGet, "/docs", "", nil)
	if page.StatusCode != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs = %d %s", page.StatusCode, page.Header.Get("Content-Type"))
	}
	// The page loads its renderer from this origin only (the browser test
	// renders it offline and watches every request).
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") {
		t.Errorf("/docs CSP %q does not keep scripts to this origin", csp)
	}
	for _, f := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "docs.js", "docs.css"} {
		if !strings.Contains(string(page.body), "/docs/assets/"+f) {
			t.Errorf("/docs does not load %s", f)
		}
		r := e.do(http.MethodGet, "/docs/assets/"+f, "", nil)
		if r.StatusCode != http.StatusOK || len(r.body) == 0 {
			t.Errorf("GET /docs/assets/%s = %d, %d bytes", f, r.StatusCode, len(r.body))
		}
	}
	if r := e.do(http.MethodGet, "/docs/assets/LICENSE", "", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /docs/assets/LICENSE = %d, want 404 (only the page's files are served)", r.StatusCode)
	}
}

// TestOpenAPITags: every operation has exactly one tag of the document's
// list, so the reference groups it (promotions, codes, redemptions,
// reservations, operations, in that order).
func TestOpenAPITags(t *testing.T) {
	var spec struct {
		Tags []struct {
			Name string `json:"name"`
		} `json:"tags"`
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	decodeJSON(t, api.OpenAPI(), &spec)
	var names []string
	for _, tg := range spec.Tags {
		names = append(names, tg.Name)
	}
	if want := []string{"promotions", "codes", "redemptions", "reservations", "operations"}; !slices.Equal(names, want) {
		t.Errorf("tags %v, want %v", names, want)
	}
	for path, item := range spec.Paths {
		for m, raw := range item {
			if m == "parameters" {
				continue
			}
			var op struct {
				Tags []string `json:"tags"`
			}
			decodeJSON(t, raw, &op)
			if len(op.Tags) != 1 || !slices.Contains(names, op.Tags[0]) {
				t.Errorf("%s %s has tags %v, want one of %v", strings.ToUpper(m), path, op.Tags, names)
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
	e := newEnv(t, envConfig{Open: true}, health.Handler(nil, nil, prometheus.NewRegistry())) // every route, probes too
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
			p := strings.NewReplacer("{id}", "1", "{code}", "ABC", "{file}", "docs.js").Replace(path)
			r := e.do(strings.ToUpper(m), p, "", nil)
			if r.StatusCode == http.StatusMethodNotAllowed ||
				(r.StatusCode == http.StatusNotFound && strings.Contains(string(r.body), "no route")) {
				t.Errorf("%s %s is documented but not served: %d %s", strings.ToUpper(m), path, r.StatusCode, r.body)
			}
		}
	}
}
