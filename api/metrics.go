package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the API's Prometheus instruments. Labels are bounded: the
// route is the mux pattern ("GET /v1/promotions/{id}", never a path with an
// id or a code in it), the code an HTTP status.
type Metrics struct {
	Requests *prometheus.HistogramVec
}

// NewMetrics creates the instruments and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "promocodes_http_request_duration_seconds",
			Help:    "API requests by route pattern and status code, with their duration.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"route", "code"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests)
	}
	return m
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush keeps streaming (the CSV export) streaming.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// observe serves h and records the request under route.
func (m *Metrics) observe(route string, h http.Handler, w http.ResponseWriter, r *http.Request) {
	if m == nil {
		h.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		code := rec.status
		if p := recover(); p != nil {
			m.Requests.WithLabelValues(route, "aborted").Observe(time.Since(start).Seconds())
			panic(p)
		}
		if code == 0 {
			code = http.StatusOK
		}
		m.Requests.WithLabelValues(route, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
	}()
	h.ServeHTTP(rec, r)
}
