package deploy

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/promocodes/promocodes/pkg/promo"
)

var updatePrometheusRule = flag.Bool("update-prometheusrule", false,
	"rewrite deploy/prometheus/promocodes-prometheusrule.yaml from promocodes-rules.yaml")

const (
	rulesFile          = "promocodes-rules.yaml"
	rulesTestFile      = "promocodes-rules.test.yaml"
	prometheusRuleFile = "promocodes-prometheusrule.yaml"
	runbookBase        = "https://github.com/promocodes/promocodes/blob/main/docs/runbook.md#"
)

type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type ruleGroups struct {
	Groups []struct {
		Name  string      `json:"name"`
		Rules []alertRule `json:"rules"`
	} `json:"groups"`
}

func loadAlertRules(t *testing.T) []alertRule {
	t.Helper()
	var g ruleGroups
	if err := yaml.UnmarshalStrict(readFile(t, repoRoot(t), "deploy", "prometheus", rulesFile), &g); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rules []alertRule
	for _, grp := range g.Groups {
		rules = append(rules, grp.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", rulesFile)
	}
	return rules
}

// TestAlertRulesCoverTheOperation: one alert for each thing an SRE is paged
// for, each with a severity, a summary, a description and a runbook link to
// a section of docs/runbook.md that names the alert.
func TestAlertRulesCoverTheOperation(t *testing.T) {
	rules := loadAlertRules(t)
	var names []string
	for _, r := range rules {
		names = append(names, r.Alert)
	}
	for _, want := range []string{"PromocodesBatchesParked", "PromocodesOutboxLag", "PromocodesGenerationStalled",
		"PromocodesShovelNotRunning", "PromocodesCodeGuessingSpike", "PromocodesRedemptionErrors",
		"PromocodesRedemptionLatencyHigh", "PromocodesDatabasePoolSaturated"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s has no alert %s", rulesFile, want)
		}
	}
	runbook := string(readFile(t, repoRoot(t), "docs", "runbook.md"))
	sections := markdownSections(runbook)
	for _, r := range rules {
		if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s has no %s annotation", r.Alert, a)
			}
		}
		anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookBase)
		if !ok {
			t.Errorf("%s: runbook_url %q does not point into %s", r.Alert, r.Annotations["runbook_url"], runbookBase)
			continue
		}
		body, ok := sections[anchor]
		if !ok {
			t.Errorf("%s: docs/runbook.md has no section #%s", r.Alert, anchor)
			continue
		}
		if !strings.Contains(body, r.Alert) {
			t.Errorf("%s: docs/runbook.md#%s does not name the alert", r.Alert, anchor)
		}
	}
}

// markdownSections maps each heading's GitHub anchor to the text under it.
func markdownSections(md string) map[string]string {
	sections := map[string]string{}
	anchor := ""
	for _, line := range strings.Split(md, "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			anchor = githubAnchor(h)
			sections[anchor] = ""
			continue
		}
		if anchor != "" {
			sections[anchor] += line + "\n"
		}
	}
	return sections
}

var notAnchor = regexp.MustCompile(`[^a-z0-9 _-]`)

// githubAnchor is GitHub's anchor for a heading: lower case, punctuation
// dropped, spaces as hyphens.
func githubAnchor(h string) string {
	return strings.ReplaceAll(notAnchor.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), ""), " ", "-")
}

// TestAlertRulesUseRealMetrics: every metric an alert reads is one the
// binaries register (or, for the shovel CronJob, kube-state-metrics'), every
// route label an API route, every result label a refusal reason: a rename
// cannot leave an alert silently never firing.
func TestAlertRulesUseRealMetrics(t *testing.T) {
	reg := registeredMetrics(t)
	external := map[string]bool{"kube_cronjob_status_last_successful_time": true} // kube-state-metrics
	metric := regexp.MustCompile(`\b(?:promocodes|kube)_[a-z0-9_]+`)
	nameRegex := regexp.MustCompile(`__name__=~"([^"]+)"`)
	route := regexp.MustCompile(`route="([^"]+)"`)
	result := regexp.MustCompile(`result=~"([^"]+)"`)
	openapi := string(readFile(t, repoRoot(t), "api", "openapi.yaml"))
	for _, r := range loadAlertRules(t) {
		expr := r.Expr
		for _, m := range nameRegex.FindAllStringSubmatch(expr, -1) {
			names := expandAlternation(m[1])
			if len(names) < 2 {
				t.Errorf("%s: __name__ pattern %q: write it as prefix_(a|b)_suffix", r.Alert, m[1])
			}
			for _, n := range names {
				if !reg.names[n] {
					t.Errorf("%s: __name__ pattern %q names %s, which no service registers", r.Alert, m[1], n)
				}
			}
			expr = strings.Replace(expr, m[0], "", 1)
		}
		for _, name := range metric.FindAllString(expr, -1) {
			if !reg.names[reg.metricBase(name)] && !external[name] {
				t.Errorf("%s uses %s, which no service registers", r.Alert, name)
			}
		}
		for _, m := range route.FindAllStringSubmatch(expr, -1) {
			method, path, _ := strings.Cut(m[1], " ")
			if !strings.Contains(openapi, "\n  "+path+":\n") || !strings.Contains(openapi, strings.ToLower(method)+":") {
				t.Errorf("%s: route %q is not an API route (api/openapi.yaml)", r.Alert, m[1])
			}
		}
		for _, m := range result.FindAllStringSubmatch(expr, -1) {
			for _, res := range strings.Split(m[1], "|") {
				if !slices.Contains([]promo.Reason{promo.ReasonCodeNotFound, promo.ReasonInvalidCode}, promo.Reason(res)) {
					t.Errorf("%s: result %q is not a look-up refusal reason", r.Alert, res)
				}
			}
		}
	}
}

