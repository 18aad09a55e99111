//go:build integration

package console_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
)

// chromium finds Debian's chromium (.ci/run installs it; this test installs
// nothing) and skips, with the reason, when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("PROMOCODES_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Skip("browser test skipped: no chromium at /usr/bin/chromium (install Debian's chromium package; .ci/run does)")
	return ""
}

// artifacts is where screenshots go: $PROMOCODES_TEST_ARTIFACTS, else
// bin/artifacts/console under the repository.
func artifacts(t *testing.T) string {
	dir := os.Getenv("PROMOCODES_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "bin", "artifacts", "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

const browserToken = "browser-admin-token"

// browser is one headless chromium on the dev stack; its helpers fail the
// (sub)test they are given.
type browser struct {
	ctx   context.Context // the tab
	base  string          // the dev stack's URL
	shots string          // where screenshots go
	cfg   app.Config
	proc  *app.Process
}

func (b *browser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, 2*time.Minute)
}

func (b *browser) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

func (b *browser) attr(t *testing.T, sel, name string) string {
	t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	return v.Value
}

func (b *browser) eval(t *testing.T, js string, opts ...chromedp.EvaluateOption) string {
	t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, opts...))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func (b *browser) shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		buf, err := chromedp.FullScreenshot(100)(ctx, tg) // quality 100 is PNG (lower is JPEG)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(b.shots, name+".png"), buf, 0o644)
	})
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// signedIn signs the browser in with the admin token unless it is.
func (b *browser) signedIn(t *testing.T) {
	t.Helper()
	b.run(t, "open the console", chromedp.Navigate(b.base+"/console/"))
	if loc, err := chromedp.Run(b.ctx, chromedp.Location()); err == nil && !strings.Contains(loc, "/signin") {
		return
	}
	b.run(t, "sign in", chromedp.WaitVisible(css("#token")), chromedp.SendKeys(css("#token"), browserToken),
		chromedp.Click(css("#signin")), chromedp.WaitVisible(css("#promotions")))
}

// apiDo calls the dev stack's API with the admin token and decodes its
// JSON answer into out (when not nil).
func (b *browser) apiDo(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, b.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+browserToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
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

// completed creates a generated promotion of n codes through the API and
// waits until it is completed.
func (b *browser) completed(t *testing.T, name string, n int) string {
	t.Helper()
	var c struct{ ID string }
	if st := b.apiDo(t, http.MethodPost, "/v1/promotions", fmt.Sprintf(`{"name":%q,"codeCount":%d,"format":{"charset":"alnum","length":10,"prefix":"BRW-"},"maxUsagePerCode":3,"perUserLimit":0}`, name, n), &c); st != http.StatusAccepted {
		t.Fatalf("create %s = %d", name, st)
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var p struct{ Status string }
		b.apiDo(t, http.MethodGet, "/v1/promotions/"+c.ID, "", &p)
		if p.Status == "completed" {
			return c.ID
		}
	}
	t.Fatalf("promotion %s not completed after 2 minutes", c.ID)
	return ""
}

// TestConsoleInBrowser drives the console in a real headless chromium over
// the whole dev stack in-process (embedded broker, SQLite, API, generators,
// shovel). Each page is a subtest of its own, on promotions of its own, so
// each fails on its own: sign-in (a wrong token, then the right one), the
// new-promotion preview, a promotion's live parts watched to completion
// without a reload, the list, analytics, the lifecycle actions, edit,
// cancel and delete through their confirmations, a code's page, the
// redemption log, a user's page, and a parked batch replayed from the
// operations page. Screenshots are saved as artifacts.
func TestConsoleInBrowser(t *testing.T) {
	bin := chromium(t)
	shots := artifacts(t)

	cfg := app.Defaults()
	cfg.Env = "dev"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = []string{"127.0.0.1:0"}
	cfg.Kafka.Partitions = 4
	cfg.DB = app.DBConfig{Driver: "sqlite", MaxConns: 4}
	cfg.Codes.Secret = "browser-test-secret-0123456789abcdef"
	cfg.Shovel.Interval = time.Second
	cfg.Dev.DataDir = t.TempDir()
	cfg.Auth.AdminTokens = []string{browserToken}
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
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	// The first call starts the browser and must have no deadline; each
	// later step gets its own.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{ctx: bctx, base: "http://" + proc.HTTPAddr, shots: shots, cfg: cfg, proc: proc}
	requests := recordRequests(t, bctx)

	t.Run("sign-in", func(t *testing.T) { browserSignIn(t, b) })
	b.signedIn(t) // whatever the sign-in subtest found, the others start signed in
	for _, st := range []struct {
		name string
		fn   func(*testing.T, *browser)
	}{
		{"preview", browserPreview},
		{"create through the form, watch it complete", browserLiveParts},
		{"live parts follow each batch without a reload", browserLiveBatches},
		{"list and analytics", browserListAndAnalytics},
		{"lifecycle actions", browserLifecycle},
		{"edit", browserEdit},
		{"cancel after confirmation", browserCancel},
		{"delete after confirmation", browserDelete},
		{"code page", browserCodePage},
		{"redemption log", browserRedemptionLog},
		{"user page", browserUserPage},
		{"parked batch replayed", browserReplay},
		{"API reference", browserDocs},
		{"analytics and comparison", browserAnalytics},
		{"operations and topic browser", browserOperations},
	} {
		t.Run(st.name, func(t *testing.T) {
			b.signedIn(t)
			st.fn(t, b)
		})
	}
	requests.allLocal(t)
	t.Logf("screenshots in %s", shots)
}

// Sign in: a wrong token is refused on the page, and a second attempt from
// that page with the right token signs in (it failed with a plain-text 403
// before). The session cookie is HttpOnly and SameSite=Strict (Secure is off
// in dev, which serves plain HTTP; the unit test checks it on).
func browserSignIn(t *testing.T, b *browser) {
	b.run(t, "wrong token",
		chromedp.Navigate(b.base+"/"),
		chromedp.WaitVisible(css("#token")),
		b.shot("01-signin"),
		chromedp.SendKeys(css("#token"), "not-the-token"),
		chromedp.Click(css("#signin")),
		chromedp.WaitVisible(css("#signin-error")),
	)
	b.run(t, "second attempt, right token",
		chromedp.SendKeys(css("#token"), browserToken),
		chromedp.Click(css("#signin")),
		chromedp.WaitVisible(css("#promotions")),
	)
	if loc, err := chromedp.Run(b.ctx, chromedp.Location()); err != nil || loc != b.base+"/console/" {
		t.Errorf("after sign-in at %s (%v), want %s/console/", loc, err, b.base)
	}
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatalf("read cookies: %v", err)
	}
	found := false
	for _, c := range res.Cookies {
		if c.Name == "promocodes_session" {
			found = true
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Path != "/console" {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/console", c)
			}
		}
	}
	if !found {
		t.Fatalf("no session cookie in the browser: %v", res.Cookies)
	}
	if dc := b.eval(t, `document.cookie`); strings.Contains(dc, "promocodes_session") {
		t.Errorf("document.cookie = %q: the session must not be readable by scripts", dc)
	}
}

