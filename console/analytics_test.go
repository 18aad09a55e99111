package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/console"
)

// chartJSON is the data a page's chart carries (what static/charts.js draws).
type chartJSON struct {
	Bucket string  `json:"bucket"`
	X      []int64 `json:"x"`
	Series []struct {
		Label  string  `json:"label"`
		Kind   string  `json:"kind"`
		Values []int64 `json:"values"`
	} `json:"series"`
}

var chartData = regexp.MustCompile(`(?s)<script type="application/json" class="tschart-data">(.*?)</script>`)

func chartOf(t *testing.T, page string) chartJSON {
	t.Helper()
	m := chartData.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no chart data in the page:\n%.3000s", page)
	}
	var ch chartJSON
	if err := json.Unmarshal([]byte(m[1]), &ch); err != nil {
		t.Fatalf("chart data %q: %v", m[1], err)
	}
	return ch
}

func (ch chartJSON) total(label string) (n int64, found bool) {
	for _, s := range ch.Series {
		if s.Label == label {
			for _, v := range s.Values {
				n += v
			}
			return n, true
		}
	}
	return 0, false
}

// statOf is the figures table's cells of a row (data-stat), one per promotion.
func statOf(page, stat string) []string {
	re := regexp.MustCompile(`(?s)<td class="num"[^>]*data-stat="` + stat + `">(.*?)</td>`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		out = append(out, strings.TrimSpace(html.UnescapeString(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(m[1], ""))))
	}
	return out
}

