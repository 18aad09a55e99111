package console

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/promo"
)

// The analytics page: one promotion or several side by side, their series
// as time-series charts (uPlot, static/charts.js) over one window, and the
// figures campaign teams compare. Everything comes from the API's /stats.

// maxCompared bounds a comparison (each promotion is one /stats call).
const maxCompared = 6

// hourlyUpTo is the longest span shown by hour when the page chooses the
// bucket: a week of hours; longer spans are shown by day.
const hourlyUpTo = 7 * 24 * time.Hour

// minBuckets is the fewest buckets a chart shows (a promotion created an
// hour ago is charted over the last day): a line needs room to read.
const minBuckets = 24

// window is the span a page charts: its bucket and [From, To).
type window struct {
	Bucket   promo.StatsBucket
	From, To time.Time
	// Clipped is set when the span asked for held more than
	// promo.MaxStatsBuckets buckets: the newest are shown.
	Clipped bool
	// FromDate, ToDate are the form's values (the last day shown, inclusive).
	FromDate, ToDate string
}

// chooseWindow reads the page's bucket, from and to (dates, UTC, to
// inclusive) and fills what is missing: from the first promotion's
// creation to now, by hour up to a week and by day beyond; at least
// minBuckets buckets, at most promo.MaxStatsBuckets (the newest).
func chooseWindow(q map[string][]string, created []time.Time, now time.Time) (window, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	var w window
	to := now
	if s := get("to"); s != "" {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return w, fmt.Errorf("to %q is not a date (YYYY-MM-DD)", s)
		}
		to = d.Add(24 * time.Hour)
	}
	from := to
	for _, t := range created {
		if t.Before(from) {
			from = t
		}
	}
	if s := get("from"); s != "" {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return w, fmt.Errorf("from %q is not a date (YYYY-MM-DD)", s)
		}
		from = d
	}
	if !from.Before(to) {
		if get("from") != "" {
			return w, fmt.Errorf("from %s is not before to %s", get("from"), get("to"))
		}
		from = to.Add(-time.Hour) // promotions created after the window: its last hour
	}
	switch b := promo.StatsBucket(get("bucket")); b {
	case promo.BucketHour, promo.BucketDay:
		w.Bucket = b
	case "":
		w.Bucket = promo.BucketHour
		if to.Sub(from) > hourlyUpTo {
			w.Bucket = promo.BucketDay
		}
	default:
		return w, fmt.Errorf("bucket %q: hour or day", b)
	}
	w.From, w.To = w.Bucket.Floor(from), w.Bucket.Ceil(to)
	if least := minBuckets * w.Bucket.Width(); w.To.Sub(w.From) < least {
		w.From = w.To.Add(-least)
	}
	if span := promo.MaxStatsBuckets * w.Bucket.Width(); w.To.Sub(w.From) > span {
		w.From, w.Clipped = w.To.Add(-span), true
	}
	w.FromDate, w.ToDate = w.From.Format(time.DateOnly), w.To.Add(-time.Nanosecond).Format(time.DateOnly)
	return w, nil
}

// chart is what static/charts.js draws: one x value per bucket of the
// window (unix seconds, every bucket, zeros included) and its series.
type chart struct {
	ID     string        `json:"id"`
	Bucket string        `json:"bucket"`
	X      []int64       `json:"x"`
	Series []chartSeries `json:"series"`
}

type chartSeries struct {
	Label  string  `json:"label"`
	Kind   string  `json:"kind"` // redemptions, rollbacks, refusals, promotion
	Values []int64 `json:"values"`
}

// chartRow is one bucket with any activity, for the chart's table.
type chartRow struct {
	At     time.Time
	Values []int64
}

// Rows are the chart's buckets with any activity: the table under the chart
// (readable without JavaScript).
func (ch chart) Rows() []chartRow {
	var rows []chartRow
	for i, x := range ch.X {
		row := chartRow{At: time.Unix(x, 0).UTC(), Values: make([]int64, len(ch.Series))}
		active := false
		for j, s := range ch.Series {
			row.Values[j] = s.Values[i]
			active = active || s.Values[i] != 0
		}
		if active {
			rows = append(rows, row)
		}
	}
	return rows
}

// TimeLayout formats a bucket's start for the table.
func (ch chart) TimeLayout() string {
	if ch.Bucket == string(promo.BucketDay) {
		return time.DateOnly
	}
	return "2006-01-02 15:00"
}

// axis is every bucket start of the stats' window.
func axis(st client.Stats) []int64 {
	w := st.Bucket.Width()
	n := int(st.To.Sub(st.From) / w)
	xs := make([]int64, 0, max(n, 0))
	for t := st.From; t.Before(st.To) && len(xs) < promo.MaxStatsBuckets; t = t.Add(w) {
		xs = append(xs, t.Unix())
	}
	return xs
}

// place puts a sparse series' values on the axis.
func place(xs []int64, pts []promo.StatsPoint, v func(promo.StatsPoint) int64) []int64 {
	out := make([]int64, len(xs))
	at := make(map[int64]int, len(xs))
	for i, x := range xs {
		at[x] = i
	}
	for _, p := range pts {
		if i, ok := at[p.At.Unix()]; ok {
			out[i] += v(p)
		}
	}
	return out
}