// The preview refuses a too-short length and names the shortest that fits.
func browserPreview(t *testing.T, b *browser) {
	b.run(t, "preview refusal",
		chromedp.Navigate(b.base+"/console/new"),
		chromedp.WaitVisible(css("#newform")),
		chromedp.SetValue(css("#name"), "browser 200k"),
		chromedp.SetValue(css("#codeCount"), "200000"),
		chromedp.SetValue(css("#length"), ""),
		chromedp.SendKeys(css("#length"), "5"),
		chromedp.WaitVisible(css("#capacity-refusal")),
		b.docsShotAs("02-preview-refusal", "console"),
	)
	if got := b.text(t, "#shortest"); got != "8" {
		t.Errorf("preview names shortest length %q for 200,000 alnum codes, want 8", got)
	}
	b.run(t, "preview fits",
		chromedp.SetValue(css("#prefix"), "BRWS-"),
		chromedp.SetValue(css("#length"), ""),
		chromedp.SendKeys(css("#length"), "10"),
		chromedp.WaitVisible(css("#capacity-ok")),
		b.shot("03-preview-ok"),
	)
}

// liveWatch records, in the page, every swap of the live parts: whether the
// summary's batch count and the incomplete-batches table agreed, and that
// the page was never reloaded (a reload clears window.liveWatch).
const liveWatch = `(function(){
  window.liveWatch = {swaps: 0, disagreements: [], seen: []};
  var check = function () {
    var line = (document.getElementById('batches') || {}).textContent || '';
    var m = /(\d+) of (\d+) complete/.exec(line);
    var rows = document.querySelectorAll('#incomplete tbody tr').length;
    var more = document.getElementById('batches-more');
    if (m && !more && rows !== (+m[2]) - (+m[1])) window.liveWatch.disagreements.push(line + ' but ' + rows + ' rows');
    window.liveWatch.seen.push(line);
  };
  new MutationObserver(function () { window.liveWatch.swaps++; check(); }).observe(document.querySelector('main'), {childList: true, subtree: true});
  return 'watching';
})()`

