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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
)

// chromium finds Debian's chromium, installing it with apt-get when missing
// (as .ci/run does); it skips, with the reason, only when that is impossible.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("PROMOCODES_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if _, err := exec.LookPath("apt-get"); err == nil && os.Geteuid() == 0 {
		t.Log("chromium is missing: installing it with apt-get")
		cmd := exec.Command("bash", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("browser test skipped: chromium is not installed and apt-get failed: %v\n%s", err, out)
		}
		if _, err := os.Stat("/usr/bin/chromium"); err == nil {
			return "/usr/bin/chromium"
		}
	}
	t.Skip("browser test skipped: no /usr/bin/chromium and no way to install it (needs root and apt-get)")
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

// TestConsoleInBrowser drives the console in a real headless chromium over
// the whole dev stack in-process (embedded broker, SQLite, API, generators,
// shovel): sign in, see the preview refuse a too-short length, create a
// 200,000-code promotion through the form and watch it reach 100%, then
// replay a parked batch from the operations page and see its promotion
// complete. Screenshots are saved as artifacts.
func TestConsoleInBrowser(t *testing.T) {
	shots := artifacts(t)
	s := newBrowserStack(t, func(cfg *app.Config) {
		cfg.Kafka.Partitions = 4
		cfg.Auth.AdminTokens = []string{"browser-admin-token"}
	})
	cfg, proc, base, bctx := s.cfg, s.proc, s.base, s.bctx
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(bctx, 2*time.Minute) }
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}
	attr := func(sel, name string) string {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
		if err != nil {
			t.Fatalf("attribute %s of %s: %v", name, sel, err)
		}
		return v.Value
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg) // quality 100 is PNG (lower is JPEG)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		})
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	// Sign in; the session cookie is HttpOnly and SameSite=Strict (Secure is
	// off in dev, which serves plain HTTP; the unit test checks it on).
	run("sign in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(css("#token")),
		shot("01-signin"),
		chromedp.SendKeys(css("#token"), "browser-admin-token"),
		chromedp.Click(css("#signin")),
		chromedp.WaitVisible(css("#promotions")),
	)
	if loc, err := chromedp.Run(bctx, chromedp.Location()); err != nil || loc != base+"/console/" {
		t.Errorf("after sign-in at %s (%v), want %s/console/", loc, err, base)
	}
	res, err := chromedp.Call(bctx, network.GetCookies, network.GetCookiesParams{})
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
	if dc, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.cookie`)); err != nil || strings.Contains(dc, "promocodes_session") {
		t.Errorf("document.cookie = %q (%v): the session must not be readable by scripts", dc, err)
	}

	// The preview refuses a too-short length and names the shortest that fits.
	run("preview refusal",
		chromedp.Navigate(base+"/console/new"),
		chromedp.WaitVisible(css("#newform")),
		chromedp.SetValue(css("#name"), "browser 200k"),
		chromedp.SetValue(css("#codeCount"), "200000"),
		chromedp.SetValue(css("#length"), ""),
		chromedp.SendKeys(css("#length"), "5"),
		chromedp.WaitVisible(css("#capacity-refusal")),
		shot("02-preview-refusal"),
	)
	if got := text("#shortest"); got != "8" {
		t.Errorf("preview names shortest length %q for 200,000 alnum codes, want 8", got)
	}

	// Create 200,000 codes through the form and watch the bar reach 100%.
	run("create 200,000 codes",
		chromedp.SetValue(css("#prefix"), "BRWS-"),
		chromedp.SetValue(css("#length"), ""),
		chromedp.SendKeys(css("#length"), "10"),
		chromedp.WaitVisible(css("#capacity-ok")),
		shot("03-preview-ok"),
		chromedp.Click(css("#create")),
		chromedp.WaitVisible(css("#summary")),
	)
	start := time.Now()
	run("progress reaches 100%",
		chromedp.WaitVisible(css(`#summary[data-status="completed"]`)),
		shot("04-promotion-completed"),
	)
	if v, m := attr("#summary progress", "value"), attr("#summary progress", "max"); v != "200000" || m != "200000" {
		t.Errorf("progress bar %s/%s, want 200000/200000", v, m)
	}
	t.Logf("200,000 codes generated, seen complete in the browser %s after the submit", time.Since(start).Round(100*time.Millisecond))
	run("list shows it", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(css("#rows tr[data-status=completed]")), shot("05-list"))
	if pct := text("#rows tr[data-status=completed] .pct"); pct != "100.0%" {
		t.Errorf("list shows %q, want 100.0%%", pct)
	}

	// Redeem a few of its codes through the API; the promotion page's
	// counts and chart follow.
	promoID := attr("#promotions tbody tr[data-status=completed]", "data-id")
	redeemed := redeemSome(t, base, promoID, 3)
	run("analytics follow redemptions",
		chromedp.Navigate(base+"/console/promotions/"+promoID),
		chromedp.WaitVisible(css(`#chart[data-drawn="true"] canvas`)),
		shot("05b-analytics"),
	)
	if got := text("#stat-redemptions"); got != strconv.Itoa(redeemed) {
		t.Errorf("page shows %s redemptions, want %d", got, redeemed)
	}
	if n, err := chromedp.Run(bctx, chromedp.Evaluate[int](chartTotal("chart", "redemptions"))); err != nil || n != redeemed {
		t.Errorf("chart holds %d redemptions (%v), want %d", n, err, redeemed)
	}
	// The list's redeemed column follows too (the totals rollup of the real
	// binary, polled every 250 ms; the list refreshes itself every 2 s).
	run("list counts redemptions", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(css("#rows td.redeemed")))
	cell := "#rows tr[data-id='" + promoID + "'] td.redeemed"
	for deadline := time.Now().Add(15 * time.Second); ; {
		got := text(cell)
		if got == strconv.Itoa(redeemed) {
			run("list redeemed shot", shot("05c-list-redeemed"))
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("list shows %q codes redeemed, want %d", got, redeemed)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}

	// The lifecycle from the page. Deactivate: a redemption through the API
	// is refused (410 deactivated); reactivate: it succeeds.
	codes := exportCodes(t, base, promoID, 6) // the first 3 are redeemed above
	run("deactivate from the page",
		chromedp.Navigate(base+"/console/promotions/"+promoID),
		chromedp.WaitVisible(css("#deactivate")),
		chromedp.Click(css("#deactivate")),
		chromedp.WaitVisible(css("#active.st-inactive")),
		chromedp.WaitVisible(css("#flash")),
		shot("10-deactivated"),
	)
	if status, reason := redeemOne(t, base, codes[3], "deactivated"); status != http.StatusGone || reason != "deactivated" {
		t.Errorf("redeem while deactivated = %d %q, want 410 deactivated", status, reason)
	}
	run("reactivate from the page",
		chromedp.Click(css("#reactivate")),
		chromedp.WaitVisible(css("#active.st-active")),
	)
	if status, reason := redeemOne(t, base, codes[3], "reactivated"); status != http.StatusCreated {
		t.Errorf("redeem after reactivation = %d %q, want 201", status, reason)
	}
	// Revoke one code from the page: it is refused from then on.
	run("revoke from the page",
		chromedp.SendKeys(css("#revoke-code"), strings.ToLower(codes[4])),
		chromedp.SendKeys(css("#revoke-reason"), "leaked on a coupon site"),
		chromedp.Click(css("#revoke")),
		chromedp.WaitVisible(css(`#audit tr[data-action="code.revoked"]`)),
		shot("10b-revoked"),
	)
	if got := text("#flash"); !strings.Contains(got, "Revoked") {
		t.Errorf("flash after revoke = %q", got)
	}
	if status, reason := redeemOne(t, base, codes[4], "revoked"); status != http.StatusGone || reason != "revoked" {
		t.Errorf("redeem a revoked code = %d %q, want 410 revoked", status, reason)
	}

	// Top-up through the page: the bar follows to the new total; the cancel
	// control is not offered once generation is complete.
	start = time.Now()
	run("top-up from the page",
		chromedp.SendKeys(css("#topup-count"), "50000"),
		chromedp.Click(css("#topup")),
		chromedp.WaitVisible(css("#topups")),
		shot("11-topped-up"),
		chromedp.WaitVisible(css(`#summary[data-status="completed"]`)),
		shot("12-topup-completed"),
	)
	if v, m := attr("#summary progress", "value"), attr("#summary progress", "max"); v != "250000" || m != "250000" {
		t.Errorf("progress bar after the top-up %s/%s, want 250000/250000", v, m)
	}
	if got := text(`#topups tr[data-no="1"] td.num`); got != "50,000" {
		t.Errorf("top-ups table shows %q codes for top-up #1, want 50,000", got)
	}
	t.Logf("top-up of 50,000 codes seen complete in the browser %s after the submit", time.Since(start).Round(100*time.Millisecond))
	if gone, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(function(){var f=document.getElementById('cancel-form');return !f||f.hidden})()`)); err != nil || !gone {
		t.Errorf("a completed promotion's page offers cancel (%v)", err)
	}

	// Cancel: a promotion whose batches are never published stays pending
	// (generation here is faster than a click), and is cancelled from its page.
	pendingID := strconv.FormatInt(unpublishedPromotion(t, cfg), 10)
	run("cancel from the page",
		chromedp.Navigate(base+"/console/promotions/"+pendingID),
		chromedp.WaitVisible(css("h1 .st-pending")),
		chromedp.WaitVisible(css("#cancel")),
		chromedp.Click(css("#cancel")),
		chromedp.WaitVisible(css("h1 .st-cancelled")),
		chromedp.WaitVisible(css("#flash")),
		shot("13-cancelled"),
	)
	if n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('#cancel-form').length`)); err != nil || n != 0 {
		t.Errorf("a cancelled promotion's page still offers cancel (%d, %v)", n, err)
	}

	// Delete through the two-step confirmation: the box must be ticked (the
	// browser keeps the form until it is), then the page follows the
	// deletion to its end.
	start = time.Now()
	run("delete from the page",
		chromedp.Navigate(base+"/console/promotions/"+promoID),
		chromedp.WaitVisible(css("#delete")),
		chromedp.Click(css("#delete")),
		chromedp.WaitVisible(css("#delete-form")),
		chromedp.Click(css("#delete-submit")), // unticked: nothing is sent
		chromedp.WaitVisible(css("#delete-confirm")),
		shot("14-delete-confirm"),
		chromedp.Click(css("#delete-confirm")),
		chromedp.Click(css("#delete-submit")),
		chromedp.WaitVisible(css("#deletion")),
		shot("15-deleting"),
		chromedp.WaitVisible(css("h1 .st-deleted")),
		chromedp.WaitVisible(css("#deletion strong")),
		shot("16-deleted"),
	)
	if got := text("#deletion strong"); got != "Deleted" {
		t.Errorf("deletion shows %q, want Deleted", got)
	}
	t.Logf("deletion of 250,000 codes seen finished in the browser %s after the confirmation", time.Since(start).Round(100*time.Millisecond))

	// A parked batch: a promotion whose only batch event sits in the
	// dead-letter topic after its retries, as the shovel leaves it.
	parkedID := parkBatch(t, cfg, proc.Brokers)
	dry := css(fmt.Sprintf(`button.dryrun[data-promotion="%d"]`, parkedID))
	run("replay from the operations page",
		chromedp.Navigate(base+"/console/ops"),
		chromedp.WaitVisible(dry),
		shot("06-ops-parked"),
		chromedp.Click(dry),
		chromedp.WaitVisible(css("#confirm-replay")),
		shot("07-replay-dry-run"),
		chromedp.Click(css("#confirm-replay")),
		chromedp.WaitVisible(css("#replay-result.done")),
		shot("08-replayed"),
		chromedp.Navigate(base+"/console/promotions/"+strconv.FormatInt(parkedID, 10)),
		chromedp.WaitVisible(css(`#summary[data-status="completed"]`)),
		shot("09-parked-promotion-completed"),
	)
	t.Logf("screenshots in %s", shots)
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

// unpublishedPromotion writes a 1,000-code promotion straight into the dev
// database with its batch event marked published but never sent: no
// generator sees it, so it stays pending until it is cancelled.
func unpublishedPromotion(t *testing.T, cfg app.Config) int64 {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(cfg.Dev.DataDir, "promocodes.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	check := true
	f := promo.Format{Charset: "alnum", Length: 10, Prefix: "HOLD-", CheckChar: &check}
	l, err := codes.NewLayout(f)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "held back", Kind: promo.KindGenerated,
		CodeCount: 1000, Format: &f, MaxUsagePerCode: 1, PerUserLimit: 1, CounterName: l.CounterName()},
		BatchSize: 1000, SeqLimit: codes.SeqLimit(l.Space(), codes.DefaultMaxDensity)})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MarkPublished(ctx, []promo.BatchRef{{PromotionID: p.ID}}); err != nil {
		t.Fatal(err)
	}
	return p.ID
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
