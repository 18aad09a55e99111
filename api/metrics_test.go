package api_test

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/promocodes/promocodes/api"
)

// sample returns the metric of family name whose labels include want.
func sample(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

func TestRequestMetricsByRoutePattern(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := api.NewMetrics(reg)
	e := newEnv(t, envConfig{Open: true, Metrics: m, BatchCodeCount: 4}, nil)
	c := e.create(`{"name":"m","codeCount":10,"format":{"charset":"numeric","length":12}}`)
	e.status(c.ID)
	e.status(c.ID)
	e.do(http.MethodGet, "/v1/promotions/999", "", nil)
	e.do(http.MethodGet, "/nowhere/42", "", nil)

	for _, tc := range []struct {
		route, code string
		n           uint64
	}{
		{"POST /v1/promotions", "202", 1},
		{"GET /v1/promotions/{id}", "200", 2},
		{"GET /v1/promotions/{id}", "404", 1},
		{"unmatched", "404", 1},
	} {
		s := sample(t, reg, "promocodes_http_request_duration_seconds", map[string]string{"route": tc.route, "code": tc.code})
		if s == nil || s.GetHistogram().GetSampleCount() != tc.n {
			t.Errorf("requests{route=%q,code=%s} = %v, want %d", tc.route, tc.code, s, tc.n)
		}
	}
}