// A promotion created through the form: its page's live parts (status,
// bar, summary, incomplete batches, export button) follow generation to
// the end without a reload, agreeing at every swap.
func browserLiveParts(t *testing.T, b *browser) {
	b.run(t, "create 200,000 codes through the form",
		chromedp.Navigate(b.base+"/console/new"),
		chromedp.WaitVisible(css("#newform")),
		chromedp.SetValue(css("#name"), "browser 200k"),
		chromedp.SetValue(css("#codeCount"), "200000"),
		chromedp.SetValue(css("#prefix"), "BRWS-"),
		chromedp.SetValue(css("#length"), ""),
		chromedp.SendKeys(css("#length"), "10"),
		chromedp.WaitVisible(css("#capacity-ok")),
		chromedp.Click(css("#create")),
		chromedp.WaitVisible(css("#summary")),
	)
	start := time.Now()
	if got := b.eval(t, liveWatch); got != "watching" {
		t.Fatalf("install the watch: %q", got)
	}
	b.run(t, "live parts reach completion",
		b.shot("04-promotion-generating"),
		chromedp.WaitVisible(css(`#summary[data-status="completed"]`)),
		chromedp.WaitVisible(css("#batches-none")),
		b.shot("04-promotion-completed"),
	)
	t.Logf("200,000 codes generated, seen complete in the browser %s after the submit", time.Since(start).Round(100*time.Millisecond))
	if got := b.eval(t, `window.liveWatch ? 'same page' : 'reloaded'`); got != "same page" {
		t.Fatalf("the page was reloaded on the way to completion")
	}
	if got := b.eval(t, `JSON.stringify(window.liveWatch.disagreements)`); got != "[]" {
		t.Errorf("summary and batches table disagreed: %s", got)
	}
	t.Logf("live parts seen: %s", b.eval(t, `JSON.stringify(window.liveWatch.seen.filter(function(v,i,a){return a.indexOf(v)===i}))`))
	if v, m := b.attr(t, "#summary progress", "value"), b.attr(t, "#summary progress", "max"); v != "200000" || m != "200000" {
		t.Errorf("progress bar %s/%s, want 200000/200000", v, m)
	}
	if got := b.text(t, "#export"); got != "Export codes (CSV)" {
		t.Errorf("export button says %q at completion, want \"Export codes (CSV)\"", got)
	}
	if got := b.text(t, "h1 .st"); got != "completed" {
		t.Errorf("status badge says %q at completion", got)
	}
	// A top-up from the page: the parts follow it to the new total, again
	// without a reload after the form's own redirect.
	b.run(t, "top-up", chromedp.SendKeys(css("#topup-count"), "50000"), chromedp.Click(css("#topup")), chromedp.WaitVisible(css("#topups")))
	b.eval(t, liveWatch)
	b.run(t, "top-up completes", chromedp.WaitVisible(css(`#summary[data-status="completed"]`)), chromedp.WaitVisible(css("#batches-none")))
	if got := b.eval(t, `window.liveWatch ? 'same page' : 'reloaded'`); got != "same page" {
		t.Errorf("the page was reloaded on the way to the top-up's completion")
	}
	if v := b.attr(t, "#summary progress", "value"); v != "250000" {
		t.Errorf("progress bar after the top-up at %s, want 250000", v)
	}
	if got := b.text(t, "#export"); got != "Export codes (CSV)" {
		t.Errorf("export button says %q after the top-up completed", got)
	}
}

