package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/promocodes/promocodes/pkg/health"
)

// /readyz used to answer the raw error text, naming hosts and database
// users; now a short status, with the detail in the log.
func TestReadyzShortStatusDetailInLog(t *testing.T) {
	secret := `failed to connect to host=db.internal user=promocodes database=prod: password authentication failed`
	core, logs := observer.New(zap.WarnLevel)
	h := health.Handler(nil, []health.Check{
		{Name: "database", Fn: func(context.Context) error { return errors.New(secret) }},
		{Name: "schema", Fn: func(context.Context) error {
			return &health.StatusError{Status: "schema not migrated: run promocodes migrate", Err: errors.New(`relation "goose_db_version" does not exist`)}
		}},
		{Name: "kafka", Fn: func(context.Context) error { return nil }},
	}, prometheus.NewRegistry(), health.WithLogger(zap.New(core)))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
	for _, leak := range []string{"db.internal", "user=", "password", "goose_db_version"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("/readyz body shows %q: %s", leak, b)
		}
	}
	var body struct {
		Status string
		Checks map[string]string
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"database": "unavailable", "schema": "schema not migrated: run promocodes migrate", "kafka": "ok"}
	for k, v := range want {
		if body.Checks[k] != v {
			t.Errorf("check %s = %q, want %q", k, body.Checks[k], v)
		}
	}
	logged := ""
	for _, e := range logs.All() {
		logged += e.Message + " " + e.ContextMap()["error"].(string) + "\n"
	}
	if !strings.Contains(logged, "db.internal") || !strings.Contains(logged, "goose_db_version") {
		t.Errorf("the log lacks the detail:\n%s", logged)
	}
}
