package redemption_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/promotion"
	"github.com/promocodes/promocodes/redemption"
)

// The guarantees through the lifecycle over real HTTP, on SQLite and
// PostgreSQL. Each scenario returns a one-line outcome with its figures; the
// fast tests here run them small, the adversarial suite (adversarial_test.go)
// runs them large and logs the line.

// newSweepingHarness is a harness whose background deleter runs every 50 ms.
func newSweepingHarness(t *testing.T, backend string) *harness {
	return newHarness(t, backend, redemption.Config{GuessLimit: -1, SweepInterval: 50 * time.Millisecond})
}

// waitDeleted polls a promotion's status until it is deleted.
func (h *harness) waitDeleted(id string) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st struct{ Status string }
		decode(h.t, h.do("GET", "/v1/promotions/"+id, adminToken, "", nil).body, &st)
		if st.Status == "deleted" {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("promotion %s still %q after 60s", id, st.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scenarioRollbackAfterRecreate: a vanity code redeemed, its promotion
// deleted, the same code created again with max 1 and redeemed, then the old
// redemption rolled back: the new code keeps its use.
func scenarioRollbackAfterRecreate(t *testing.T, h *harness, code string) string {
	old := h.vanity(code, 1, 0)
	r := h.do("POST", "/v1/codes/"+code+"/redemptions", redeemToken, `{"userId":"alice"}`, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("first redemption: %d %s", r.status, r.body)
	}
	var first struct{ ID string }
	decode(t, r.body, &first)
	if r := h.do("DELETE", "/v1/promotions/"+old, adminToken, "", nil); r.status != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	h.waitDeleted(old)
	h.vanity(code, 1, 0)
	if r := h.do("POST", "/v1/codes/"+code+"/redemptions", redeemToken, `{"userId":"bob"}`, nil); r.status != http.StatusCreated {
		t.Fatalf("redeem the re-created code: %d %s", r.status, r.body)
	}
	rb := h.do("POST", "/v1/redemptions/"+first.ID+"/rollback", redeemToken, `{"reason":"order cancelled"}`, nil)
	var got struct{ CodeRelease string }
	decode(t, rb.body, &got)
	if rb.status != http.StatusOK || got.CodeRelease != string(promo.CodeGone) {
		t.Errorf("rollback of the old redemption: %d %s; want 200 with codeRelease code_gone", rb.status, rb.body)
	}
	again := h.do("POST", "/v1/redemptions/"+first.ID+"/rollback", redeemToken, `{}`, nil)
	if again.status != http.StatusOK || again.header.Get("Idempotent-Replayed") != "true" ||
		!strings.Contains(string(again.body), `"codeRelease":"code_gone"`) {
		t.Errorf("second rollback: %d %s; want the same answer replayed", again.status, again.body)
	}
	carol := h.do("POST", "/v1/codes/"+code+"/redemptions", redeemToken, `{"userId":"carol"}`, nil)
	if carol.status != http.StatusConflict || reasonOf(t, carol) != string(promo.ReasonCodeExhausted) {
		t.Errorf("a third shopper on the max-1 code: %d %s; want 409 code_exhausted", carol.status, carol.body)
	}
	used := h.used([]string{code})
	if used != 1 {
		t.Errorf("the re-created code has %d uses, want 1", used)
	}
	return fmt.Sprintf("new code used %d/1, old rollback answered %d %s, a third shopper %d", used, rb.status,
		got.CodeRelease, carol.status)
}

func TestHTTPRollbackAfterRecreate(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			scenarioRollbackAfterRecreate(t, newSweepingHarness(t, backend), "AGAIN"+strings.ToUpper(backend))
		})
	}
}

