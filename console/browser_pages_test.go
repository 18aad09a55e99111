//go:build integration

package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/app"
)

// browserStack is the dev stack in-process (embedded broker, SQLite, API,
// generators, shovel; open unless tweak sets admin tokens) and a headless
// chromium that records every URL it requests. The browser is started: the
// first call has no deadline, later steps take their own.
type browserStack struct {
	t    *testing.T
	base string
	cfg  app.Config
	proc *app.Process
	bctx context.Context

	mu   sync.Mutex
	urls []string
}

func newBrowserStack(t *testing.T, tweak func(*app.Config)) *browserStack {
	t.Helper()
	bin := chromium(t)
	cfg := app.Defaults()
	cfg.Env = "dev"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = []string{"127.0.0.1:0"}
	cfg.Kafka.Partitions = 2
	cfg.DB = app.DBConfig{Driver: "sqlite", MaxConns: 4}
	cfg.Codes.Secret = "browser-test-secret-0123456789abcdef"
	cfg.Shovel.Interval = time.Second
	cfg.Dev.DataDir = t.TempDir()
	if tweak != nil {
		tweak(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	proc, err := app.StartDev(ctx, cfg, zaptest.NewLogger(t).Named("dev"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := proc.Wait(); err != nil {
			t.Errorf("dev stopped with %v", err)
		}
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	s := &browserStack{t: t, base: "http://" + proc.HTTPAddr, cfg: cfg, proc: proc, bctx: bctx}
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Request != nil {
			s.mu.Lock()
			s.urls = append(s.urls, e.Request.URL)
			s.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// run runs steps with a deadline of their own; t is the subtest's.
func (s *browserStack) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(s.bctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, s *browserStack, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(s.bctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// offsite are the URLs requested so far that leave 127.0.0.1 (data:, blob:
// and about: stay in the page).
func (s *browserStack) offsite() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, u := range s.urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "data" && p.Scheme != "blob" && p.Scheme != "about" && p.Hostname() != "127.0.0.1") {
			out = append(out, u)
		}
	}
	return out
}

// screenshot saves the page in the test artifacts and, toDocs with
// PROMOCODES_TEST_DOCS_SCREENSHOTS=1 in the environment, as docs/NAME.png
// (the pictures the README shows: refreshed on purpose, not by every run).
func screenshot(name string, toDocs bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		buf, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		if toDocs && os.Getenv("PROMOCODES_TEST_DOCS_SCREENSHOTS") == "1" {
			if err := os.WriteFile(filepath.Join("..", "docs", name+".png"), buf, 0o644); err != nil {
				return err
			}
		}
		dir := os.Getenv("PROMOCODES_TEST_ARTIFACTS")
		if dir == "" {
			dir = filepath.Join("..", "bin", "artifacts", "console")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644)
	})
}

// chartTotal is JavaScript that sums one series of a chart's data.
func chartTotal(id, label string) string {
	return fmt.Sprintf(`(function(){var d=JSON.parse(document.querySelector('#%s script.tschart-data').textContent);`+
		`var s=d.series.filter(function(s){return s.label===%q})[0];return s?s.values.reduce(function(a,b){return a+b},0):-1})()`, id, label)
}

// apiJSON calls the dev API (open) and decodes its answer.
func (s *browserStack) apiJSON(t *testing.T, method, path, body string, key string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// TestNewPagesInBrowser drives the API reference, the analytics and the
// operations pages in Debian's chromium over the dev stack, each a subtest
// of its own, and checks that no request leaves 127.0.0.1. The analytics
// and operations screenshots are the ones in docs/.
func TestNewPagesInBrowser(t *testing.T) {
	s := newBrowserStack(t, nil)

	t.Run("docs", func(t *testing.T) {
		s.run(t, "open /docs",
			chromedp.Navigate(s.base+"/docs"),
			chromedp.WaitVisible(chromedp.CSS(`.opblock-tag-section`)),
			chromedp.WaitVisible(chromedp.CSS(`.opblock`)),
		)
		tags := eval[[]string](t, s, `Array.from(document.querySelectorAll('.opblock-tag')).map(function(e){return e.dataset.tag})`)
		if want := []string{"promotions", "codes", "redemptions", "reservations", "operations"}; fmt.Sprint(tags) != fmt.Sprint(want) {
			t.Errorf("/docs groups %v, want %v", tags, want)
		}
		if n := eval[int](t, s, `document.querySelectorAll('.opblock-put').length`); n != 0 {
			t.Errorf("/docs shows %d PUT operations; the API takes none", n)
		}
		if n := eval[int](t, s, `document.querySelectorAll('.opblock').length`); n < 20 {
			t.Errorf("/docs shows %d operations, want them all (20 or more)", n)
		}
		s.run(t, "screenshot", screenshot("api-docs", false))
	})

	t.Run("analytics", func(t *testing.T) {
		var a, b struct{ ID string }
		if st := s.apiJSON(t, "POST", "/v1/promotions", `{"name":"spring-eu","code":"SPRINGEU26","maxUsagePerCode":100,"perUserLimit":2}`, "", &a); st != 201 && st != 202 {
			t.Fatalf("create A: %d", st)
		}
		if st := s.apiJSON(t, "POST", "/v1/promotions", `{"name":"spring-us","code":"SPRINGUS26","maxUsagePerCode":3}`, "", &b); st != 201 && st != 202 {
			t.Fatalf("create B: %d", st)
		}
		redeem := func(code, user, key string) (status int, id, reason string) {
			var out struct{ ID, Reason string }
			status = s.apiJSON(t, "POST", "/v1/codes/"+code+"/redemptions", fmt.Sprintf(`{"userId":%q,"orderId":%q}`, user, key), key, &out)
			return status, out.ID, out.Reason
		}
		var first string
		for i := range 7 {
			st, id, _ := redeem("SPRINGEU26", fmt.Sprintf("shopper-%d", i%4), fmt.Sprintf("eu-%d", i))
			if st != 201 {
				t.Fatalf("redeem A #%d: %d", i, st)
			}
			if first == "" {
				first = id
			}
		}
		if st, _, reason := redeem("SPRINGEU26", "shopper-0", "eu-over"); reason != "user_limit_reached" {
			t.Fatalf("a third use by shopper-0 = %d %s, want user_limit_reached", st, reason)
		}
		if st := s.apiJSON(t, "POST", "/v1/redemptions/"+first+"/rollback", `{"reason":"order cancelled"}`, "", nil); st != 200 {
			t.Fatalf("rollback: %d", st)
		}
		for i := range 5 {
			redeem("SPRINGUS26", fmt.Sprintf("us-%d", i), fmt.Sprintf("us-%d", i)) // 3 succeed, 2 code_exhausted
		}
		// Refusal counts reach the database every 5 s.
		deadline := time.Now().Add(30 * time.Second)
		for {
			var st struct {
				Refusals []struct{ Reason string } `json:"refusals"`
			}
			s.apiJSON(t, "GET", "/v1/promotions/"+b.ID+"/stats", "", "", &st)
			if len(st.Refusals) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		s.run(t, "one promotion's analytics",
			chromedp.Navigate(s.base+"/console/analytics?p="+a.ID),
			chromedp.WaitVisible(chromedp.CSS(`#chart[data-drawn="true"] canvas`)),
			chromedp.WaitVisible(chromedp.CSS(`#figures`)),
		)
		s.run(t, "screenshot", screenshot("console-analytics", true))
		if n := eval[int](t, s, chartTotal("chart", "redemptions")); n != 7 {
			t.Errorf("chart holds %d redemptions, want 7", n)
		}
		if n := eval[int](t, s, chartTotal("chart", "rollbacks")); n != 1 {
			t.Errorf("chart holds %d rollbacks, want 1", n)
		}
		if n := eval[int](t, s, chartTotal("chart", "refused: user_limit_reached")); n != 1 {
			t.Errorf("chart holds %d user_limit_reached refusals, want 1", n)
		}
		legend := eval[string](t, s, `document.querySelector('#chart .u-legend').textContent`)
		for _, want := range []string{"redemptions", "rollbacks", "refused: user_limit_reached"} {
			if !strings.Contains(legend, want) {
				t.Errorf("chart legend %q lacks %q", legend, want)
			}
		}
		s.run(t, "comparison",
			chromedp.Navigate(s.base+"/console/analytics?p="+a.ID+"&p="+b.ID),
			chromedp.WaitVisible(chromedp.CSS(`#chart[data-drawn="true"][data-series="2"] canvas`)),
			screenshot("console-analytics-compare", true),
		)
		if got := eval[string](t, s, `document.querySelectorAll('#figures [data-stat="rate"]')[1].textContent`); got != "100.00%" {
			t.Errorf("B's redemption rate %q, want 100.00%%", got)
		}
		if n := eval[int](t, s, chartTotal("chart", "#"+b.ID+" spring-us")); n != 3 {
			t.Errorf("comparison: spring-us holds %d, want 3", n)
		}
		// The promotion page draws the same chart.
		s.run(t, "promotion page chart",
			chromedp.Navigate(s.base+"/console/promotions/"+b.ID),
			chromedp.WaitVisible(chromedp.CSS(`#chart[data-drawn="true"] canvas`)),
		)
	})

	t.Run("operations", func(t *testing.T) {
		parked := parkBatch(t, s.cfg, s.proc.Brokers)
		var p struct{ ID string }
		if st := s.apiJSON(t, "POST", "/v1/promotions", `{"name":"ops-walk","codeCount":20000,"format":{"charset":"alnum","length":10,"prefix":"OPS-"}}`, "", &p); st != 202 {
			t.Fatalf("create: %d", st)
		}
		dry := chromedp.CSS(fmt.Sprintf(`button.dryrun[data-promotion="%d"]`, parked))
		s.run(t, "operations page",
			chromedp.Navigate(s.base+"/console/ops"),
			chromedp.WaitVisible(chromedp.CSS(`#lag table.lag`)),
			chromedp.WaitVisible(dry),
		)
		groups := eval[int](t, s, `document.querySelectorAll('#lag tbody.group').length`)
		parts := eval[int](t, s, `document.querySelectorAll('#lag tr[data-partition]').length`)
		if groups != 2 || parts != 6 { // generators: batches, retry; shovel: error; 2 partitions each
			t.Errorf("lag shows %d groups and %d partitions, want 2 and 6", groups, parts)
		}
		s.run(t, "screenshot", screenshot("console-operations", true))
		s.run(t, "topic browser",
			chromedp.Navigate(s.base+fmt.Sprintf("/console/ops/topics?topic=dead&promotion=%d", parked)),
			chromedp.WaitVisible(chromedp.CSS(`#events`)),
		)
		if got := eval[string](t, s, `document.querySelector('#events td.headers').textContent`); !strings.Contains(got, "x-dead-reason=max retries (5) reached") {
			t.Errorf("the parked event's headers %q lack its reason", got)
		}
		s.run(t, "replay: dry run, then confirm",
			chromedp.Navigate(s.base+"/console/ops"),
			chromedp.WaitVisible(dry),
			chromedp.Click(dry),
			chromedp.WaitVisible(chromedp.CSS(`#confirm-replay`)),
			chromedp.Click(chromedp.CSS(`#confirm-replay`)),
			chromedp.WaitVisible(chromedp.CSS(`#replay-result.done`)),
			chromedp.Navigate(s.base+fmt.Sprintf("/console/promotions/%d", parked)),
			chromedp.WaitVisible(chromedp.CSS(`#summary[data-status="completed"]`)),
		)
	})

	if off := s.offsite(); len(off) > 0 {
		t.Errorf("the browser requested %d URLs off 127.0.0.1: %v", len(off), off)
	}
	t.Logf("%d requests, all on 127.0.0.1", len(s.urls))
}