// expandAlternation turns "a_(b|c)_d" into [a_b_d a_c_d].
func expandAlternation(p string) []string {
	open, end := strings.IndexByte(p, '('), strings.IndexByte(p, ')')
	if open < 0 || end < open {
		return []string{p}
	}
	var out []string
	for _, alt := range strings.Split(p[open+1:end], "|") {
		out = append(out, p[:open]+alt+p[end+1:])
	}
	return out
}

// prometheusRuleFrom is the Prometheus Operator's PrometheusRule holding
// the rules file's groups, as shipped in deploy/prometheus.
func prometheusRuleFrom(rules []byte) []byte {
	_, groups, _ := bytes.Cut(rules, []byte("\ngroups:\n"))
	var b bytes.Buffer
	b.WriteString(`# The alerting rules of promocodes-rules.yaml as a PrometheusRule for the Prometheus Operator
# (kube-prometheus-stack). Generated: edit promocodes-rules.yaml, then
#   go test ./deploy -run TestPrometheusRuleMatchesRules -update-prometheusrule
# Apply it in the namespace of the promocodes deployment:
#   kubectl apply -n <namespace> -f deploy/prometheus/promocodes-prometheusrule.yaml
# Your Prometheus selects rules by label (kube-prometheus-stack: ruleSelector, often release=<name>);
# add that label in an overlay if it needs one.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: promocodes
  labels:
    app.kubernetes.io/name: promocodes
    app.kubernetes.io/part-of: promocodes
spec:
  groups:
`)
	for _, line := range strings.SplitAfter(string(groups), "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString("  ")
		}
		b.WriteString(line)
	}
	return b.Bytes()
}

// TestPrometheusRuleMatchesRules: the PrometheusRule carries exactly the
// rules file's groups (and decodes to the same rules).
func TestPrometheusRuleMatchesRules(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy", "prometheus")
	want := prometheusRuleFrom(readFile(t, dir, rulesFile))
	if *updatePrometheusRule {
		if err := os.WriteFile(filepath.Join(dir, prometheusRuleFile), want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readFile(t, dir, prometheusRuleFile)
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from %s: run go test ./deploy -run TestPrometheusRuleMatchesRules -update-prometheusrule",
			prometheusRuleFile, rulesFile)
	}
	var pr struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Metadata   any        `json:"metadata"`
		Spec       ruleGroups `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(got, &pr); err != nil {
		t.Fatalf("%s: %v", prometheusRuleFile, err)
	}
	var rules ruleGroups
	if err := yaml.UnmarshalStrict(readFile(t, dir, rulesFile), &rules); err != nil {
		t.Fatal(err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" ||
		!slices.EqualFunc(pr.Spec.Groups, rules.Groups, func(a, b struct {
			Name  string      `json:"name"`
			Rules []alertRule `json:"rules"`
		}) bool {
			return a.Name == b.Name && slices.EqualFunc(a.Rules, b.Rules, func(x, y alertRule) bool {
				return x.Alert == y.Alert && x.Expr == y.Expr && x.For == y.For &&
					maps(x.Labels) == maps(y.Labels) && maps(x.Annotations) == maps(y.Annotations)
			})
		}) {
		t.Errorf("%s does not decode to the rules of %s", prometheusRuleFile, rulesFile)
	}
}

func maps(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k+"="+m[k])
	}
	slices.Sort(keys)
	return strings.Join(keys, "\n")
}

// TestAlertRulesPromtool runs Prometheus' own checks: the rules file is
// valid, and its unit tests (each alert fires on its failure and stays
// quiet on the healthy shape beside it) pass. promtool comes with Debian's
// prometheus package; .ci/run installs it.
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed, so the alert rules' unit tests do not run here: " +
			"apt-get install prometheus (Debian's package provides promtool), or run .ci/run, which installs it")
	}
	dir := filepath.Join(repoRoot(t), "deploy", "prometheus")
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
}
