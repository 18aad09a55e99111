package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Combined redemptions of one code (RedeemBatch): each request answered as
// Redeem would have answered it, the limits exact inside a batch and across
// batches and single redemptions racing each other.
var redeemBatchTests = cases{
	{"RedeemBatchAnswersEachRequest", testRedeemBatchAnswersEach},
	{"RedeemBatchRacing", testRedeemBatchRacing},
	{"RedeemBatchRefusedCode", testRedeemBatchRefusedCode},
	{"RedeemBatchPersonal", testRedeemBatchPersonal},
}

func (h *harness) redeemBatch(reqs []promo.RedeemRequest) []promo.RedeemResult {
	h.t.Helper()
	res, err := h.s.RedeemBatch(h.ctx, reqs)
	if err != nil || len(res) != len(reqs) {
		h.t.Fatalf("RedeemBatch(%d requests) = %d results, %v", len(reqs), len(res), err)
	}
	return res
}

// reason is a result's refusal ("" for a redemption, "error: ..." for an
// error).
func reason(r promo.RedeemResult) string {
	if r.Err != nil {
		return "error: " + string(promo.Code(r.Err))
	}
	return string(r.Outcome.Refused)
}

func testRedeemBatchAnswersEach(t *testing.T, h *harness) {
	code := "V" + h.tag + "BATCH"
	np := h.vanity(code, 5)
	np.PerUserLimit = 2
	p := h.create(np)
	// A key recorded before the batch: replayed inside it.
	earlier := redeemReq(code, "zed")
	earlier.IdempotencyKey, earlier.RequestHash = "k-earlier-"+h.tag, "h"
	first := h.redeem(earlier)
	mk := func(user, key, hash string) promo.RedeemRequest {
		r := redeemReq(code, user)
		if key != "" {
			r.IdempotencyKey, r.RequestHash = key+"-"+h.tag, hash
		}
		return r
	}
	reqs := []promo.RedeemRequest{
		mk("ann", "", ""), mk("ann", "k1", "h"), mk("ann", "", ""), // ann's third: over her limit of 2
		mk("zed", "k-earlier", "h"),                // replay of the earlier redemption
		mk("bob", "k-earlier", "other"),            // the same key, another request: conflict
		mk("bob", "k2", "h"), mk("bob", "k2", "h"), // one key twice in a batch: one redemption, one replay
		mk("cat", "", ""), mk("dan", "", ""), mk("eve", "k3", "h"), // the code has 5 uses: 1 before, 4 left
	}
	res := h.redeemBatch(reqs)
	got := make([]string, len(res))
	for i, r := range res {
		got[i] = reason(r)
	}
	// Users in user order get the uses: ann 2, bob 1 (k2), cat 1; dan and
	// eve find it exhausted; ann's third is over her limit.
	want := []string{"", "", "user_limit_reached", "", "error: " + string(promo.EConflict), "", "", "", "code_exhausted", "code_exhausted"}
	if !slices.Equal(got, want) {
		t.Errorf("results %q, want %q", got, want)
	}
	if r := res[3].Outcome; !r.Replayed || r.Redemption.ID != first.Redemption.ID {
		t.Errorf("the recorded key's result = %+v, want the replay of %s", r, first.Redemption.ID)
	}
	if a, b := res[5].Outcome, res[6].Outcome; a.Replayed || !b.Replayed || a.Redemption.ID != b.Redemption.ID {
		t.Errorf("one key twice: %+v and %+v; want one redemption and its replay", a, b)
	}
	var left []int
	for i, r := range res {
		if r.Err == nil && r.Outcome.Refused == "" && !r.Outcome.Replayed {
			left = append(left, r.Outcome.Redemption.UsesLeft)
			if r.Outcome.Redemption.PromotionID != p.ID || r.Outcome.Redemption.UserID != reqs[i].UserID {
				t.Errorf("redemption %d = %+v", i, r.Outcome.Redemption)
			}
		}
		if r.Outcome.Refused != "" && r.Outcome.PromotionID != p.ID {
			t.Errorf("refusal %d names promotion %d, want %d", i, r.Outcome.PromotionID, p.ID)
		}
	}
	slices.Sort(left)
	if !slices.Equal(left, []int{0, 1, 2, 3}) {
		t.Errorf("uses left of the batch's redemptions = %v, want 0..3", left)
	}
	if u := h.used(code); u != 5 {
		t.Errorf("used = %d, want 5", u)
	}
	rows, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID, Limit: 100})
	if err != nil || len(rows) != 5 {
		t.Errorf("audit rows = %d, %v; want 5", len(rows), err)
	}
	// The refusals are recorded with their keys: a retry of eve's answers the same.
	again := h.redeem(reqs[9])
	if !again.Replayed || again.Refused != promo.ReasonCodeExhausted {
		t.Errorf("retry of a refused key = %+v, want the replayed code_exhausted", again)
	}
}

