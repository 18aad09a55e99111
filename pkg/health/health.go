// Package health serves the operational endpoints every long-running
// deployable exposes: /healthz (liveness), /readyz (readiness) and /metrics
// (Prometheus). A Handler is safe for concurrent use.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one named probe: a database ping, a broker round trip.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Handler serves GET /healthz (the live checks), GET /readyz (the ready
// checks) and GET /metrics (gatherer). Liveness checks should only fail when
// a restart would help; readiness checks may fail while a dependency is down.
func Handler(live, ready []Check, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { probe(w, r, live) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { probe(w, r, ready) })
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

// probe runs the checks under one short deadline and reports each result.
func probe(w http.ResponseWriter, r *http.Request, checks []Check) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status := http.StatusOK
	res := make(map[string]string, len(checks))
	for _, c := range checks {
		if err := c.Fn(ctx); err != nil {
			status = http.StatusServiceUnavailable
			res[c.Name] = err.Error()
		} else {
			res[c.Name] = "ok"
		}
	}
	body := map[string]any{"status": "ok", "checks": res}
	if status != http.StatusOK {
		body["status"] = "unavailable"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