// promotionChart charts one promotion: redemptions, rollbacks and refusals
// by reason (the reasons seen in the window, most frequent first).
func promotionChart(id string, st client.Stats) chart {
	xs := axis(st)
	ch := chart{ID: id, Bucket: string(st.Bucket), X: xs, Series: []chartSeries{
		{Label: "redemptions", Kind: "redemptions", Values: place(xs, st.Series, func(p promo.StatsPoint) int64 { return p.Redemptions })},
		{Label: "rollbacks", Kind: "rollbacks", Values: place(xs, st.Series, func(p promo.StatsPoint) int64 { return p.Rollbacks })},
	}}
	total := map[promo.Reason]int64{}
	for _, p := range st.Series {
		for r, n := range p.Refusals {
			total[r] += n
		}
	}
	reasons := make([]promo.Reason, 0, len(total))
	for r := range total {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b promo.Reason) int {
		return cmp.Or(cmp.Compare(total[b], total[a]), strings.Compare(string(a), string(b)))
	})
	for _, r := range reasons {
		ch.Series = append(ch.Series, chartSeries{Label: "refused: " + string(r), Kind: "refusals",
			Values: place(xs, st.Series, func(p promo.StatsPoint) int64 { return p.Refusals[r] })})
	}
	return ch
}

// comparedPromotion is one column of the comparison.
type comparedPromotion struct {
	P     client.Status
	Stats client.Stats
	// Rate is the redemption rate in percent; Refused the refusals over its
	// life; InWindow the redemptions in the window, Peak its busiest bucket.
	Rate      string
	Refused   int64
	TopReason string
	InWindow  int64
	Peak      promo.StatsPoint
}

func compared(p client.Status, st client.Stats) comparedPromotion {
	cp := comparedPromotion{P: p, Stats: st, Rate: strconv.FormatFloat(100*st.RedemptionRate, 'f', 2, 64)}
	for i, r := range st.Refusals {
		cp.Refused += r.Count
		if i == 0 {
			cp.TopReason = string(r.Reason)
		}
	}
	for _, pt := range st.Series {
		cp.InWindow += pt.Redemptions
		if pt.Redemptions > cp.Peak.Redemptions {
			cp.Peak = pt
		}
	}
	return cp
}

// statsFor reads a promotion's stats over w.
func statsFor(ctx context.Context, api *client.Client, id string, w window) (client.Stats, error) {
	return api.PromotionStatsWindow(ctx, id, w.Bucket, w.From, w.To)
}

// analyticsPage serves GET /console/analytics?p=ID[&p=ID...][&bucket=][&from=][&to=][&name=]:
// with promotions named, their analytics side by side; always, a chooser
// of promotions (filtered by name) to compare.
func (c *Console) analyticsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	api, ctx := c.apiFor(r)
	data := map[string]any{"Name": q.Get("name"), "Bucket": q.Get("bucket")}
	var ids []string
	for _, id := range q["p"] {
		id = strings.TrimSpace(id)
		if _, err := promo.ParseID(id); err != nil {
			c.fail(w, r, http.StatusUnprocessableEntity, fmt.Errorf("%q is not a promotion id", id))
			return
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
		if len(ids) > maxCompared { // at once: each id is compared with those before it
			c.fail(w, r, http.StatusUnprocessableEntity, fmt.Errorf("compare at most %d promotions at once (more chosen)", maxCompared))
			return
		}
	}
	data["Chosen"] = ids
	var (
		ps      []client.Status
		created []time.Time
	)
	for _, id := range ids {
		p, err := api.GetPromotion(ctx, id)
		if err != nil {
			c.failAPI(w, r, err)
			return
		}
		ps = append(ps, p)
		created = append(created, p.CreatedAt)
	}
	if len(ps) > 0 {
		win, err := chooseWindow(q, created, time.Now())
		if err != nil {
			c.fail(w, r, http.StatusUnprocessableEntity, err)
			return
		}
		data["W"] = win
		var cols []comparedPromotion
		for _, p := range ps {
			st, err := statsFor(ctx, api, p.ID, win)
			if err != nil {
				c.failAPI(w, r, err)
				return
			}
			cols = append(cols, compared(p, st))
		}
		data["Cols"] = cols
		if len(cols) == 1 {
			data["Chart"] = promotionChart("chart", cols[0].Stats)
		} else {
			data["Chart"] = comparisonChart(cols)
		}
	}
	page, err := api.ListPromotions(ctx, client.ListQuery{Name: q.Get("name"), Limit: 50})
	if err != nil {
		data["ListError"] = apiMessage(err)
	}
	data["Choices"] = page.Items
	c.render(w, r, "analytics", data)
}

// comparisonChart charts the promotions' redemptions on one axis.
func comparisonChart(cols []comparedPromotion) chart {
	xs := axis(cols[0].Stats)
	ch := chart{ID: "chart", Bucket: string(cols[0].Stats.Bucket), X: xs}
	for _, col := range cols {
		ch.Series = append(ch.Series, chartSeries{Label: "#" + col.P.ID + " " + col.P.Name, Kind: "promotion",
			Values: place(xs, col.Stats.Series, func(p promo.StatsPoint) int64 { return p.Redemptions })})
	}
	return ch
}