// A promotion whose batch events the test sends one at a time: its page,
// opened while nothing is generated, follows each batch without a reload,
// the summary, the bar, the incomplete-batches table and the export button
// agreeing at every step, to completion.
func browserLiveBatches(t *testing.T, b *browser) {
	id, batches := heldPromotion(t, b.cfg, 4000, 1000)
	b.run(t, "open the held promotion",
		chromedp.Navigate(b.base+"/console/promotions/"+strconv.FormatInt(id, 10)),
		chromedp.WaitVisible(css(`#summary[data-status="pending"]`)),
	)
	if got := b.eval(t, liveWatch); got != "watching" {
		t.Fatalf("install the watch: %q", got)
	}
	rows := func() string { return b.eval(t, `String(document.querySelectorAll('#incomplete tbody tr').length)`) }
	if n := rows(); n != "4" {
		t.Fatalf("the page lists %s incomplete batches, want 4", n)
	}
	for i, bt := range batches {
		publishBatch(t, b.cfg, b.proc.Brokers, bt)
		want := fmt.Sprintf("%d of 4 complete, 0 retrying, 0 parked", i+1)
		b.run(t, "batch "+strconv.Itoa(i)+" seen", chromedp.WaitVisible(css(fmt.Sprintf(`#batches-card[data-complete="%d"]`, i+1))))
		if got := b.text(t, "#batches"); got != want {
			t.Errorf("after batch %d the summary says %q, want %q", i, got, want)
		}
		if n := rows(); n != strconv.Itoa(3-i) {
			t.Errorf("after batch %d the table lists %s incomplete batches, want %d", i, n, 3-i)
		}
		if v := b.attr(t, "#summary progress", "value"); v != strconv.Itoa(1000*(i+1)) {
			t.Errorf("after batch %d the bar is at %s", i, v)
		}
		wantExport := "Export the codes generated so far (CSV)"
		if i == 3 {
			wantExport = "Export codes (CSV)"
		}
		if got := b.text(t, "#export"); got != wantExport {
			t.Errorf("after batch %d the export button says %q, want %q", i, got, wantExport)
		}
		if i == 1 {
			b.run(t, "shot", b.docsShotAs("04a-promotion-live", "console-live"))
		}
	}
	b.run(t, "completed", chromedp.WaitVisible(css(`#summary[data-status="completed"]`)), chromedp.WaitVisible(css("#batches-none")))
	if got := b.eval(t, `window.liveWatch ? 'same page' : 'reloaded'`); got != "same page" {
		t.Fatalf("the page was reloaded on the way to completion")
	}
	if got := b.eval(t, `JSON.stringify(window.liveWatch.disagreements)`); got != "[]" {
		t.Errorf("summary and batches table disagreed: %s", got)
	}
}