// scenarioDeletedTakesNoChange: after DELETE, every change answers 410
// promotion_deleted (or, for a code, 404 once the background purger has
// deleted it), none 2xx; the status stays deleting/deleted and inactive.
func scenarioDeletedTakesNoChange(t *testing.T, h *harness, n int) string {
	p, list := h.seed(promotionSpec{n: n, maxUsage: 1, perUser: 1})
	id := p.IDString()
	res := h.do("POST", "/v1/codes/"+pathEscape(list[0])+"/reservations", redeemToken, `{"userId":"alice"}`, nil)
	if res.status != http.StatusCreated {
		t.Fatalf("reserve: %d %s", res.status, res.body)
	}
	var held struct{ ID string }
	decode(t, res.body, &held)
	if r := h.do("DELETE", "/v1/promotions/"+id, adminToken, "", nil); r.status != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	counts := map[string]int{}
	check := func(what string, r reply, codeLevel bool) {
		t.Helper()
		reason := ""
		if r.status >= 400 {
			reason = reasonOf(t, r)
		}
		counts[fmt.Sprintf("%d %s", r.status, reason)]++
		ok := r.status == http.StatusGone && reason == string(promo.ReasonPromotionDeleted)
		if codeLevel && r.status == http.StatusNotFound {
			ok = true // the purger already deleted the code
		}
		if !ok {
			t.Errorf("%s after DELETE: %d %s; want 410 promotion_deleted", what, r.status, r.body)
		}
	}
	check("PATCH active=true", h.do("PATCH", "/v1/promotions/"+id, adminToken, `{"active":true}`, nil), false)
	check("PATCH name", h.do("PATCH", "/v1/promotions/"+id, adminToken, `{"name":"revived"}`, nil), false)
	check("PATCH expiresAt", h.do("PATCH", "/v1/promotions/"+id, adminToken, `{"expiresAt":null}`, nil), false)
	check("top-up", h.do("POST", "/v1/promotions/"+id+"/topups", adminToken, `{"codeCount":10}`, nil), false)
	check("cancel", h.do("POST", "/v1/promotions/"+id+"/cancel", adminToken, "", nil), false)
	check("revoke", h.do("POST", "/v1/codes/"+pathEscape(list[1])+"/revoke", adminToken, `{"reason":"x"}`, nil), true)
	check("redeem", h.do("POST", "/v1/codes/"+pathEscape(list[2])+"/redemptions", redeemToken, `{"userId":"bob"}`, nil), true)
	check("reserve", h.do("POST", "/v1/codes/"+pathEscape(list[3])+"/reservations", redeemToken, `{"userId":"bob"}`, nil), true)
	check("confirm", h.do("POST", "/v1/reservations/"+held.ID+"/confirm", redeemToken, `{"orderId":"o-1"}`, nil), true)
	h.waitDeleted(id)
	check("PATCH active=true after the codes are gone", h.do("PATCH", "/v1/promotions/"+id, adminToken, `{"active":true}`, nil), false)
	check("top-up after the codes are gone", h.do("POST", "/v1/promotions/"+id+"/topups", adminToken, `{"codeCount":10}`, nil), false)
	var st struct {
		Status    string
		Active    bool
		CodeCount int64
	}
	decode(t, h.do("GET", "/v1/promotions/"+id, adminToken, "", nil).body, &st)
	if st.Status != "deleted" || st.Active || st.CodeCount != int64(n) {
		t.Errorf("status after the attempts: %+v; want deleted, inactive, %d codes", st, n)
	}
	return fmt.Sprintf("11 changes after DELETE answered %v; status %s, active %t, codeCount %d", counts, st.Status,
		st.Active, st.CodeCount)
}

func TestHTTPDeletedPromotionTakesNoChange(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { scenarioDeletedTakesNoChange(t, newSweepingHarness(t, backend), 200) })
	}
}

