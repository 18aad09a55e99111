package api_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/api/apitest"
)

// redoclyCLI is the version of Redocly's OpenAPI linter the tests run
// (pinned: a new release may add rules).
const redoclyCLI = "@redocly/cli@2.77.0"

// TestOpenAPILint runs an independent OpenAPI linter, Redocly CLI, over
// api/openapi.yaml: it must report no errors (warnings are printed). It
// uses `redocly` from PATH, else npx (which fetches the pinned version from
// the npm registry once); without either it skips and says so.
func TestOpenAPILint(t *testing.T) {
	var cmd *exec.Cmd
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	switch {
	case lookPath("redocly"):
		cmd = exec.CommandContext(ctx, "redocly", "lint", "--format=stylish", "openapi.yaml")
	case lookPath("npx"):
		cmd = exec.CommandContext(ctx, "npx", "--yes", redoclyCLI, "lint", "--format=stylish", "openapi.yaml")
	default:
		t.Skip("neither redocly nor npx is on PATH: the OpenAPI lint needs Node.js (.ci/run installs Redocly CLI)")
	}
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "npm error") && !strings.Contains(string(out), "openapi.yaml") {
		t.Skipf("could not fetch %s from the npm registry: %v\n%s", redoclyCLI, err, out)
	}
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("redocly lint api/openapi.yaml: %v (errors above)", err)
	}
}

func lookPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// Every schema holds only JSON Schema keywords: a description holding a
// comma inside a YAML flow mapping ({description: a, b}) used to split into
// bogus keywords that the served schema then carried.
func TestOpenAPISchemaKeywords(t *testing.T) {
	var doc any
	decodeJSON(t, api.OpenAPI(), &doc)
	keywords := map[string]bool{}
	for _, k := range strings.Fields(`$ref $comment type format description enum const default minimum maximum
		exclusiveMinimum exclusiveMaximum multipleOf minLength maxLength pattern items minItems maxItems uniqueItems
		properties additionalProperties required minProperties maxProperties propertyNames patternProperties
		oneOf anyOf allOf not if then else title examples example readOnly writeOnly deprecated discriminator
		contentMediaType`) {
		keywords[k] = true
	}
	var schema func(path string, v any)
	schema = func(path string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for k, c := range m {
			if !keywords[k] && !strings.HasPrefix(k, "x-") {
				t.Errorf("%s has %q, not a schema keyword: a YAML scalar split by a comma?", path, k)
			}
			switch k {
			case "properties", "patternProperties":
				if props, ok := c.(map[string]any); ok {
					for name, p := range props {
						schema(path+"/"+k+"/"+name, p)
					}
				}
			case "items", "additionalProperties", "not", "if", "then", "else", "propertyNames":
				schema(path+"/"+k, c)
			case "oneOf", "anyOf", "allOf":
				if list, ok := c.([]any); ok {
					for _, s := range list {
						schema(path+"/"+k, s)
					}
				}
			}
		}
	}
	// Schemas are under components/schemas and under every "schema" key.
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				switch {
				case k == "schema":
					schema(path+"/schema", c)
				case k == "schemas" && path == "#/components":
					for name, s := range c.(map[string]any) {
						schema(path+"/schemas/"+name, s)
					}
				default:
					walk(path+"/"+k, c)
				}
			}
		case []any:
			for _, c := range v {
				walk(path+"/[]", c)
			}
		}
	}
	walk("#", doc)
}

// The document refuses what the server refuses for its shape: an unknown
// field, a usage limit over 1,000,000,000. (apitest.Conform checks the
// other way: every request the server accepts conforms.)
func TestOpenAPIRefusesWhatTheServerRefuses(t *testing.T) {
	val := apitest.Validator(t)
	e := newEnv(t, envConfig{Open: true}, nil)
	format := `"format":{"charset":"alnum","length":10}`
	for _, c := range []struct {
		name, body string
		status     int
	}{
		{"generated with an unknown field", `{"name":"w","codeCount":10,` + format + `,"colour":"red"}`, http.StatusBadRequest},
		{"vanity with an unknown field", `{"name":"v","code":"VANITY1","colour":"red"}`, http.StatusBadRequest},
		{"maxUsagePerCode over the cap", `{"name":"w","codeCount":10,` + format + `,"maxUsagePerCode":1000000001}`, http.StatusUnprocessableEntity},
		{"perUserLimit over the cap", `{"name":"v","code":"VANITY2","perUserLimit":1000000001}`, http.StatusUnprocessableEntity},
	} {
		t.Run(c.name, func(t *testing.T) {
			if r := e.do(http.MethodPost, "/v1/promotions", c.body, nil); r.StatusCode != c.status {
				t.Fatalf("server answered %d %s, want %d", r.StatusCode, r.body, c.status)
			}
			req := httptest.NewRequest(http.MethodPost, "/v1/promotions", bytes.NewReader([]byte(c.body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer admin-token-0123456789")
			if ok, _ := val.ValidateHttpRequest(req); ok {
				t.Errorf("the document accepts %s, which the server refuses with %d", c.body, c.status)
			}
		})
	}
}
