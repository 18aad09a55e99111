package api

import (
	"bytes"
	"embed"
	"fmt"
	"net/http"
	"path"
	"slices"
	"time"

	"sigs.k8s.io/yaml"
)

// The OpenAPI document is written by hand (docs/decisions.md: "OpenAPI:
// hand-written, kept true by the tests") and embedded; the API tests
// validate every response they receive against it.
//
//go:embed openapi.yaml
var openapiYAML []byte

// openapiJSON is openapiYAML as JSON, converted once at start.
var openapiJSON = func() []byte {
	b, err := yaml.YAMLToJSON(openapiYAML)
	if err != nil {
		panic(fmt.Sprintf("api/openapi.yaml: %v", err)) // a build defect, caught by every test
	}
	return b
}()

// OpenAPI returns the OpenAPI 3.1 document the API serves, as JSON.
func OpenAPI() []byte { return slices.Clone(openapiJSON) }

func serveOpenAPIJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(openapiJSON)
}

func serveOpenAPIYAML(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(openapiYAML)
}

// docsUI is the /docs page: Swagger UI, vendored from npm (docsui/README.md),
// on the served document. Chosen over the hand-made page it replaces
// (docs/decisions.md): operations grouped by tag, schemas expandable, "try
// it out" per operation with its own method.
//
//go:embed docsui
var docsUI embed.FS

// docsCSP lets Swagger UI run from this origin only: its scripts and styles
// are files here (it sets inline style attributes), its icons data: URIs,
// and it fetches nothing but /openapi.json and the operations tried.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// serveDocs serves the page; serveDocsAsset its files.
func serveDocs(w http.ResponseWriter, _ *http.Request) {
	page, err := docsUI.ReadFile("docsui/index.html")
	if err != nil {
		http.Error(w, "docs page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", docsCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(page)
}

// docsAssets are the files the page loads; any other path under /docs is
// the API's 404.
var docsAssets = []string{"swagger-ui-bundle.js", "swagger-ui.css", "docs.js", "docs.css"}

// serveDocsAsset serves one of docsAssets.
func serveDocsAsset(name string) http.HandlerFunc {
	b, err := docsUI.ReadFile("docsui/" + name)
	if err != nil {
		panic(fmt.Sprintf("api/docsui/%s: %v", name, err)) // a build defect
	}
	ctype := "text/css; charset=utf-8"
	if path.Ext(name) == ".js" {
		ctype = "text/javascript; charset=utf-8"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	}
}