// The list shows a completed promotion at 100%; three codes redeemed
// through the API show in the promotion's counts and chart, and in the
// list's redeemed column (the totals rollup of the real binary).
func browserListAndAnalytics(t *testing.T, b *browser) {
	promoID := b.completed(t, "browser list", 2000)
	row := "#rows tr[data-id='" + promoID + "']"
	b.run(t, "list shows it", chromedp.Navigate(b.base+"/console/"), chromedp.WaitVisible(css(row)), b.shot("05-list"))
	if pct := b.text(t, row+" .pct"); pct != "100.0%" {
		t.Errorf("list shows %q, want 100.0%%", pct)
	}
	redeemed := redeemSome(t, b.base, promoID, 3)
	b.run(t, "analytics follow redemptions",
		chromedp.Navigate(b.base+"/console/promotions/"+promoID),
		chromedp.WaitVisible(css(`#chart[data-drawn="true"] canvas`)),
		b.shot("05b-analytics"),
	)
	if got := b.text(t, "#stat-redemptions"); got != strconv.Itoa(redeemed) {
		t.Errorf("page shows %s redemptions, want %d", got, redeemed)
	}
	if n := b.eval(t, chartTotal("chart", "redemptions")); n != strconv.Itoa(redeemed) {
		t.Errorf("chart holds %s redemptions, want %d", n, redeemed)
	}
	b.run(t, "list counts redemptions", chromedp.Navigate(b.base+"/console/"), chromedp.WaitVisible(css(row+" td.redeemed")))
	for deadline := time.Now().Add(15 * time.Second); ; {
		got := b.text(t, row+" td.redeemed")
		if got == strconv.Itoa(redeemed) {
			b.run(t, "list redeemed shot", b.shot("05c-list-redeemed"))
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("list shows %q codes redeemed, want %d", got, redeemed)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Deactivate (a redemption through the API is refused, 410 deactivated),
// reactivate (it succeeds), revoke a code from the promotion's page.
func browserLifecycle(t *testing.T, b *browser) {
	promoID := b.completed(t, "browser lifecycle", 2000)
	codes := exportCodes(t, b.base, promoID, 2)
	b.run(t, "deactivate from the page",
		chromedp.Navigate(b.base+"/console/promotions/"+promoID),
		chromedp.WaitVisible(css("#deactivate")),
		chromedp.Click(css("#deactivate")),
		chromedp.WaitVisible(css("#active.st-inactive")),
		chromedp.WaitVisible(css("#flash")),
		b.shot("10-deactivated"),
	)
	if status, reason := redeemOne(t, b.base, codes[0], "deactivated"); status != http.StatusGone || reason != "deactivated" {
		t.Errorf("redeem while deactivated = %d %q, want 410 deactivated", status, reason)
	}
	b.run(t, "reactivate from the page", chromedp.Click(css("#reactivate")), chromedp.WaitVisible(css("#active.st-active")))
	if status, reason := redeemOne(t, b.base, codes[0], "reactivated"); status != http.StatusCreated {
		t.Errorf("redeem after reactivation = %d %q, want 201", status, reason)
	}
	b.run(t, "revoke from the page",
		chromedp.SendKeys(css("#revoke-code"), strings.ToLower(codes[1])),
		chromedp.SendKeys(css("#revoke-reason"), "leaked on a coupon site"),
		chromedp.Click(css("#revoke")),
		chromedp.WaitVisible(css(`#audit tr[data-action="code.revoked"]`)),
		b.docsShotAs("10b-revoked", "console-promotion"),
	)
	if got := b.text(t, "#flash"); !strings.Contains(got, "Revoked") {
		t.Errorf("flash after revoke = %q", got)
	}
	if status, reason := redeemOne(t, b.base, codes[1], "revoked"); status != http.StatusGone || reason != "revoked" {
		t.Errorf("redeem a revoked code = %d %q, want 410 revoked", status, reason)
	}
}

// Edit a promotion's name and expiry from its page.
func browserEdit(t *testing.T, b *browser) {
	var c struct{ ID string }
	b.apiDo(t, http.MethodPost, "/v1/promotions", `{"name":"browser edit","code":"BRWEDIT42"}`, &c)
	expires := time.Now().UTC().Add(30 * 24 * time.Hour).Truncate(time.Minute)
	b.run(t, "edit from the page",
		chromedp.Navigate(b.base+"/console/promotions/"+c.ID),
		chromedp.WaitVisible(css("#edit")),
		chromedp.Click(css("#edit")),
		chromedp.WaitVisible(css("#edit-form")),
		chromedp.SetValue(css("#edit-name"), "browser edited"),
		chromedp.SetValue(css("#edit-expires"), expires.Format("2006-01-02T15:04")),
		b.shot("17-edit"),
		chromedp.Click(css("#edit-save")),
		chromedp.WaitVisible(css("#flash")),
	)
	if got := b.text(t, "h1"); !strings.HasPrefix(got, "browser edited") {
		t.Errorf("heading after the edit = %q", got)
	}
	var p struct {
		Name      string
		ExpiresAt *time.Time
	}
	b.apiDo(t, http.MethodGet, "/v1/promotions/"+c.ID, "", &p)
	if p.Name != "browser edited" || p.ExpiresAt == nil || !p.ExpiresAt.Equal(expires) {
		t.Errorf("after the edit the API has %q, %v; want %q, %s", p.Name, p.ExpiresAt, "browser edited", expires)
	}
}

// Cancel: a promotion whose batches are never published stays pending
// (generation here is faster than a click); cancel asks first, then works.
func browserCancel(t *testing.T, b *browser) {
	pendingID := strconv.FormatInt(unpublishedPromotion(t, b.cfg), 10)
	b.run(t, "cancel from the page",
		chromedp.Navigate(b.base+"/console/promotions/"+pendingID),
		chromedp.WaitVisible(css("h1 .st-pending")),
		chromedp.WaitVisible(css("#cancel")),
		chromedp.Click(css("#cancel")),
		chromedp.WaitVisible(css("#cancel-confirm-form")),
		chromedp.Click(css("#cancel-submit")), // unticked: nothing is sent
		chromedp.WaitVisible(css("#cancel-confirm")),
		b.shot("13a-cancel-confirm"),
		chromedp.Click(css("#cancel-confirm")),
		chromedp.Click(css("#cancel-submit")),
		chromedp.WaitVisible(css("h1 .st-cancelled")),
		chromedp.WaitVisible(css("#flash")),
		b.shot("13-cancelled"),
	)
	if n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('#cancel-form').length`)); err != nil || n != 0 {
		t.Errorf("a cancelled promotion's page still offers cancel (%d, %v)", n, err)
	}
}

// Delete through the two-step confirmation: the box must be ticked (the
// browser keeps the form until it is), then the page follows the deletion
// to its end.
func browserDelete(t *testing.T, b *browser) {
	promoID := b.completed(t, "browser delete", 20000)
	start := time.Now()
	b.run(t, "delete from the page",
		chromedp.Navigate(b.base+"/console/promotions/"+promoID),
		chromedp.WaitVisible(css("#delete")),
		chromedp.Click(css("#delete")),
		chromedp.WaitVisible(css("#delete-form")),
		chromedp.Click(css("#delete-submit")), // unticked: nothing is sent
		chromedp.WaitVisible(css("#delete-confirm")),
		b.shot("14-delete-confirm"),
		chromedp.Click(css("#delete-confirm")),
		chromedp.Click(css("#delete-submit")),
		chromedp.WaitVisible(css("#deletion")),
		b.shot("15-deleting"),
		chromedp.WaitVisible(css("h1 .st-deleted")),
		chromedp.WaitVisible(css("#deletion strong")),
		b.shot("16-deleted"),
	)
	if got := b.text(t, "#deletion strong"); got != "Deleted" {
		t.Errorf("deletion shows %q, want Deleted", got)
	}
	t.Logf("deletion of 20,000 codes seen finished in the browser %s after the confirmation", time.Since(start).Round(100*time.Millisecond))
}

// recordsFixture is a completed promotion with three codes redeemed by two
// users (one code twice) and a live reservation.
type recordsFixture struct {
	promotion string
	codes     []string
	ann, bob  string
}

func (b *browser) recordsFixture(t *testing.T, name string) recordsFixture {
	t.Helper()
	f := recordsFixture{promotion: b.completed(t, name, 2000), ann: "ann-" + name, bob: "bob-" + name}
	f.codes = exportCodes(t, b.base, f.promotion, 2)
	for i, r := range []struct{ code, user string }{{f.codes[0], f.ann}, {f.codes[0], f.bob}, {f.codes[1], f.ann}} {
		if st := b.apiDo(t, http.MethodPost, "/v1/codes/"+url.PathEscape(r.code)+"/redemptions",
			fmt.Sprintf(`{"userId":%q,"orderId":"order-%s-%d"}`, r.user, name, i), nil); st != http.StatusCreated {
			t.Fatalf("redeem %s for %s = %d", r.code, r.user, st)
		}
	}
	if st := b.apiDo(t, http.MethodPost, "/v1/codes/"+url.PathEscape(f.codes[0])+"/reservations",
		fmt.Sprintf(`{"userId":"cat-%s","ttl":"10m"}`, name), nil); st != http.StatusCreated {
		t.Fatalf("reserve = %d", st)
	}
	return f
}

// A code's page from the search box (typed in lower case, without its
// separator): its promotion, uses, live reservation and redemptions;
// rollback from there; its user's link; revoke.
func browserCodePage(t *testing.T, b *browser) {
	f := b.recordsFixture(t, "codepage")
	typed := strings.ToLower(strings.ReplaceAll(f.codes[0], "-", ""))
	b.run(t, "find the code",
		chromedp.Navigate(b.base+"/console/"),
		chromedp.WaitVisible(css("#find")),
		chromedp.SendKeys(css("#find"), typed+"\n"),
		chromedp.WaitVisible(css("#code-summary")),
		b.shot("20-code"),
	)
	if got := b.text(t, "#code"); got != f.codes[0] {
		t.Errorf("code page shows %q, want %q", got, f.codes[0])
	}
	if got := b.text(t, "#code-uses"); got != "2 of 3 used, 0 left, 1 held by reservations" {
		t.Errorf("code page uses = %q", got)
	}
	if n := b.eval(t, `String(document.querySelectorAll('#redemptions tr[data-id]').length)`); n != "2" {
		t.Errorf("code page lists %s redemptions, want 2", n)
	}
	if got := b.attr(t, "#code-promotion", "href"); got != "/console/promotions/"+f.promotion {
		t.Errorf("code page links to %q", got)
	}
	b.run(t, "roll back from the code page",
		chromedp.SendKeys(css("#redemptions tr[data-id] input[name=reason]"), "order cancelled"),
		chromedp.Click(css("#redemptions tr[data-id] .rollback-submit")),
		chromedp.WaitVisible(css("#flash")),
		chromedp.WaitVisible(css("#redemptions tr.rolledback")),
		b.docsShotAs("21-code-rolled-back", "console-code"),
	)
	if got := b.text(t, "#code-uses"); !strings.HasPrefix(got, "1 of 3 used") {
		t.Errorf("after the rollback the code page says %q", got)
	}
	b.run(t, "revoke from the code page",
		chromedp.SendKeys(css("#code-revoke-reason"), "leaked"),
		chromedp.Click(css("#code-revoke")),
		chromedp.WaitVisible(css("#code-revoked")),
	)
	if status, reason := redeemOne(t, b.base, f.codes[0], "codepage-revoked"); status != http.StatusGone || reason != "revoked" {
		t.Errorf("redeem after the code page's revoke = %d %q", status, reason)
	}
}

// A promotion's redemption log, from its page: filter by user, download
// the filtered CSV.
func browserRedemptionLog(t *testing.T, b *browser) {
	f := b.recordsFixture(t, "log")
	b.run(t, "open the log",
		chromedp.Navigate(b.base+"/console/promotions/"+f.promotion),
		chromedp.WaitVisible(css("#log-link")),
		chromedp.Click(css("#log-link")),
		chromedp.WaitVisible(css("#log-filter")),
		b.docsShotAs("22-redemption-log", "console-redemptions"),
	)
	if n := b.eval(t, `String(document.querySelectorAll('#redemptions tr[data-id]').length)`); n != "3" {
		t.Errorf("log lists %s redemptions, want 3", n)
	}
	b.run(t, "filter by user",
		chromedp.SendKeys(css("#log-user"), f.ann),
		chromedp.Click(css("#log-apply")),
		chromedp.WaitVisible(css(`#log-csv[href*="user=`+f.ann+`"]`)), // the filtered page, not the one clicked on
	)
	if n := b.eval(t, `String(document.querySelectorAll('#redemptions tr[data-id]').length)`); n != "2" {
		t.Errorf("log by user lists %s redemptions, want 2", n)
	}
	href := b.attr(t, "#log-csv", "href")
	if !strings.Contains(href, "user="+f.ann) {
		t.Errorf("CSV link %q lacks the filter", href)
	}
	csvText := b.eval(t, `fetch(document.getElementById('log-csv').href,{credentials:'same-origin'}).then(function(r){return r.text()})`, chromedp.EvalAwaitPromise)
	rows, err := csv.NewReader(strings.NewReader(csvText)).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "id" {
		t.Errorf("the filtered CSV has %d rows (%v), want a header and 2:\n%s", len(rows), err, csvText)
	}
}

// A user's page, from a redemption's user link: their redemptions and
// codes; rollback from there.
func browserUserPage(t *testing.T, b *browser) {
	f := b.recordsFixture(t, "userpage")
	b.run(t, "open the user from the code page",
		chromedp.Navigate(b.base+"/console/codes/"+url.PathEscape(f.codes[1])),
		chromedp.WaitVisible(css("#redemptions")),
		chromedp.Click(css(`#redemptions a[href="/console/users/`+f.ann+`"]`)),
		chromedp.WaitVisible(css("#user-codes")),
		b.docsShotAs("23-user", "console-user"),
	)
	if got := b.text(t, "#user"); got != f.ann {
		t.Errorf("user page of %q", got)
	}
	if n := b.eval(t, `String(document.querySelectorAll('#redemptions tr[data-id]').length)`); n != "2" {
		t.Errorf("user page lists %s redemptions, want 2", n)
	}
	if n := b.eval(t, `String(document.querySelectorAll('#user-codes tbody tr').length)`); n != "2" {
		t.Errorf("user page lists %s codes, want 2", n)
	}
	b.run(t, "roll back from the user page",
		chromedp.Click(css("#redemptions tr[data-id] .rollback-submit")),
		chromedp.WaitVisible(css("#flash")),
		chromedp.WaitVisible(css("#redemptions tr.rolledback")),
	)
}

// A parked batch: a promotion whose only batch event sits in the
// dead-letter topic after its retries, replayed from the operations page
// (a dry run, then the confirmation); its promotion completes.
func browserReplay(t *testing.T, b *browser) {
	parkedID := parkBatch(t, b.cfg, b.proc.Brokers)
	dry := css(fmt.Sprintf(`button.dryrun[data-promotion="%d"]`, parkedID))
	b.run(t, "replay from the operations page",
		chromedp.Navigate(b.base+"/console/ops"),
		chromedp.WaitVisible(dry),
		b.shot("06-ops-parked"),
		chromedp.Click(dry),
		chromedp.WaitVisible(css("#confirm-replay")),
		b.shot("07-replay-dry-run"),
		chromedp.Click(css("#confirm-replay")),
		chromedp.WaitVisible(css("#replay-result.done")),
		b.shot("08-replayed"),
		chromedp.Navigate(b.base+"/console/promotions/"+strconv.FormatInt(parkedID, 10)),
		chromedp.WaitVisible(css(`#summary[data-status="completed"]`)),
		b.shot("09-parked-promotion-completed"),
	)
}

// parkBatch writes a 1,000-code promotion straight into the dev database,
// marks its event published (so the outbox leaves it alone), puts the event
// in the dead-letter topic with the headers the shovel sets after 5 retries,
// and records the batch as parked: the state an SRE finds after an outage.
func parkBatch(t *testing.T, cfg app.Config, brokers []string) int64 {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(cfg.Dev.DataDir, "promocodes.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	check := true
	f := promo.Format{Charset: "alnum", Length: 10, Prefix: "PARK-", CheckChar: &check}
	l, err := codes.NewLayout(f)
	if err != nil {
		t.Fatal(err)
	}
	np := promo.NewPromotion{Promotion: promo.Promotion{Name: "parked after an outage", Kind: promo.KindGenerated,
		CodeCount: 1000, Format: &f, MaxUsagePerCode: 1, PerUserLimit: 1, CounterName: l.CounterName()},
		BatchSize: 1000, SeqLimit: codes.SeqLimit(l.Space(), codes.DefaultMaxDensity)}
	p, _, err := st.CreatePromotion(ctx, np)
	if err != nil {
		t.Fatal(err)
	}
	ref := promo.BatchRef{PromotionID: p.ID}
	if err := st.MarkPublished(ctx, []promo.BatchRef{ref}); err != nil {
		t.Fatal(err)
	}
	prod := kafka.NewProducer(kafka.Config{Brokers: brokers})
	defer prod.Close()
	m := kafka.EventMessage(cfg.Kafka.Topics.Dead, promo.Event{V: 1, PromotionID: p.IDString(), BatchNo: 0,
		SeqStart: p.SeqStart, CodeCount: 1000})
	m.SetHeader(promo.HeaderRetryCount, "5")
	m.SetHeader(promo.HeaderError, "connection refused (database down)")
	m.SetHeader(promo.HeaderDeadReason, "max retries (5) reached")
	if err := prod.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := st.SetBatchState(ctx, ref, promo.BatchParked, "connection refused (database down)"); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// heldPromotion writes an n-code promotion in batches of size straight into
// the dev database with its batch events marked published but not sent: no
// generator sees it until publishBatch sends one.
func heldPromotion(t *testing.T, cfg app.Config, n, size int64) (int64, []promo.Batch) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(cfg.Dev.DataDir, "promocodes.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	check := true
	f := promo.Format{Charset: "alnum", Length: 10, Prefix: "LIVE-", CheckChar: &check}
	l, err := codes.NewLayout(f)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "held batch by batch", Kind: promo.KindGenerated,
		CodeCount: n, Format: &f, MaxUsagePerCode: 1, PerUserLimit: 1, CounterName: l.CounterName()},
		BatchSize: size, SeqLimit: codes.SeqLimit(l.Space(), codes.DefaultMaxDensity)})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := st.IncompleteBatches(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	refs := make([]promo.BatchRef, len(bs))
	for i, b := range bs {
		refs[i] = b.Ref()
	}
	if err := st.MarkPublished(ctx, refs); err != nil {
		t.Fatal(err)
	}
	return p.ID, bs
}

// publishBatch sends a held batch's event to the batches topic.
func publishBatch(t *testing.T, cfg app.Config, brokers []string, b promo.Batch) {
	t.Helper()
	prod := kafka.NewProducer(kafka.Config{Brokers: brokers})
	defer prod.Close()
	m := kafka.EventMessage(cfg.Kafka.Topics.Batches, promo.Event{V: 1, PromotionID: promo.FormatID(b.PromotionID),
		BatchNo: b.BatchNo, SeqStart: b.SeqStart, CodeCount: b.CodeCount})
	if err := prod.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// unpublishedPromotion is a held 1,000-code promotion: no generator sees
// it, so it stays pending until it is cancelled.
func unpublishedPromotion(t *testing.T, cfg app.Config) int64 {
	t.Helper()
	id, _ := heldPromotion(t, cfg, 1000, 1000)
	return id
}

// exportCodes reads the first n codes of a promotion's export (admin token).
func exportCodes(t *testing.T, base, id string, n int) []string {
	t.Helper()
	get, _ := http.NewRequest(http.MethodGet, base+"/v1/promotions/"+id+"/codes", nil)
	get.Header.Set("Authorization", "Bearer browser-admin-token")
	resp, err := http.DefaultClient.Do(get)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := csv.NewReader(resp.Body)
	if _, err := rd.Read(); err != nil { // header
		t.Fatal(err)
	}
	out := make([]string, 0, n)
	for i := range n {
		row, err := rd.Read()
		if err != nil {
			t.Fatalf("export row %d: %v", i, err)
		}
		out = append(out, row[0])
	}
	return out
}

// redeemOne redeems a code once through the API as a shop would (key names
// the attempt: its user, order and Idempotency-Key) and returns the status
// and, for a refusal, its reason.
func redeemOne(t *testing.T, base, code, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/codes/"+url.PathEscape(code)+"/redemptions",
		strings.NewReader(fmt.Sprintf(`{"userId":"shopper-%s","orderId":"order-%s"}`, key, key)))
	req.Header.Set("Authorization", "Bearer browser-admin-token")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "browser-"+key)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var body struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	return r.StatusCode, body.Reason
}

// redeemSome exports the first n codes of a promotion and redeems each once
// through the API (admin token), as a shop would; it returns how many
// succeeded (all, or the test fails).
func redeemSome(t *testing.T, base, id string, n int) int {
	t.Helper()
	for i, code := range exportCodes(t, base, id, n) {
		if status, reason := redeemOne(t, base, code, fmt.Sprintf("%s-%d", id, i)); status != http.StatusCreated {
			t.Fatalf("redeem %s = %d %s", code, status, reason)
		}
	}
	return n
}