// scenarioConcurrentConfirms: n confirms of one reservation with the same
// orderId at once: all 201 with the one redemption.
func scenarioConcurrentConfirms(t *testing.T, h *harness, rounds, n int) string {
	_, list := h.seed(promotionSpec{n: rounds, maxUsage: 1, perUser: 1})
	total := map[string]int{}
	for k, code := range list {
		res := h.do("POST", "/v1/codes/"+pathEscape(code)+"/reservations", redeemToken,
			fmt.Sprintf(`{"userId":"shopper-%d"}`, k), nil)
		var held struct{ ID string }
		decode(t, res.body, &held)
		var (
			mu  sync.Mutex
			ids = map[string]int{}
		)
		counts := hammer(t, n, n, func(int) (reply, error) {
			r, err := h.try("POST", "/v1/reservations/"+held.ID+"/confirm", redeemToken, `{"orderId":"order-1"}`, nil)
			if err == nil && r.status == http.StatusCreated {
				var red struct{ ID string }
				_ = jsonUnmarshal(r.body, &red)
				mu.Lock()
				ids[red.ID]++
				mu.Unlock()
			}
			return r, err
		})
		for key, c := range counts {
			total[key] += c
		}
		if counts["201"] != n || len(ids) != 1 {
			t.Errorf("reservation %d: %d confirms answered %v with %d distinct redemptions; want %d × 201, one redemption",
				k, n, counts, len(ids), n)
		}
	}
	return fmt.Sprintf("%d reservations × %d concurrent confirms (same orderId): %v, one redemption each", rounds, n, total)
}

func TestHTTPConcurrentConfirmsSameOrder(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			scenarioConcurrentConfirms(t, newHarness(t, backend, noGuessLimit), 3, 40)
		})
	}
}

// scenarioTopUpRetries: n concurrent top-ups with one Idempotency-Key add
// the codes once; the key with another count is 409.
func scenarioTopUpRetries(t *testing.T, h *harness, n int) string {
	p, _ := h.seed(promotionSpec{n: 10, maxUsage: 1})
	path := "/v1/promotions/" + p.IDString() + "/topups"
	key := map[string]string{"Idempotency-Key": "restock-1"}
	var replayed, made, nos atomic.Int64
	counts := hammer(t, n, n, func(int) (reply, error) {
		r, err := h.try("POST", path, adminToken, `{"codeCount":25}`, key)
		if err == nil && r.status == http.StatusAccepted {
			if r.header.Get("Idempotent-Replayed") == "true" {
				replayed.Add(1)
			} else {
				made.Add(1)
			}
			var v struct{ Topup struct{ No int64 } }
			_ = jsonUnmarshal(r.body, &v)
			nos.Add(v.Topup.No)
		}
		if err == nil && r.status == http.StatusAccepted {
			r.status = http.StatusCreated // counted as a success by hammer
		}
		return r, err
	})
	other := h.do("POST", path, adminToken, `{"codeCount":26}`, key)
	var list struct {
		CodeCount int64
		Topups    []any
	}
	decode(t, h.do("GET", path, adminToken, "", nil).body, &list)
	if counts["201"] != n || made.Load() != 1 || replayed.Load() != int64(n-1) || nos.Load() != int64(n) ||
		len(list.Topups) != 1 || list.CodeCount != 35 {
		t.Errorf("%d retries of one top-up: %v, %d made, %d replayed; %d top-ups, %d codes; want 1 made, %d replays, 35 codes",
			n, counts, made.Load(), replayed.Load(), len(list.Topups), list.CodeCount, n-1)
	}
	if other.status != http.StatusConflict || reasonOf(t, other) != string(promo.ReasonIdempotencyConflict) {
		t.Errorf("the key with another count: %d %s; want 409 idempotency_conflict", other.status, other.body)
	}
	return fmt.Sprintf("%d concurrent retries with one key: %d top-up made, %d replayed, %d codes total; the key with another count %d",
		n, made.Load(), replayed.Load(), list.CodeCount, other.status)
}

func TestHTTPTopUpIdempotencyKey(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { scenarioTopUpRetries(t, newHarness(t, backend, noGuessLimit), 12) })
	}
}

