//go:build integration

package console_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The API reference, analytics and operations pages in the browser
// (subtests of TestConsoleInBrowser), and the check that no page makes a
// request off 127.0.0.1.

// requestLog is every URL the browser requested.
type requestLog struct {
	mu   sync.Mutex
	urls []string
}

func recordRequests(t *testing.T, ctx context.Context) *requestLog {
	t.Helper()
	l := &requestLog{}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Request != nil {
			l.mu.Lock()
			l.urls = append(l.urls, e.Request.URL)
			l.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return l
}

// allLocal fails t for every request that left 127.0.0.1 (data:, blob: and
// about: stay in the page).
func (l *requestLog) allLocal(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var off []string
	for _, u := range l.urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "data" && p.Scheme != "blob" && p.Scheme != "about" && p.Hostname() != "127.0.0.1") {
			off = append(off, u)
		}
	}
	if len(off) > 0 {
		t.Errorf("the browser requested %d URLs off 127.0.0.1: %v", len(off), off)
	}
	t.Logf("%d requests, %d off 127.0.0.1", len(l.urls), len(off))
}

// docsShot saves the page in the artifacts and, with
// PROMOCODES_TEST_DOCS_SCREENSHOTS=1, as docs/NAME.png (the pictures the
// README shows: refreshed on purpose, not by every run).
func (b *browser) docsShot(name string) chromedp.Action[chromedp.Void] {
	return b.docsShotAs(name, name)
}

// docsShotAs is docsShot for a picture whose artifact has another name
// (the walk's numbered shots).
func (b *browser) docsShotAs(shot, doc string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := b.shot(shot)(ctx, tg); err != nil {
			return err
		}
		if os.Getenv("PROMOCODES_TEST_DOCS_SCREENSHOTS") != "1" {
			return nil
		}
		buf, err := os.ReadFile(filepath.Join(b.shots, shot+".png"))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join("..", "docs", doc+".png"), buf, 0o644)
	})
}

// chartTotal is JavaScript that sums one series of a chart's data (a
// string, -1 without that series).
func chartTotal(id, label string) string {
	return fmt.Sprintf(`(function(){var d=JSON.parse(document.querySelector('#%s script.tschart-data').textContent);`+
		`var s=d.series.filter(function(s){return s.label===%q})[0];return String(s?s.values.reduce(function(a,b){return a+b},0):-1)})()`, id, label)
}

// The API reference: Swagger UI, grouped by the document's tags in order,
// no PUT offered.
func browserDocs(t *testing.T, b *browser) {
	b.run(t, "open /docs",
		chromedp.Navigate(b.base+"/docs"),
		chromedp.WaitVisible(css(`.opblock-tag-section`)),
		chromedp.WaitVisible(css(`.opblock`)),
		b.shot("20-api-docs"),
	)
	tags := b.eval(t, `Array.from(document.querySelectorAll('.opblock-tag')).map(function(e){return e.dataset.tag}).join(' ')`)
	if want := "promotions codes redemptions reservations operations"; tags != want {
		t.Errorf("/docs groups %q, want %q", tags, want)
	}
	if n := b.eval(t, `String(document.querySelectorAll('.opblock-put').length)`); n != "0" {
		t.Errorf("/docs shows %s PUT operations; the API takes none", n)
	}
	if n, _ := strconv.Atoi(b.eval(t, `String(document.querySelectorAll('.opblock').length)`)); n < 20 {
		t.Errorf("/docs shows %d operations, want them all (20 or more)", n)
	}
}

