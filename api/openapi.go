package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"

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

//go:embed docs.html
var docsHTML string

var docsTemplate = template.Must(template.New("docs").Funcs(template.FuncMap{"md": inlineCode}).Parse(docsHTML))

// inlineCode renders the one piece of Markdown the document's descriptions
// use, `code` spans, as <code>; everything else is escaped text.
func inlineCode(s string) template.HTML {
	parts := strings.Split(s, "`")
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 1 && i < len(parts)-1 {
			b.WriteString("<code>" + template.HTMLEscapeString(p) + "</code>")
			continue
		}
		if i%2 == 1 { // an unpaired backtick stays as typed
			b.WriteString("`")
		}
		b.WriteString(template.HTMLEscapeString(p))
	}
	return template.HTML(b.String())
}

// docOperation is one operation as the /docs page lists it.
type docOperation struct {
	Method, Path, ID, Summary, Description, Tag string
	Open                                        bool // no token needed
	Params                                      []docParam
	Body                                        string // request schema, indented JSON
	Responses                                   []docResponse
}

type docParam struct{ Name, In, Schema, Description string }

type docResponse struct{ Status, Description, Types string }

// serveDocs renders the document as one HTML page, on the server: it reads
// without JavaScript; a small script adds "try it" (no CDN, no framework).
func serveDocs(w http.ResponseWriter, _ *http.Request) {
	var doc struct {
		Info struct {
			Title, Version, Summary, Description string
		}
		Paths      map[string]map[string]json.RawMessage
		Components struct {
			Parameters map[string]json.RawMessage
			Responses  map[string]json.RawMessage
			Schemas    map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		http.Error(w, "openapi document: "+err.Error(), http.StatusInternalServerError)
		return
	}
	var ops []docOperation
	paths := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		item := doc.Paths[p]
		var shared []json.RawMessage
		if raw, ok := item["parameters"]; ok {
			_ = json.Unmarshal(raw, &shared)
		}
		for _, m := range []string{"get", "post", "put", "patch", "delete"} {
			raw, ok := item[m]
			if !ok {
				continue
			}
			var op struct {
				OperationID string `json:"operationId"`
				Summary     string
				Description string
				Tags        []string
				Security    *[]any
				Parameters  []json.RawMessage
				RequestBody struct {
					Content map[string]struct{ Schema json.RawMessage }
				} `json:"requestBody"`
				Responses map[string]json.RawMessage
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				continue
			}
			o := docOperation{Method: strings.ToUpper(m), Path: p, ID: op.OperationID, Summary: op.Summary,
				Description: op.Description, Open: op.Security != nil && len(*op.Security) == 0}
			if len(op.Tags) > 0 {
				o.Tag = op.Tags[0]
			}
			for _, pr := range append(slices.Clone(shared), op.Parameters...) {
				pr = resolve(pr, doc.Components.Parameters)
				var prm struct {
					Name, In, Description string
					Schema                json.RawMessage
				}
				_ = json.Unmarshal(pr, &prm)
				o.Params = append(o.Params, docParam{Name: prm.Name, In: prm.In, Description: prm.Description,
					Schema: string(prm.Schema)})
			}
			if c, ok := op.RequestBody.Content["application/json"]; ok {
				o.Body = indent(expandRefs(c.Schema, doc.Components.Schemas, 0))
			}
			codes := make([]string, 0, len(op.Responses))
			for c := range op.Responses {
				codes = append(codes, c)
			}
			slices.Sort(codes)
			for _, c := range codes {
				r := resolve(op.Responses[c], doc.Components.Responses)
				var resp struct {
					Description string
					Content     map[string]json.RawMessage
				}
				_ = json.Unmarshal(r, &resp)
				var types []string
				for t := range resp.Content {
					types = append(types, t)
				}
				slices.Sort(types)
				o.Responses = append(o.Responses, docResponse{Status: c, Description: resp.Description,
					Types: strings.Join(types, ", ")})
			}
			ops = append(ops, o)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'")
	_ = docsTemplate.Execute(w, map[string]any{"Info": doc.Info, "Ops": ops})
}

// resolve follows a local $ref into components.
func resolve(raw json.RawMessage, in map[string]json.RawMessage) json.RawMessage {
	var ref struct {
		Ref string `json:"$ref"`
	}
	if json.Unmarshal(raw, &ref) == nil && ref.Ref != "" {
		if r, ok := in[ref.Ref[strings.LastIndex(ref.Ref, "/")+1:]]; ok {
			return r
		}
	}
	return raw
}

// expandRefs inlines schema $refs (a few levels deep) for display.
func expandRefs(raw json.RawMessage, schemas map[string]json.RawMessage, depth int) any {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil
	}
	var walk func(v any, depth int) any
	walk = func(v any, depth int) any {
		switch t := v.(type) {
		case map[string]any:
			if ref, ok := t["$ref"].(string); ok && depth < 4 {
				var inner any
				if json.Unmarshal(schemas[ref[strings.LastIndex(ref, "/")+1:]], &inner) == nil {
					return walk(inner, depth+1)
				}
			}
			for k, x := range t {
				t[k] = walk(x, depth)
			}
		case []any:
			for i, x := range t {
				t[i] = walk(x, depth)
			}
		}
		return v
	}
	return walk(v, depth)
}

func indent(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