// scenarioRetryAfterPurge: redemptions made with keys, their promotion ended
// and purged with its redemptions, then every request retried with its key:
// a clear 4xx each, never 5xx.
func scenarioRetryAfterPurge(t *testing.T, h *harness, n int) string {
	p, list := h.seed(promotionSpec{n: n, maxUsage: 1, perUser: 0})
	for i, c := range list {
		key := map[string]string{"Idempotency-Key": fmt.Sprintf("purge-retry-%s-%d", p.IDString(), i)}
		if r, err := h.redeem(c, "alice", key); err != nil || r.status != http.StatusCreated {
			t.Fatalf("redeem %d: %v %d %s", i, err, r.status, r.body)
		}
	}
	past := time.Now().UTC().Add(-48 * time.Hour).Format(time.RFC3339)
	if r := h.do("PATCH", "/v1/promotions/"+p.IDString(), adminToken, `{"expiresAt":"`+past+`"}`, nil); r.status != http.StatusOK {
		t.Fatalf("end the promotion: %d %s", r.status, r.body)
	}
	res, err := promotion.Purge(h.ctx, h.st.(purgeStore), promotion.PurgeOptions{
		ExpiredBefore: time.Now().Add(-25 * time.Hour), WithRedemptions: true, BatchRows: 100}, zap.NewNop())
	if err != nil || len(res) != 1 || res[0].Redemptions != int64(n) {
		t.Fatalf("purge --with-redemptions = %+v, %v", res, err)
	}
	counts := hammer(t, 8, n, func(i int) (reply, error) {
		return h.redeem(list[i], "alice", map[string]string{"Idempotency-Key": fmt.Sprintf("purge-retry-%s-%d", p.IDString(), i)})
	})
	if counts["404 code_not_found"] != n {
		t.Errorf("retries after the purge: %v; want %d × 404 code_not_found", counts, n)
	}
	return fmt.Sprintf("%d retries with purged redemptions' keys answered %v (no 5xx)", n, counts)
}

func TestHTTPRetryAfterPurgeWithRedemptions(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { scenarioRetryAfterPurge(t, newHarness(t, backend, noGuessLimit), 20) })
	}
}

