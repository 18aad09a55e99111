// Package health serves the operational endpoints every long-running
// deployable exposes: /healthz (liveness), /readyz (readiness) and /metrics
// (Prometheus). A Handler is safe for concurrent use.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Check is one named probe: a database ping, a broker round trip.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Option configures a Handler.
type Option func(*handler)

// WithLogger logs each failing check with its error (the response carries
// only a short status: errors name hosts and database users).
func WithLogger(log *zap.Logger) Option { return func(h *handler) { h.log = log } }

type handler struct{ log *zap.Logger }

// Handler serves GET /healthz (the live checks), GET /readyz (the ready
// checks) and GET /metrics (gatherer). Liveness checks should only fail when
// a restart would help; readiness checks may fail while a dependency is down.
// A failing check answers "unavailable" (or the short Status of a
// *StatusError); the detail goes to the log.
func Handler(live, ready []Check, gatherer prometheus.Gatherer, opts ...Option) http.Handler {
	h := &handler{log: zap.NewNop()}
	for _, o := range opts {
		o(h)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { h.probe(w, r, "healthz", live) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { h.probe(w, r, "readyz", ready) })
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

// StatusError is a check failure with a short, safe status for the probe's
// answer ("schema out of date: run promocodes migrate"); Err is logged.
type StatusError struct {
	Status string
	Err    error
}

func (e *StatusError) Error() string {
	if e.Err == nil {
		return e.Status
	}
	return e.Status + ": " + e.Err.Error()
}

func (e *StatusError) Unwrap() error { return e.Err }

// probe runs the checks under one short deadline and reports each result.
func (h *handler) probe(w http.ResponseWriter, r *http.Request, name string, checks []Check) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status := http.StatusOK
	res := make(map[string]string, len(checks))
	for _, c := range checks {
		if err := c.Fn(ctx); err != nil {
			status = http.StatusServiceUnavailable
			res[c.Name] = "unavailable"
			var se *StatusError
			if errors.As(err, &se) {
				res[c.Name] = se.Status
			}
			h.log.Warn(name+" check failed", zap.String("check", c.Name), zap.Error(err))
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