// The analytics page: a chooser of promotions; one promotion's chart with
// redemptions, rollbacks and refusals by reason over every hour since it
// was created (zeros included), its figures; two promotions side by side,
// one chart series each; bad choices are error pages.
func TestAnalyticsPage(t *testing.T) {
	s := newSite(t, true, true)
	a := s.createPromotion(`{"name":"spring-A","code":"SPRINGA26","maxUsagePerCode":10,"perUserLimit":0}`)
	b := s.createPromotion(`{"name":"spring-B","code":"SPRINGB26","maxUsagePerCode":1}`)
	for i := range 3 {
		if st, reason := s.redeem("SPRINGA26", fmt.Sprintf("a-%d", i)); st != http.StatusCreated {
			t.Fatalf("redeem A: %d %s", st, reason)
		}
	}
	_, m := s.apiCall(http.MethodGet, "/v1/promotions/"+a+"/redemptions", "", nil)
	first := m["redemptions"].([]any)[0].(map[string]any)["id"].(string)
	if st, m := s.apiCall(http.MethodPost, "/v1/redemptions/"+first+"/rollback", `{"reason":"order cancelled"}`, nil); st != http.StatusOK {
		t.Fatalf("rollback: %d %v", st, m)
	}
	if st, _ := s.redeem("SPRINGB26", "b-0"); st != http.StatusCreated {
		t.Fatal("redeem B")
	}
	for i := range 2 {
		if st, reason := s.redeem("SPRINGB26", fmt.Sprintf("b-late-%d", i)); reason != "code_exhausted" {
			t.Fatalf("redeem a used-up B: %d %s", st, reason)
		}
	}
	if err := s.svc.FlushRefusals(context.Background()); err != nil {
		t.Fatal(err)
	}

	resp, page := s.get("/console/analytics?name=spring")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="choose-`+a+`"`) || !strings.Contains(page, `id="choose-`+b+`"`) {
		t.Fatalf("chooser = %d, want both spring promotions offered:\n%.3000s", resp.StatusCode, page)
	}

	resp, page = s.get("/console/analytics?p=" + a)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("analytics of A = %d:\n%.3000s", resp.StatusCode, page)
	}
	ch := chartOf(t, page)
	if ch.Bucket != "hour" || len(ch.X) != 24 {
		t.Errorf("A's chart: bucket %s, %d points; want hourly over the last 24 hours (created within them)", ch.Bucket, len(ch.X))
	}
	if n, _ := ch.total("redemptions"); n != 3 {
		t.Errorf("A's chart holds %d redemptions, want 3", n)
	}
	if n, _ := ch.total("rollbacks"); n != 1 {
		t.Errorf("A's chart holds %d rollbacks, want 1", n)
	}
	for i := 1; i < len(ch.X); i++ {
		if ch.X[i]-ch.X[i-1] != 3600 {
			t.Errorf("A's chart x[%d]-x[%d] = %d s, want every hour", i, i-1, ch.X[i]-ch.X[i-1])
		}
	}
	if got := statOf(page, "redemptions"); len(got) != 1 || got[0] != "2" {
		t.Errorf("A's live redemptions %q, want 2", got)
	}
	if got := statOf(page, "rate"); len(got) != 1 || got[0] != "100.00%" {
		t.Errorf("A's redemption rate %q, want 100.00%% (its one code redeemed)", got)
	}
	if !strings.Contains(page, `id="top-users"`) {
		t.Error("A's page lacks its top users")
	}

	_, page = s.get("/console/analytics?p=" + b)
	if n, ok := chartOf(t, page).total("refused: code_exhausted"); !ok || n != 2 {
		t.Errorf("B's chart holds %d code_exhausted refusals (series there: %v), want 2", n, ok)
	}

	_, page = s.get("/console/analytics?p=" + a + "&p=" + b + "&bucket=day")
	ch = chartOf(t, page)
	if ch.Bucket != "day" || len(ch.Series) != 2 {
		t.Fatalf("comparison chart: bucket %s, %d series; want day, 2", ch.Bucket, len(ch.Series))
	}
	if n, _ := ch.total("#" + a + " spring-A"); n != 3 {
		t.Errorf("comparison: A's series holds %d, want 3", n)
	}
	if n, _ := ch.total("#" + b + " spring-B"); n != 1 {
		t.Errorf("comparison: B's series holds %d, want 1", n)
	}
	if got := statOf(page, "refused"); len(got) != 2 || got[0] != "0" || !strings.HasPrefix(got[1], "2 mostly code_exhausted") {
		t.Errorf("comparison refused row %q, want 0 and 2 (mostly code_exhausted)", got)
	}
	if got := statOf(page, "ordervalue"); len(got) != 2 || got[0] != "—" {
		t.Errorf("order value row %q, want — for both (no amounts carried)", got)
	}

	for _, q := range []string{"p=abc", "p=1&p=2&p=3&p=4&p=5&p=6&p=7", "p=" + a + "&bucket=minute",
		"p=" + a + "&from=2026-02-30", "p=" + a + "&from=2026-03-02&to=2026-03-01"} {
		if resp, page := s.get("/console/analytics?" + q); resp.StatusCode != http.StatusUnprocessableEntity || !isHTML(resp) {
			t.Errorf("analytics?%s = %d, want a 422 page:\n%.500s", q, resp.StatusCode, page)
		}
	}
	if resp, _ := s.get("/console/analytics?p=999999"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("analytics of an unknown promotion = %d, want 404", resp.StatusCode)
	}
}

// Order value and discount appear as soon as the API's stats carry them.
func TestAnalyticsShowsOrdersWhenTheStatsCarryThem(t *testing.T) {
	withOrders := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/stats") {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			var st map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
				t.Errorf("stats body: %v", err)
			}
			st["orders"] = []map[string]any{{"currency": "EUR", "redemptions": 2, "orderValue": "184.50", "discount": "20.00"}}
			var buf bytes.Buffer
			_ = json.NewEncoder(&buf).Encode(st)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rec.Code)
			_, _ = w.Write(buf.Bytes())
		})
	}
	s := newSiteWith(t, true, true, withOrders)
	id := s.createPromotion(`{"name":"orders","code":"ORDERS26","maxUsagePerCode":10}`)
	_, page := s.get("/console/analytics?p=" + id)
	if got := statOf(page, "ordervalue"); len(got) != 1 || got[0] != "184.50 EUR (2 orders)" {
		t.Errorf("order value %q, want 184.50 EUR (2 orders)", got)
	}
	if got := statOf(page, "discount"); len(got) != 1 || got[0] != "20.00 EUR" {
		t.Errorf("discount %q, want 20.00 EUR", got)
	}
}

// The window the pages chart: since the first promotion's creation, hourly
// up to a week and daily beyond, at least 24 and at most 1,000 buckets (the
// newest); dates from the form, to inclusive.
func TestChooseWindow(t *testing.T) {
	now := time.Date(2026, 3, 10, 15, 20, 0, 0, time.UTC)
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name     string
		q        map[string][]string
		created  []time.Time
		bucket   string
		from, to time.Time
		clipped  bool
	}{
		{"created today: the last 24 hours", nil, []time.Time{now.Add(-90 * time.Minute)}, "hour", day(9).Add(16 * time.Hour), day(10).Add(16 * time.Hour), false},
		{"the earliest of two", nil, []time.Time{now.Add(-time.Hour), day(8)}, "hour", day(8), day(10).Add(16 * time.Hour), false},
		{"over a week: daily (at least 24 days)", nil, []time.Time{day(1)}, "day", day(11).AddDate(0, 0, -24), day(11), false},
		{"hourly asked over 60 days: newest 1,000 hours", map[string][]string{"bucket": {"hour"}}, []time.Time{now.AddDate(0, 0, -60)},
			"hour", day(10).Add(16*time.Hour - 1000*time.Hour), day(10).Add(16 * time.Hour), true},
		{"dates given", map[string][]string{"from": {"2026-03-02"}, "to": {"2026-03-03"}}, []time.Time{day(1)}, "hour", day(2), day(4), false},
		{"created after the window", map[string][]string{"to": {"2026-03-01"}}, []time.Time{day(5)}, "hour", day(1), day(2), false},
		{"daily over a short span: 24 days", map[string][]string{"bucket": {"day"}}, []time.Time{day(8)}, "day", day(11).AddDate(0, 0, -24), day(11), false},
	} {
		w, err := console.ChooseWindow(tc.q, tc.created, now)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if string(w.Bucket) != tc.bucket || !w.From.Equal(tc.from) || !w.To.Equal(tc.to) || w.Clipped != tc.clipped {
			t.Errorf("%s: %s [%v, %v) clipped %v; want %s [%v, %v) clipped %v", tc.name, w.Bucket, w.From, w.To, w.Clipped,
				tc.bucket, tc.from, tc.to, tc.clipped)
		}
	}
	for _, q := range []map[string][]string{{"from": {"03/02/2026"}}, {"to": {"tomorrow"}}, {"bucket": {"week"}},
		{"from": {"2026-03-05"}, "to": {"2026-03-04"}}} {
		if _, err := console.ChooseWindow(q, []time.Time{day(1)}, now); err == nil {
			t.Errorf("window %v accepted", q)
		}
	}
}

// A comparison of more promotions than the page takes is refused as soon as
// one too many is named: 10,000 distinct ids (the most a query holds) took
// 0.7 s of CPU per request, each compared with every one before it.
func TestAnalyticsRefusesTooManyPromotionsAtOnce(t *testing.T) {
	s := newSite(t, true, true)
	q := make([]string, 10_000)
	for i := range q {
		q[i] = "p=" + strconv.Itoa(i+1)
	}
	start := time.Now()
	resp, page := s.get("/console/analytics?" + strings.Join(q, "&"))
	took := time.Since(start)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "compare at most 6 promotions") {
		t.Errorf("10,000 promotions to compare = %d, want 422 naming the limit", resp.StatusCode)
	}
	if took > 300*time.Millisecond {
		t.Errorf("refusing 10,000 promotions to compare took %s, want well under 300ms", took)
	}
	t.Logf("10,000 ids refused in %s", took)
}