// scenarioPurgeUnderBurst: users with perUserLimit 1 who each used one code
// keep redeeming the promotion's other codes (at a time inside its window)
// while a purge empties it in small statements: no user ever gets a second
// use, whatever the interleaving.
func scenarioPurgeUnderBurst(t *testing.T, h *harness, users, codesN, batchRows int) string {
	ended := time.Now().UTC().Add(-48 * time.Hour)
	p, list := h.seed(promotionSpec{n: codesN, maxUsage: 1, perUser: 1, expiresAt: &ended})
	inWindow := ended.Add(-time.Hour)
	canon := make([]string, len(list))
	for i, c := range list {
		canon[i], _ = codes.Canonical(c)
	}
	var seq atomic.Int64
	redeem := func(code, user string) promo.RedeemOutcome {
		n := seq.Add(1)
		out, err := h.st.Redeem(h.ctx, promo.RedeemRequest{ID: fmt.Sprintf("burst-r-%012d", n),
			EventID: fmt.Sprintf("burst-e-%012d", n), Code: code, UserID: user, Now: inWindow})
		if err != nil {
			t.Errorf("redeem %s for %s: %v", code, user, err)
		}
		return out
	}
	for u := range users {
		if out := redeem(canon[u], fmt.Sprintf("user-%d", u)); out.Refused != "" {
			t.Fatalf("first use of user %d: %s", u, out.Refused)
		}
	}
	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		seconds atomic.Int64
		tries   atomic.Int64
	)
	for u := range users {
		wg.Go(func() {
			user := fmt.Sprintf("user-%d", u)
			for i := 0; !stop.Load(); i++ {
				out := redeem(canon[users+(u*37+i)%(codesN-users)], user)
				tries.Add(1)
				if out.Refused == "" {
					seconds.Add(1)
					t.Errorf("user %s got a second use (%s) during the purge", user, out.Redemption.Code)
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // the burst is running
	res, err := promotion.Purge(h.ctx, h.st.(purgeStore), promotion.PurgeOptions{
		ExpiredBefore: time.Now().Add(-25 * time.Hour), BatchRows: batchRows}, zap.NewNop())
	time.Sleep(50 * time.Millisecond) // and runs on after it
	stop.Store(true)
	wg.Wait()
	if err != nil || len(res) != 1 || res[0].Codes != int64(codesN) {
		t.Errorf("purge = %+v, %v; want %d codes", res, err, codesN)
	}
	if c, _, _ := h.st.(purgeStore).PurgeCount(h.ctx, p.ID); c != 0 {
		t.Errorf("%d codes left after the purge", c)
	}
	return fmt.Sprintf("%d users (perUserLimit 1, one use each) made %d redemption attempts during a purge of %d codes in %d statements: %d second uses",
		users, tries.Load(), codesN, res[0].Statements, seconds.Load())
}

func TestPurgeUnderBurstNoSecondUse(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			scenarioPurgeUnderBurst(t, newHarness(t, backend, noGuessLimit), 20, 2_000, 50)
		})
	}
}

// scenarioPurgeDates: a date in the future, or within the safety margin, is
// refused before anything is read; a date past it announces what it will
// purge before deleting.
func scenarioPurgeDates(t *testing.T, h *harness) string {
	ps := h.st.(purgeStore)
	live, _ := h.seed(promotionSpec{n: 50, maxUsage: 1}) // open-ended: never purged
	endedAt := time.Now().UTC().Add(-2 * time.Hour)
	recent, _ := h.seed(promotionSpec{n: 40, maxUsage: 1, expiresAt: &endedAt})
	var refusals []string
	for _, c := range []struct {
		what   string
		before time.Time
		margin time.Duration
	}{
		{"tomorrow", time.Now().Add(24 * time.Hour), 0},
		{"a second from now", time.Now().Add(time.Second), time.Nanosecond},
		{"an hour ago, within the default 24h margin", time.Now().Add(-time.Hour), 0},
		{"an hour ago, within a 2h margin", time.Now().Add(-time.Hour), 2 * time.Hour},
	} {
		announced := false
		_, err := promotion.Purge(h.ctx, ps, promotion.PurgeOptions{ExpiredBefore: c.before, SafetyMargin: c.margin,
			Announce: func([]promotion.PurgedPromotion) { announced = true }}, zap.NewNop())
		if !promo.Is(err, promo.EInvalid) || announced {
			t.Errorf("purge --expired-before %s: %v (announced %t); want refused before anything", c.what, err, announced)
		}
		refusals = append(refusals, c.what)
	}
	for _, id := range []int64{live.ID, recent.ID} {
		if n, _, _ := ps.PurgeCount(h.ctx, id); n == 0 {
			t.Errorf("promotion %d lost its codes to a refused purge", id)
		}
	}
	// Past the margin (an hour ago, margin 30m): the recent promotion is
	// announced with its counts, then purged; the live one is untouched.
	var plan []promotion.PurgedPromotion
	res, err := promotion.Purge(h.ctx, ps, promotion.PurgeOptions{ExpiredBefore: time.Now().Add(-time.Hour),
		SafetyMargin: 30 * time.Minute, Announce: func(p []promotion.PurgedPromotion) {
			plan = p
			if n, _, _ := ps.PurgeCount(h.ctx, recent.ID); n != 40 {
				t.Errorf("announced after deleting: %d codes left", n)
			}
		}}, zap.NewNop())
	if err != nil || len(plan) != 1 || plan[0].ID != recent.ID || plan[0].Codes != 40 || len(res) != 1 || res[0].Codes != 40 {
		t.Errorf("purge past the margin: plan %+v, result %+v, %v; want promotion %d, 40 codes", plan, res, err, recent.ID)
	}
	if n, _, _ := ps.PurgeCount(h.ctx, live.ID); n != 50 {
		t.Errorf("the live promotion has %d codes after the purge, want 50", n)
	}
	return fmt.Sprintf("refused (nothing read or deleted): %s; a date past the margin announced %d promotion(s) (%d codes) before purging them",
		strings.Join(refusals, "; "), len(plan), res[0].Codes)
}

func TestPurgeRefusesRecentDates(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { scenarioPurgeDates(t, newHarness(t, backend, noGuessLimit)) })
	}
}