func testRedeemBatchRacing(t *testing.T, h *harness) {
	code := "V" + h.tag + "RACE"
	np := h.vanity(code, 37)
	np.PerUserLimit = 3
	p := h.create(np)
	var (
		mu       sync.Mutex
		ok       int
		perUser  = map[string]int{}
		leftSeen = map[int]int{}
		batches  = 8
		perBatch = 9
		singles  = 16
		unexpect []string
		countOne = func(user string, r promo.RedeemResult) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Err != nil:
				unexpect = append(unexpect, r.Err.Error())
			case r.Outcome.Refused == "":
				ok++
				perUser[user]++
				leftSeen[r.Outcome.Redemption.UsesLeft]++
			case r.Outcome.Refused != promo.ReasonCodeExhausted && r.Outcome.Refused != promo.ReasonUserLimitReached:
				unexpect = append(unexpect, string(r.Outcome.Refused))
			}
		}
	)
	race(batches+singles, func(i int) {
		if i < batches {
			reqs := make([]promo.RedeemRequest, perBatch)
			for j := range reqs {
				reqs[j] = redeemReq(code, fmt.Sprintf("u%d", (i*perBatch+j)%10))
			}
			res, err := h.s.RedeemBatch(h.ctx, reqs)
			if err != nil {
				countOne("", promo.RedeemResult{Err: err})
				return
			}
			for j, r := range res {
				countOne(reqs[j].UserID, r)
			}
			return
		}
		user := fmt.Sprintf("u%d", i%10)
		out, err := h.s.Redeem(h.ctx, redeemReq(code, user))
		countOne(user, promo.RedeemResult{Outcome: out, Err: err})
	})
	if len(unexpect) > 0 {
		t.Errorf("unexpected answers: %v", unexpect)
	}
	over := 0
	for _, n := range perUser {
		over += max(0, n-3)
	}
	// 88 attempts by 10 users with 3 each: at most 30 can succeed, below the
	// code's 37: every redemption must be accounted for exactly.
	if ok > 30 || over > 0 || ok != h.used(code) {
		t.Errorf("%d redemptions, %d over a user's limit, code used %d; want ≤ 30, 0, equal", ok, over, h.used(code))
	}
	for left, n := range leftSeen {
		if n != 1 {
			t.Errorf("uses left %d answered %d times: each use is one redemption", left, n)
		}
	}
	rows, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID, Limit: 1000})
	if err != nil || len(rows) != ok {
		t.Errorf("audit rows = %d, %v; want %d", len(rows), err, ok)
	}
	// Now past the code's own maximum: one user each, 50 at once in batches.
	var reqs []promo.RedeemRequest
	for j := range 50 {
		reqs = append(reqs, redeemReq(code, fmt.Sprintf("w%d", j)))
	}
	var wg sync.WaitGroup
	for k := range 5 {
		wg.Go(func() {
			res, err := h.s.RedeemBatch(h.ctx, reqs[k*10:(k+1)*10])
			if err != nil {
				t.Errorf("RedeemBatch: %v", err)
				return
			}
			for _, r := range res {
				countOne("w", r)
			}
		})
	}
	wg.Wait()
	if ok != 37 || h.used(code) != 37 {
		t.Errorf("after the code's maximum: %d redemptions, used %d; want 37, 37", ok, h.used(code))
	}
}

func testRedeemBatchRefusedCode(t *testing.T, h *harness) {
	code := "V" + h.tag + "OFF"
	p := h.create(h.vanity(code, 10))
	if err := h.s.SetPromotionActive(h.ctx, p.ID, false); err != nil {
		t.Fatal(err)
	}
	reqs := []promo.RedeemRequest{redeemReq(code, "a"), redeemReq(code, "b")}
	reqs[1].IdempotencyKey, reqs[1].RequestHash = "k-off-"+h.tag, "h"
	for i, r := range h.redeemBatch(reqs) {
		if r.Err != nil || r.Outcome.Refused != promo.ReasonDeactivated || r.Outcome.PromotionID != p.ID {
			t.Errorf("result %d on a deactivated promotion = %+v, %v; want deactivated", i, r.Outcome, r.Err)
		}
	}
	if out := h.redeem(reqs[1]); !out.Replayed || out.Refused != promo.ReasonDeactivated {
		t.Errorf("retry = %+v, want the replayed refusal", out)
	}
	none := []promo.RedeemRequest{redeemReq("N"+h.tag+"NONE", "a")}
	if r := h.redeemBatch(none)[0]; r.Err != nil || r.Outcome.Refused != promo.ReasonCodeNotFound {
		t.Errorf("unknown code = %+v, want code_not_found", r)
	}
	bad := redeemReq(code, "")
	if r := h.redeemBatch([]promo.RedeemRequest{bad})[0]; !promo.Is(r.Err, promo.EInvalid) {
		t.Errorf("a request without a user = %+v, want EInvalid", r)
	}
}

