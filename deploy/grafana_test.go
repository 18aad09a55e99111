package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/generator"
	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/redemption"
	"github.com/promocodes/promocodes/shovel"
)

// nameRecorder is a Registerer that records the metric names of what is
// registered with it (and registers it for real, to catch conflicts).
type nameRecorder struct {
	*prometheus.Registry
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *nameRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return r.Registry.Register(c)
}

func (r *nameRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// registeredMetrics registers the instruments of every part of the binary
// (API, generator, shovel, redemption, the process's own and its database
// pool and backlog collectors) and returns their names.
func registeredMetrics(t *testing.T) *nameRecorder {
	t.Helper()
	reg := &nameRecorder{Registry: app.NewRegistry(), names: map[string]bool{}}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		reg.names[mf.GetName()] = true
	}
	api.NewMetrics(reg)
	generator.NewMetrics(reg)
	shovel.NewMetrics(reg)
	if _, err := redemption.New(redemption.Config{}, nil, reg, zap.NewNop()); err != nil { // registers its metrics
		t.Fatal(err)
	}
	reg.MustRegister(app.NewPoolCollector(nil), app.NewBacklogCollector(nil, zap.NewNop()))
	return reg
}

// metricBase is a metric name without the suffix of a histogram's series.
func (r *nameRecorder) metricBase(name string) string {
	for _, suf := range []string{"_bucket", "_count", "_sum"} {
		if b, ok := strings.CutSuffix(name, suf); ok && r.names[b] {
			return b
		}
	}
	return name
}

// TestGrafanaDashboardUsesRealMetrics parses the example dashboard and
// checks that every promocodes_* metric its queries use is one the services
// register (histogram series by their base name), so the dashboard cannot
// silently show "No data" after a rename.
func TestGrafanaDashboardUsesRealMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana/promocodes-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) < 8 {
		t.Fatalf("dashboard %q (uid %q) has %d panels", dash.Title, dash.UID, len(dash.Panels))
	}

	reg := registeredMetrics(t)
	metric := regexp.MustCompile(`\bpromocodes_[a-z0-9_]+`)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range metric.FindAllString(tg.Expr, -1) {
				base := reg.metricBase(name)
				used[base] = true
				if !reg.names[base] {
					t.Errorf("panel %q uses %s, which no service registers", p.Title, name)
				}
			}
		}
	}
	// Each service shows up on the dashboard.
	for _, want := range []string{"promocodes_http_request_duration_seconds", "promocodes_outbox_lag_seconds",
		"promocodes_generator_codes_total", "promocodes_shovel_moved_total", "promocodes_shovel_cycle_duration_seconds",
		"promocodes_redemptions_total", "promocodes_redemption_duration_seconds"} {
		if !used[want] {
			t.Errorf("dashboard does not chart %s", want)
		}
	}
	var all []string
	for n := range reg.names {
		all = append(all, n)
	}
	slices.Sort(all)
	t.Logf("registered promocodes metrics checked against: %d names", len(all))
}