// generateAll commits every unfinished batch of a promotion the way a worker
// does (the real engine, one chunk per batch) and returns the new codes in
// display form.
func (h *harness) generateAll(p promo.Promotion) []string {
	h.t.Helper()
	eng, err := codes.New(defaultFormat, testSecret)
	if err != nil {
		h.t.Fatal(err)
	}
	l := eng.Layout()
	bs, err := h.st.IncompleteBatches(h.ctx, p.ID)
	if err != nil {
		h.t.Fatalf("IncompleteBatches: %v", err)
	}
	var out []string
	for _, b := range bs {
		k := int(b.CodeCount - b.Done)
		buf := eng.AppendCodes(nil, b.SeqStart+uint64(b.Done), k)
		if _, err := h.st.CommitChunk(h.ctx, promo.Chunk{Batch: b.Ref(), From: b.Done, Count: k, CodeLen: l.CodeLen(),
			CounterName: p.CounterName, Replace: eng.AppendCode, Codes: buf}); err != nil {
			h.t.Fatalf("CommitChunk: %v", err)
		}
		for i := range k {
			out = append(out, l.Display(string(buf[i*l.CodeLen():(i+1)*l.CodeLen()])))
		}
	}
	return out
}

// scenarioPurgedStaysPurged: users with perUserLimit 1 used one code each; the
// promotion ended and was purged (its codes, then its per-user allowances,
// deleted). An admin then extends its window and tops it up: were that
// accepted, the new codes would redeem for the same users again (their
// allowances are gone), over the limit. A purged promotion is as final as a
// deleted one: the PATCH and the top-up answer 410 promotion_deleted.
func scenarioPurgedStaysPurged(t *testing.T, h *harness, users int) string {
	p, list := h.seed(promotionSpec{n: users + 10, maxUsage: 1, perUser: 1})
	id := p.IDString()
	for u := range users {
		if r, err := h.redeem(list[u], fmt.Sprintf("user-%d", u), nil); err != nil || r.status != http.StatusCreated {
			t.Fatalf("first use of user %d: %v %d %s", u, err, r.status, r.body)
		}
	}
	past := time.Now().UTC().Add(-48 * time.Hour).Format(time.RFC3339)
	if r := h.do("PATCH", "/v1/promotions/"+id, adminToken, `{"expiresAt":"`+past+`"}`, nil); r.status != http.StatusOK {
		t.Fatalf("end the promotion: %d %s", r.status, r.body)
	}
	res, err := promotion.Purge(h.ctx, h.st.(purgeStore), promotion.PurgeOptions{
		ExpiredBefore: time.Now().Add(-25 * time.Hour)}, zap.NewNop())
	if err != nil || len(res) != 1 || res[0].Codes != int64(users+10) {
		t.Fatalf("purge = %+v, %v", res, err)
	}
	future := time.Now().UTC().Add(48 * time.Hour).Format(time.RFC3339)
	extend := h.do("PATCH", "/v1/promotions/"+id, adminToken, `{"expiresAt":"`+future+`","active":true}`, nil)
	if extend.status != http.StatusGone || reasonOf(t, extend) != string(promo.ReasonPromotionDeleted) {
		t.Errorf("PATCH extending a purged promotion: %d %s; want 410 promotion_deleted", extend.status, extend.body)
	}
	top := h.do("POST", "/v1/promotions/"+id+"/topups", adminToken, fmt.Sprintf(`{"codeCount":%d}`, users), nil)
	if top.status != http.StatusGone || reasonOf(t, top) != string(promo.ReasonPromotionDeleted) {
		t.Errorf("top-up of a purged promotion: %d %s; want 410 promotion_deleted", top.status, top.body)
	}
	second := 0
	if top.status == http.StatusAccepted {
		fresh := h.generateAll(p)
		for u := range min(users, len(fresh)) {
			if r, err := h.redeem(fresh[u], fmt.Sprintf("user-%d", u), nil); err == nil && r.status == http.StatusCreated {
				second++
			}
		}
		if second > 0 {
			t.Errorf("%d of %d users (perUserLimit 1) redeemed a second code after the purge", second, users)
		}
	}
	var st struct{ Status string }
	decode(t, h.do("GET", "/v1/promotions/"+id, adminToken, "", nil).body, &st)
	return fmt.Sprintf("%d users (perUserLimit 1, one use each), purged, then PATCH extend+active %d, top-up %d; status %s; users with a second use %d",
		users, extend.status, top.status, st.Status, second)
}

func TestHTTPPurgedPromotionStaysPurged(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Log(scenarioPurgedStaysPurged(t, newHarness(t, backend, noGuessLimit), 20))
		})
	}
}