// Combined redemptions do not bypass personal codes: concurrent batches of a
// code bound to one user answer everyone else not_your_code and admit only the
// owner's; batches of a code whose promotion has eligibility rules answer the
// ineligible requests not_eligible with the failed rule; the audit row keeps
// the client's address and agent.
func testRedeemBatchPersonal(t *testing.T, h *harness) {
	p, _ := h.generatedCodes("batch-bound", 2, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 3, 0
	})
	code := h.issue(issueReq(p.ID, "owner", 1)).Issuance.Codes[0]
	var (
		mu                        sync.Mutex
		mine, theirs, ex, batches int
	)
	const n = 12
	race(n, func(i int) {
		reqs := []promo.RedeemRequest{redeemReq(code, fmt.Sprintf("thief-%d-a", i)),
			redeemReq(code, fmt.Sprintf("thief-%d-b", i))}
		if i%2 == 0 {
			reqs = append(reqs, redeemReq(code, "owner"))
		}
		res, err := h.s.RedeemBatch(h.ctx, reqs)
		mu.Lock()
		defer mu.Unlock()
		if err != nil || len(res) != len(reqs) {
			t.Errorf("RedeemBatch: %d results, %v", len(res), err)
			return
		}
		batches++
		for j, r := range res {
			owner := reqs[j].UserID == "owner"
			switch {
			case r.Err != nil:
				t.Errorf("%s: %v", reqs[j].UserID, r.Err)
			case r.Outcome.Refused == "" && owner:
				mine++
			case r.Outcome.Refused == "":
				t.Errorf("%s redeemed the owner's code in a combined redemption", reqs[j].UserID)
			case r.Outcome.Refused == promo.ReasonNotYourCode && !owner:
				theirs++
			case r.Outcome.Refused == promo.ReasonCodeExhausted && owner:
				ex++
			default:
				t.Errorf("%s: refused %q", reqs[j].UserID, r.Outcome.Refused)
			}
		}
	})
	if mine != 3 || ex != n/2-3 || theirs != 2*n || h.used(code) != 3 {
		t.Errorf("bound code: owner %d redeemed, %d exhausted; others not_your_code %d; used %d; want 3, %d, %d, 3",
			mine, ex, theirs, h.used(code), n/2-3, 2*n)
	}

	codes := []string{"V" + h.tag + "BATCHELIG"}
	ep := h.vanity(codes[0], 100)
	ep.PerUserLimit, ep.Eligibility = 0, &promo.Eligibility{Countries: []string{"DE"}}
	h.create(ep)
	var ok, refused int
	race(n, func(i int) {
		reqs := []promo.RedeemRequest{
			redeemReq(codes[0], fmt.Sprintf("quiet-%d", i)), // says nothing: fails the rule
			shopperReq(codes[0], fmt.Sprintf("fr-%d", i), promo.Shopper{Country: "FR"}),
			shopperReq(codes[0], fmt.Sprintf("de-%d", i), promo.Shopper{Country: "DE"}),
			redeemReq(codes[0], fmt.Sprintf("quiet2-%d", i)),
		}
		res, err := h.s.RedeemBatch(h.ctx, reqs)
		mu.Lock()
		defer mu.Unlock()
		if err != nil || len(res) != len(reqs) {
			t.Errorf("RedeemBatch: %d results, %v", len(res), err)
			return
		}
		for j, r := range res {
			switch {
			case r.Err != nil:
				t.Errorf("%s: %v", reqs[j].UserID, r.Err)
			case j == 2 && r.Outcome.Refused == "":
				ok++
			case j != 2 && r.Outcome.Refused == promo.ReasonNotEligible && r.Outcome.Rule == promo.RuleCountries:
				refused++
			default:
				t.Errorf("%s: outcome %+v", reqs[j].UserID, r.Outcome)
			}
		}
	})
	if ok != n || refused != 3*n || h.used(codes[0]) != n {
		t.Errorf("eligibility: %d redeemed, %d not_eligible, used %d; want %d, %d, %d", ok, refused, h.used(codes[0]),
			n, 3*n, n)
	}

	audit := "V" + h.tag + "BATCHAUDIT"
	ap := h.create(h.vanity(audit, 5))
	a, b := redeemReq(audit, "ann"), redeemReq(audit, "bob")
	a.ClientAddr, a.UserAgent = "203.0.113.7", "checkout/3"
	for _, r := range h.redeemBatch([]promo.RedeemRequest{a, b}) {
		if r.Err != nil || r.Outcome.Refused != "" {
			t.Fatalf("combined redemption: %+v", r)
		}
	}
	trail, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: ap.ID, UserID: "ann"})
	if err != nil || len(trail) != 1 || trail[0].ClientAddr != "203.0.113.7" || trail[0].UserAgent != "checkout/3" {
		t.Errorf("audit row of a combined redemption: %+v, %v", trail, err)
	}
	trail, err = h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: ap.ID, UserID: "bob"})
	if err != nil || len(trail) != 1 || trail[0].ClientAddr != "" || trail[0].UserAgent != "" {
		t.Errorf("audit row of bob's combined redemption: %+v, %v", trail, err)
	}
}