// Analytics: one promotion's chart holds its redemptions, rollback and
// refusal by reason; two promotions side by side, one series each.
func browserAnalytics(t *testing.T, b *browser) {
	var a, c struct{ ID string }
	if st := b.apiDo(t, "POST", "/v1/promotions", `{"name":"spring-eu","code":"SPRINGEU26","maxUsagePerCode":100,"perUserLimit":2}`, &a); st != 201 && st != 202 {
		t.Fatalf("create spring-eu: %d", st)
	}
	if st := b.apiDo(t, "POST", "/v1/promotions", `{"name":"spring-us","code":"SPRINGUS26","maxUsagePerCode":3}`, &c); st != 201 && st != 202 {
		t.Fatalf("create spring-us: %d", st)
	}
	redeem := func(code, user string) (status int, id, reason string) {
		var out struct{ ID, Reason string }
		status = b.apiDo(t, "POST", "/v1/codes/"+code+"/redemptions", fmt.Sprintf(`{"userId":%q}`, user), &out)
		return status, out.ID, out.Reason
	}
	var first string
	for i := range 7 {
		st, id, _ := redeem("SPRINGEU26", fmt.Sprintf("shopper-%d", i%4))
		if st != 201 {
			t.Fatalf("redeem spring-eu #%d: %d", i, st)
		}
		if first == "" {
			first = id
		}
	}
	if st, _, reason := redeem("SPRINGEU26", "shopper-0"); reason != "user_limit_reached" {
		t.Fatalf("a third use by shopper-0 = %d %s, want user_limit_reached", st, reason)
	}
	if st := b.apiDo(t, "POST", "/v1/redemptions/"+first+"/rollback", `{"reason":"order cancelled"}`, nil); st != 200 {
		t.Fatalf("rollback: %d", st)
	}
	for i := range 5 {
		redeem("SPRINGUS26", fmt.Sprintf("us-%d", i)) // 3 succeed, 2 code_exhausted
	}
	// Refusal counts reach the database every 5 s.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		var st struct {
			Refusals []struct{ Reason string } `json:"refusals"`
		}
		b.apiDo(t, "GET", "/v1/promotions/"+a.ID+"/stats", "", &st)
		if len(st.Refusals) > 0 || time.Now().After(deadline) {
			break
		}
	}
	b.run(t, "one promotion's analytics",
		chromedp.Navigate(b.base+"/console/analytics?p="+a.ID),
		chromedp.WaitVisible(css(`#chart[data-drawn="true"] canvas`)),
		chromedp.WaitVisible(css(`#figures`)),
		b.docsShot("console-analytics"),
	)
	for label, want := range map[string]string{"redemptions": "7", "rollbacks": "1", "refused: user_limit_reached": "1"} {
		if n := b.eval(t, chartTotal("chart", label)); n != want {
			t.Errorf("chart series %q holds %s, want %s", label, n, want)
		}
	}
	legend := b.eval(t, `document.querySelector('#chart .u-legend').textContent`)
	for _, want := range []string{"redemptions", "rollbacks", "refused: user_limit_reached"} {
		if !strings.Contains(legend, want) {
			t.Errorf("chart legend %q lacks %q", legend, want)
		}
	}
	b.run(t, "two side by side",
		chromedp.Navigate(b.base+"/console/analytics?p="+a.ID+"&p="+c.ID),
		chromedp.WaitVisible(css(`#chart[data-drawn="true"][data-series="2"] canvas`)),
		b.docsShot("console-analytics-compare"),
	)
	if got := b.eval(t, `document.querySelectorAll('#figures [data-stat="rate"]')[1].textContent`); got != "100.00%" {
		t.Errorf("spring-us redemption rate %q, want 100.00%%", got)
	}
	if n := b.eval(t, chartTotal("chart", "#"+c.ID+" spring-us")); n != "3" {
		t.Errorf("comparison: spring-us holds %s, want 3", n)
	}
}

// Operations: lag per group and partition, and the topic browser showing a
// parked event's headers.
func browserOperations(t *testing.T, b *browser) {
	parked := parkBatch(t, b.cfg, b.proc.Brokers)
	b.run(t, "operations page",
		chromedp.Navigate(b.base+"/console/ops"),
		chromedp.WaitVisible(css(`#lag table.lag`)),
		chromedp.WaitVisible(css(fmt.Sprintf(`button.dryrun[data-promotion="%d"]`, parked))),
		b.docsShot("console-operations"),
	)
	groups := b.eval(t, `String(document.querySelectorAll('#lag tbody.group').length)`)
	parts := b.eval(t, `String(document.querySelectorAll('#lag tr[data-partition]').length)`)
	want := fmt.Sprint(3 * b.cfg.Kafka.Partitions) // generators: batches, retry; shovel: error
	if groups != "2" || parts != want {
		t.Errorf("lag shows %s groups and %s partitions, want 2 and %s", groups, parts, want)
	}
	b.run(t, "topic browser",
		chromedp.Navigate(b.base+fmt.Sprintf("/console/ops/topics?topic=dead&promotion=%d", parked)),
		chromedp.WaitVisible(css(`#events`)),
		b.shot("21-topic-browser"),
	)
	if got := b.text(t, `#events td.headers`); !strings.Contains(got, "x-dead-reason=max retries (5) reached") {
		t.Errorf("the parked event's headers %q lack its reason", got)
	}
}
