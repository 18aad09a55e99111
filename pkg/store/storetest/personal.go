package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// PersonalStore is the personal codes half of a store: issuance, a user's
// codes (bound codes and eligibility go through Redeem, Reserve and
// CodeState).
type PersonalStore interface {
	Issue(ctx context.Context, req promo.IssueRequest) (promo.IssueOutcome, error)
	UserCodes(ctx context.Context, userID string, now time.Time, limit int) ([]promo.UserCode, error)
}

var personalTests = cases{
	{"IssueConcurrentDistinct", testIssueConcurrentDistinct},
	{"IssueIdempotency", testIssueIdempotency},
	{"IssueRefusals", testIssueRefusals},
	{"BoundCodes", testBoundCodes},
	{"BoundCodeConcurrent", testBoundCodeConcurrent},
	{"Eligibility", testEligibility},
	{"EligibilityRacingUpdates", testEligibilityRacingUpdates},
	{"RedemptionAuditAndOrderStats", testRedemptionAuditAndOrderStats},
	{"ConfirmEligibilityAndAudit", testConfirmEligibilityAndAudit},
}

func issueReq(id int64, user string, n int) promo.IssueRequest {
	return promo.IssueRequest{ID: newID(), EventID: newID(), PromotionID: id, UserID: user, Count: n,
		Actor: "test", Now: time.Now().UTC()}
}

func (h *harness) issue(req promo.IssueRequest) promo.IssueOutcome {
	h.t.Helper()
	out, err := h.s.Issue(h.ctx, req)
	if err != nil {
		h.t.Fatalf("Issue(%d, %q, %d): %v", req.PromotionID, req.UserID, req.Count, err)
	}
	return out
}

// wantReason fails unless err is the refusal reason.
func wantReason(t *testing.T, what string, err error, reason promo.Reason) {
	t.Helper()
	var e *promo.Error
	if !errors.As(err, &e) || e.Reason != reason {
		t.Fatalf("%s: error %v, want reason %q", what, err, reason)
	}
}

// Two hundred concurrent issuances of five codes each on a 1,000-code
// promotion: every one succeeds, the 1,000 codes handed out are distinct and
// are exactly the promotion's codes, each bound to the user it was issued to;
// the next issuance is pool_exhausted and binds nothing.
func testIssueConcurrentDistinct(t *testing.T, h *harness) {
	const codes, issuances, each = 1000, 200, 5
	p, all := h.generatedCodes("issue", codes, func(np *promo.NewPromotion) { np.PerUserLimit = 0 })
	var (
		mu     sync.Mutex
		owner  = map[string]string{}
		failed []error
	)
	start := time.Now()
	race(issuances, func(i int) {
		user := fmt.Sprintf("user-%03d", i)
		out, err := h.s.Issue(h.ctx, issueReq(p.ID, user, each))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed = append(failed, err)
			return
		}
		if len(out.Issuance.Codes) != each {
			failed = append(failed, fmt.Errorf("%s got %d codes", user, len(out.Issuance.Codes)))
		}
		for _, c := range out.Issuance.Codes {
			if prev, dup := owner[c]; dup {
				failed = append(failed, fmt.Errorf("code %s issued to %s and to %s", c, prev, user))
			}
			owner[c] = user
		}
	})
	took := time.Since(start)
	for _, err := range failed[:min(len(failed), 5)] {
		t.Error(err)
	}
	if len(failed) > 0 || len(owner) != codes {
		t.Fatalf("%d concurrent issuances of %d: %d failures, %d distinct codes handed out; want 0 and %d",
			issuances, each, len(failed), len(owner), codes)
	}
	for _, c := range all {
		if _, ok := owner[c]; !ok {
			t.Fatalf("code %s of the promotion was not issued", c)
		}
	}
	_, err := h.s.Issue(h.ctx, issueReq(p.ID, "late", 1))
	wantReason(t, "issuance after the pool ran out", err, promo.ReasonPoolExhausted)
	if promo.Code(err) != promo.EConflict {
		t.Errorf("pool_exhausted has class %q, want conflict (409)", promo.Code(err))
	}
	for _, c := range all[:20] {
		if st := h.state(c, "late"); st.Owner != owner[c] {
			t.Errorf("code %s: owner %q, want %q", c, st.Owner, owner[c])
		}
	}
	mine, err := h.s.UserCodes(h.ctx, "user-007", time.Now(), 0)
	if err != nil || len(mine) != each {
		t.Fatalf("UserCodes(user-007) = %d codes, %v; want %d", len(mine), err, each)
	}
	for _, c := range mine {
		if owner[c.Code] != "user-007" || c.Status != promo.ReasonRedeemable || c.UsesLeft != 1 ||
			c.PromotionID != p.IDString() {
			t.Errorf("UserCodes(user-007): %+v", c)
		}
	}
	t.Logf("%d concurrent issuances of %d codes each from %d: all distinct in %v", issuances, each, codes, took)
}

func testIssueIdempotency(t *testing.T, h *harness) {
	p, _ := h.generatedCodes("issue-idem", 10, nil)
	req := issueReq(p.ID, "alice", 2)
	req.IdempotencyKey, req.RequestHash = "issue-"+h.tag, "h1"
	first := h.issue(req)
	again := req
	again.ID, again.EventID = newID(), newID()
	second := h.issue(again)
	if !second.Replayed || second.Issuance.ID != first.Issuance.ID || !slices.Equal(second.Issuance.Codes, first.Issuance.Codes) {
		t.Fatalf("replayed issuance %+v, want the first %+v again", second, first)
	}
	other := again
	other.RequestHash = "h2"
	_, err := h.s.Issue(h.ctx, other)
	wantReason(t, "same key, another request", err, promo.ReasonIdempotencyConflict)
	// A refusal is not recorded: the same key succeeds once codes are there.
	exhausted := issueReq(p.ID, "bob", 9)
	exhausted.IdempotencyKey, exhausted.RequestHash = "issue-bob-"+h.tag, "h"
	_, err = h.s.Issue(h.ctx, exhausted)
	wantReason(t, "9 of 8 left", err, promo.ReasonPoolExhausted)
	exhausted.Count, exhausted.ID = 8, newID()
	if out := h.issue(exhausted); len(out.Issuance.Codes) != 8 || out.Replayed {
		t.Fatalf("issuance after a pool_exhausted with the same key: %+v", out)
	}
	if mine, err := h.s.UserCodes(h.ctx, "alice", time.Now(), 0); err != nil || len(mine) != 2 {
		t.Fatalf("UserCodes(alice) = %v, %v; want the 2 issued once", mine, err)
	}
}

func testIssueRefusals(t *testing.T, h *harness) {
	v := h.create(h.vanity("V"+h.tag+"ISSUE", 1))
	_, err := h.s.Issue(h.ctx, issueReq(v.ID, "alice", 1))
	wantCode(t, "issuance of a vanity promotion", err, promo.EConflict)
	_, err = h.s.Issue(h.ctx, issueReq(1<<40, "alice", 1))
	wantCode(t, "issuance of an unknown promotion", err, promo.ENotFound)
	p, codes := h.generatedCodes("issue-refusals", 4, nil)
	_, err = h.s.Issue(h.ctx, issueReq(p.ID, "alice", 0))
	wantField(t, "count 0", err, "count")
	_, err = h.s.Issue(h.ctx, issueReq(p.ID, "", 1))
	wantField(t, "no user", err, "userId")
	// Used and revoked codes are never handed out.
	if out := h.redeem(redeemReq(codes[0], "anon")); out.Refused != "" {
		t.Fatal(out)
	}
	if _, _, err := h.s.RevokeCode(h.ctx, revokeReq(codes[1], "leaked")); err != nil {
		t.Fatal(err)
	}
	out := h.issue(issueReq(p.ID, "alice", 2))
	if want := []string{codes[2], codes[3]}; !slices.Equal(out.Issuance.Codes, want) {
		t.Fatalf("issued %v, want the unused, unrevoked %v", out.Issuance.Codes, want)
	}
	_, err = h.s.Issue(h.ctx, issueReq(p.ID, "alice", 1))
	wantReason(t, "nothing issuable left", err, promo.ReasonPoolExhausted)
	// The issuance is in the audit log and on the redemptions topic.
	log, err := h.s.AuditLog(h.ctx, promo.AuditFilter{PromotionID: p.ID})
	if err != nil || len(log) == 0 || log[0].Action != promo.ActionCodeIssued {
		t.Fatalf("audit log %+v, %v; want a %s entry", log, err, promo.ActionCodeIssued)
	}
	// Deleted: no issuance.
	if _, err := h.s.RequestDeletion(h.ctx, deletionReq(p.ID)); err != nil {
		t.Fatal(err)
	}
	_, err = h.s.Issue(h.ctx, issueReq(p.ID, "alice", 1))
	wantReason(t, "issuance of a deleted promotion", err, promo.ReasonPromotionDeleted)
}

// A bound code redeems and reserves only for its owner; anyone else is
// not_your_code, and validation says so to them without naming the owner
// (the owner is in CodeState for the store's callers only).
func testBoundCodes(t *testing.T, h *harness) {
	p, _ := h.generatedCodes("bound", 3, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 2, 0
	})
	code := h.issue(issueReq(p.ID, "alice", 1)).Issuance.Codes[0]
	wantRefused(t, "bob redeems alice's code", h.redeem(redeemReq(code, "bob")), promo.ReasonNotYourCode)
	wantReserveRefused(t, "bob reserves alice's code", h.reserve(reserveReq(code, "bob", time.Minute)), promo.ReasonNotYourCode)
	if st := h.state(code, "bob"); st.Status(time.Now(), true) != promo.ReasonNotYourCode {
		t.Errorf("validation for bob: %q, want not_your_code", st.Status(time.Now(), true))
	}
	if st := h.state(code, "alice"); st.Status(time.Now(), true) != promo.ReasonRedeemable {
		t.Errorf("validation for alice: %q, want redeemable", st.Status(time.Now(), true))
	}
	if h.used(code) != 0 {
		t.Fatalf("refused redemptions used the code: %d", h.used(code))
	}
	if out := h.redeem(redeemReq(code, "alice")); out.Refused != "" || out.Redemption.UsesLeft != 1 {
		t.Fatalf("alice redeems her code: %+v", out)
	}
	mine, err := h.s.UserCodes(h.ctx, "alice", time.Now(), 0)
	if err != nil || len(mine) != 1 || mine[0].Used != 1 || mine[0].UsesLeft != 1 || mine[0].Status != promo.ReasonRedeemable {
		t.Fatalf("UserCodes(alice) = %+v, %v", mine, err)
	}
	if out := h.redeem(redeemReq(code, "alice")); out.Refused != "" {
		t.Fatalf("alice's second use: %+v", out)
	}
	if mine, _ := h.s.UserCodes(h.ctx, "alice", time.Now(), 0); len(mine) != 1 || mine[0].Status != promo.ReasonCodeExhausted {
		t.Fatalf("UserCodes(alice) after both uses = %+v", mine)
	}
}

// Many users race the owner for a bound code: only the owner's
// redemptions are admitted, every other one is not_your_code.
func testBoundCodeConcurrent(t *testing.T, h *harness) {
	p, _ := h.generatedCodes("bound-race", 2, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 3, 0
	})
	code := h.issue(issueReq(p.ID, "owner", 1)).Issuance.Codes[0]
	var (
		mu               sync.Mutex
		mine, theirs, ex int
	)
	const n = 30
	race(n, func(i int) {
		user := fmt.Sprintf("thief-%d", i)
		if i%5 == 0 {
			user = "owner"
		}
		out, err := h.s.Redeem(h.ctx, redeemReq(code, user))
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			t.Errorf("redeem: %v", err)
		case out.Refused == "" && user == "owner":
			mine++
		case out.Refused == "":
			t.Errorf("%s redeemed the owner's code", user)
		case out.Refused == promo.ReasonNotYourCode && user != "owner":
			theirs++
		case out.Refused == promo.ReasonCodeExhausted && user == "owner":
			ex++
		default:
			t.Errorf("%s: refused %q", user, out.Refused)
		}
	})
	if mine != 3 || ex != n/5-3 || theirs != n-n/5 || h.used(code) != 3 {
		t.Errorf("owner: %d redeemed, %d exhausted; others refused not_your_code %d; used %d; want 3, %d, %d, 3",
			mine, ex, theirs, h.used(code), n/5-3, n-n/5)
	}
}

func yes() *bool { b := true; return &b }

func shopperReq(code, user string, s promo.Shopper) promo.RedeemRequest {
	r := redeemReq(code, user)
	r.Shopper = &s
	return r
}

func testEligibility(t *testing.T, h *harness) {
	rules := &promo.Eligibility{Segments: []string{"vip", "staff"}, Countries: []string{"de", "AT"},
		FirstOrderOnly: true, MinOrderAmount: &promo.Money{Amount: 500000, Currency: "eur"}}
	p, codes := h.generatedCodes("eligible", 8, func(np *promo.NewPromotion) {
		np.PerUserLimit, np.Eligibility = 0, rules
	})
	st, err := h.s.GetPromotion(h.ctx, p.ID)
	if err != nil || st.Eligibility == nil || !slices.Equal(st.Eligibility.Countries, []string{"AT", "DE"}) ||
		st.Eligibility.MinOrderAmount.Currency != "EUR" || !st.Eligibility.FirstOrderOnly {
		t.Fatalf("stored eligibility %+v, %v", st.Eligibility, err)
	}
	ok := promo.Shopper{Segments: []string{"new", "vip"}, Country: "de", FirstOrder: yes(),
		Order: &promo.Order{Amount: 500000, Currency: "EUR"}}
	for i, tc := range []struct {
		rule string
		edit func(s *promo.Shopper)
	}{
		{promo.RuleSegments, func(s *promo.Shopper) { s.Segments = []string{"new"} }},
		{promo.RuleSegments, func(s *promo.Shopper) { s.Segments = nil }},
		{promo.RuleCountries, func(s *promo.Shopper) { s.Country = "FR" }},
		{promo.RuleFirstOrderOnly, func(s *promo.Shopper) { s.FirstOrder = nil }},
		{promo.RuleMinOrderAmount, func(s *promo.Shopper) { s.Order = &promo.Order{Amount: 499999, Currency: "EUR"} }},
		{promo.RuleMinOrderAmount, func(s *promo.Shopper) { s.Order = &promo.Order{Amount: 900000, Currency: "USD"} }},
		{promo.RuleMinOrderAmount, func(s *promo.Shopper) { s.Order = nil }},
	} {
		s := ok
		tc.edit(&s)
		out := h.redeem(shopperReq(codes[0], "u", s))
		if out.Refused != promo.ReasonNotEligible || out.Rule != tc.rule {
			t.Errorf("case %d: outcome %+v, want not_eligible %s", i, out, tc.rule)
		}
		if r, rule := h.state(codes[0], "u").StatusFor(time.Now(), true, &s); r != promo.ReasonNotEligible || rule != tc.rule {
			t.Errorf("case %d: validation %q %q, want not_eligible %s", i, r, rule, tc.rule)
		}
		res := reserveReq(codes[1], "u", time.Minute)
		res.Shopper = &s
		if out := h.reserve(res); out.Refused != promo.ReasonNotEligible || out.Rule != tc.rule {
			t.Errorf("case %d: reservation %+v, want not_eligible %s", i, out, tc.rule)
		}
	}
	// A request that says nothing fails the first rule (on PostgreSQL its
	// one-statement redemption hands it to the statement path).
	if out := h.redeem(redeemReq(codes[5], "u")); out.Refused != promo.ReasonNotEligible || out.Rule != promo.RuleSegments {
		t.Errorf("a redemption without shopper fields: %+v, want not_eligible segments", out)
	}
	if h.used(codes[0]) != 0 || h.used(codes[5]) != 0 {
		t.Fatalf("refused redemptions used the code")
	}
	// A refusal with an Idempotency-Key replays with its rule.
	bad := shopperReq(codes[2], "u", promo.Shopper{})
	bad.IdempotencyKey, bad.RequestHash = "elig-"+h.tag, "h"
	h.redeem(bad)
	bad.ID, bad.EventID = newID(), newID()
	if out := h.redeem(bad); !out.Replayed || out.Refused != promo.ReasonNotEligible || out.Rule != promo.RuleSegments {
		t.Fatalf("replayed refusal %+v", out)
	}
	if out := h.redeem(shopperReq(codes[0], "u", ok)); out.Refused != "" {
		t.Fatalf("an eligible redemption: %+v", out)
	}
	if r, rule := h.state(codes[3], "u").StatusFor(time.Now(), true, &ok); r != promo.ReasonRedeemable || rule != "" {
		t.Errorf("validation of an eligible shopper: %q %q", r, rule)
	}
	// PATCH replaces the rules; an empty set removes them.
	ps, err := h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) {
		u.SetEligibility, u.Eligibility = true, &promo.Eligibility{Countries: []string{"FR"}}
	}))
	if err != nil || ps.Eligibility == nil || !slices.Equal(ps.Eligibility.Countries, []string{"FR"}) {
		t.Fatalf("UpdatePromotion eligibility = %+v, %v", ps, err)
	}
	if out := h.redeem(shopperReq(codes[4], "u", ok)); out.Refused != promo.ReasonNotEligible || out.Rule != promo.RuleCountries {
		t.Fatalf("after the rules changed: %+v", out)
	}
	if _, err := h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) { u.SetEligibility = true })); err != nil {
		t.Fatal(err)
	}
	if out := h.redeem(redeemReq(codes[4], "u")); out.Refused != "" {
		t.Fatalf("after the rules were removed: %+v", out)
	}
}

// PATCHes switch the minimum order amount between 100.00 and 200.00 while
// redemptions of 150.00 run: each redemption's outcome is the one of the
// rules in force at some moment of its own transaction. An admitted
// redemption that lay entirely between the end of a PATCH to 200.00 and the
// start of the next PATCH, or a refused one entirely between the end of a
// PATCH to 100.00 and the start of the next, would be a race that admitted
// (or refused) by rules no longer (or not yet) in force.
func testEligibilityRacingUpdates(t *testing.T, h *harness) {
	minOrder := func(a promo.Amount) *promo.Eligibility {
		return &promo.Eligibility{MinOrderAmount: &promo.Money{Amount: a, Currency: "EUR"}}
	}
	const n = 120
	p, codes := h.generatedCodes("eligible-race", n, func(np *promo.NewPromotion) {
		np.PerUserLimit, np.Eligibility = 0, minOrder(1000000)
	})
	type span struct {
		start, end time.Time
		high       bool // the PATCH set 200.00
	}
	var (
		patches []span
		done    = make(chan struct{})
		mu      sync.Mutex
		results []struct {
			span
			admitted bool
		}
	)
	go func() {
		defer close(done)
		for i := 0; i < 30; i++ {
			high := i%2 == 0
			a := promo.Amount(1000000)
			if high {
				a = 2000000
			}
			s := span{start: time.Now(), high: high}
			if _, err := h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) {
				u.SetEligibility, u.Eligibility = true, minOrder(a)
			})); err != nil {
				t.Errorf("PATCH: %v", err)
				return
			}
			s.end = time.Now()
			patches = append(patches, s)
			time.Sleep(3 * time.Millisecond)
		}
	}()
	race(n, func(i int) {
		time.Sleep(time.Duration(i%30) * 3 * time.Millisecond)
		s := span{start: time.Now()}
		out, err := h.s.Redeem(h.ctx, shopperReq(codes[i], "u", promo.Shopper{Order: &promo.Order{Amount: 1500000, Currency: "EUR"}}))
		s.end = time.Now()
		if err != nil {
			t.Errorf("redeem: %v", err)
			return
		}
		if out.Refused != "" && (out.Refused != promo.ReasonNotEligible || out.Rule != promo.RuleMinOrderAmount) {
			t.Errorf("refused %q %q", out.Refused, out.Rule)
		}
		mu.Lock()
		results = append(results, struct {
			span
			admitted bool
		}{s, out.Refused == ""})
		mu.Unlock()
	})
	<-done
	var admitted, refused, wrong int
	for _, r := range results {
		if r.admitted {
			admitted++
		} else {
			refused++
		}
		// Definitely in force over [patches[k].end, patches[k+1].start).
		for k, pt := range patches {
			until := time.Now().Add(time.Hour)
			if k+1 < len(patches) {
				until = patches[k+1].start
			}
			if !r.start.Before(pt.end) && !r.end.After(until) && r.admitted == pt.high {
				wrong++
				t.Errorf("redemption over [%v, %v] admitted=%t while the rules were min %s throughout",
					r.start.Format(time.StampMicro), r.end.Format(time.StampMicro), r.admitted,
					map[bool]string{true: "200.00", false: "100.00"}[pt.high])
			}
		}
	}
	if admitted == 0 || refused == 0 {
		t.Logf("note: %d admitted, %d refused (the race did not mix both outcomes this run)", admitted, refused)
	}
	if got := h.usedTotal(codes); got != admitted {
		t.Errorf("codes used %d, admitted %d", got, admitted)
	}
	t.Logf("%d redemptions racing %d rule changes: %d admitted, %d refused not_eligible, %d outside their rules",
		n, len(patches), admitted, refused, wrong)
}

func (h *harness) usedTotal(codes []string) int {
	n := 0
	for _, c := range codes {
		n += h.used(c)
	}
	return n
}

// The audit row keeps the client's address and agent and what the request
// said about its order and shopper; the stats sum the order value and
// discount of live redemptions per currency and count them by segment.
func testRedemptionAuditAndOrderStats(t *testing.T, h *harness) {
	p, codes := h.generatedCodes("audit-orders", 5, func(np *promo.NewPromotion) { np.PerUserLimit = 0 })
	disc := func(a promo.Amount) *promo.Amount { return &a }
	reqs := []promo.RedeemRequest{
		shopperReq(codes[0], "a", promo.Shopper{Segments: []string{"vip", "new"}, Country: "de", FirstOrder: yes(),
			Order: &promo.Order{Amount: 1234500, Currency: "eur", Discount: disc(100000)}}),
		shopperReq(codes[1], "b", promo.Shopper{Segments: []string{"vip"},
			Order: &promo.Order{Amount: 500000, Currency: "EUR", Discount: disc(50000)}}),
		shopperReq(codes[2], "c", promo.Shopper{Segments: []string{"new"},
			Order: &promo.Order{Amount: 2000000, Currency: "USD"}}),
		redeemReq(codes[3], "d"),
		shopperReq(codes[4], "e", promo.Shopper{Segments: []string{"vip"},
			Order: &promo.Order{Amount: 999900, Currency: "EUR", Discount: disc(10000)}}),
	}
	reqs[0].ClientAddr, reqs[0].UserAgent = "203.0.113.9", "checkout/2.1"
	var ids []string
	for _, r := range reqs {
		out := h.redeem(r)
		if out.Refused != "" {
			t.Fatal(out)
		}
		ids = append(ids, out.Redemption.ID)
	}
	if _, _, err := h.s.Rollback(h.ctx, promo.RollbackRequest{RedemptionID: ids[4], EventID: newID(), Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	trail, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID, UserID: "a"})
	if err != nil || len(trail) != 1 {
		t.Fatalf("trail of a: %v, %v", trail, err)
	}
	r := trail[0]
	if r.ClientAddr != "203.0.113.9" || r.UserAgent != "checkout/2.1" || r.Country != "DE" ||
		!slices.Equal(r.Segments, []string{"new", "vip"}) || r.FirstOrder == nil || !*r.FirstOrder ||
		r.Order == nil || r.Order.Amount != 1234500 || r.Order.Currency != "EUR" || r.Order.Discount == nil ||
		*r.Order.Discount != 100000 {
		t.Errorf("audit row %+v (order %+v)", r, r.Order)
	}
	if d, _ := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID, UserID: "d"}); len(d) != 1 ||
		d[0].Order != nil || d[0].Segments != nil || d[0].ClientAddr != "" || d[0].FirstOrder != nil {
		t.Errorf("a redemption without order or shopper fields: %+v", d)
	}
	st, err := h.s.Stats(h.ctx, promo.StatsQuery{PromotionID: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	wantOrders := []promo.OrderTotals{
		{Currency: "EUR", Redemptions: 2, OrderValue: "173.45", Discount: "15.00"},
		{Currency: "USD", Redemptions: 1, OrderValue: "200.00", Discount: "0.00"},
	}
	if !slices.Equal(st.Orders, wantOrders) {
		t.Errorf("orders %+v, want %+v", st.Orders, wantOrders)
	}
	if len(st.Segments) != 2 || st.Segments[0].Segment != "new" || st.Segments[0].Redemptions != 2 ||
		st.Segments[1].Segment != "vip" || st.Segments[1].Redemptions != 2 || st.Segments[1].Rate != 0.5 ||
		len(st.Segments[1].Orders) != 1 || st.Segments[1].Orders[0].OrderValue != "173.45" ||
		len(st.Segments[0].Orders) != 2 {
		t.Errorf("segments %+v", st.Segments)
	}
}

// A reservation keeps what it said about the shopper and the order. Its
// confirmation re-checks the promotion's rules as they are then, against
// the confirmation's own shopper fields when it carries any (the order as
// finally placed) and the reservation's otherwise; a failing rule refuses
// not_eligible, uses nothing and leaves the reservation held. The
// redemption's audit row has the order, segments and country it was
// granted for and the confirming client's address and agent.
func testConfirmEligibilityAndAudit(t *testing.T, h *harness) {
	rules := &promo.Eligibility{MinOrderAmount: &promo.Money{Amount: 1000000, Currency: "EUR"}}
	p, codes := h.generatedCodes("confirm-elig", 4, func(np *promo.NewPromotion) {
		np.PerUserLimit, np.Eligibility = 0, rules
	})
	big := promo.Shopper{Segments: []string{"vip"}, Country: "DE",
		Order: &promo.Order{Amount: 1500000, Currency: "EUR", Discount: amount(150000)}}
	small := promo.Shopper{Order: &promo.Order{Amount: 20000, Currency: "EUR"}}
	held := func(code string) promo.Reservation {
		t.Helper()
		req := reserveReq(code, "shopper", time.Minute)
		req.Shopper = &big
		out := h.reserve(req)
		if out.Refused != "" {
			t.Fatalf("reserve %s with an eligible order: %+v", code, out)
		}
		return out.Reservation
	}
	// Confirmed for another, smaller order: refused, nothing used, still held.
	r0 := held(codes[0])
	bad := confirmReq(r0.ID, "order-small")
	bad.Shopper = &small
	out, err := h.s.Confirm(h.ctx, bad)
	if err != nil || out.Refused != promo.ReasonNotEligible || out.Rule != promo.RuleMinOrderAmount {
		t.Fatalf("confirm for a smaller order: %+v, %v; want not_eligible minOrderAmount", out, err)
	}
	if h.used(codes[0]) != 0 {
		t.Fatalf("a refused confirmation used the code")
	}
	if r, err := h.s.Reservation(h.ctx, r0.ID); err != nil || r.Status != promo.ReservationHeld {
		t.Fatalf("after a refused confirmation the reservation is %+v, %v; want held", r, err)
	}
	// Confirmed without shopper fields: the reservation's order stands, and
	// the audit row says so, with the confirming client.
	ok := confirmReq(r0.ID, "order-big")
	ok.ClientAddr, ok.UserAgent = "198.51.100.7", "checkout/3"
	out, err = h.s.Confirm(h.ctx, ok)
	if err != nil || out.Refused != "" {
		t.Fatalf("confirm with the reservation's order: %+v, %v", out, err)
	}
	trail, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID, UserID: "shopper"})
	if err != nil || len(trail) != 1 {
		t.Fatalf("audit trail %+v, %v", trail, err)
	}
	a := trail[0]
	if a.ClientAddr != "198.51.100.7" || a.UserAgent != "checkout/3" || a.Country != "DE" ||
		!slices.Equal(a.Segments, []string{"vip"}) || a.Order == nil || a.Order.Amount != 1500000 ||
		a.Order.Discount == nil || *a.Order.Discount != 150000 {
		t.Fatalf("confirmed redemption's audit %+v (order %+v)", a, a.Order)
	}
	// The rules tightened between reservation and confirmation: refused.
	r1 := held(codes[1])
	if _, err := h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) {
		u.SetEligibility, u.Eligibility = true, &promo.Eligibility{Countries: []string{"FR"}}
	})); err != nil {
		t.Fatal(err)
	}
	if out, err := h.s.Confirm(h.ctx, confirmReq(r1.ID, "order-2")); err != nil || out.Refused != promo.ReasonNotEligible ||
		out.Rule != promo.RuleCountries {
		t.Fatalf("confirm after the rules changed: %+v, %v; want not_eligible countries", out, err)
	}
	if h.used(codes[1]) != 0 {
		t.Fatalf("a refused confirmation used the code")
	}
	t.Logf("confirm re-checks eligibility: smaller order and changed rules refused, audit carries order and client")
}

func amount(a promo.Amount) *promo.Amount { return &a }

// AdversarialPersonal attacks personal codes at the store: an issuance that
// fails between taking its codes and writing its audit row, issuances
// racing it, a reservation confirmed for another order or after the rules
// tightened, and a bound code reserved by another user. It logs one
// outcome line per case.
func AdversarialPersonal(t *testing.T, db string, s Store) {
	h := newHarness(t, s)
	logf := func(c, format string, args ...any) {
		state := ""
		if t.Failed() {
			state = "FAILED: "
		}
		t.Logf("adversarial: %s [%s]: %s"+format, append([]any{c, db, state}, args...)...)
	}

	// A fault between two statements: the audit row of an issuance cannot
	// be written (its event id is taken), after the codes were taken. The
	// transaction rolls back; the codes it took are handed out later, each
	// once, and the pool ends exactly empty.
	const pool = 60
	p, all := h.generatedCodes("adv-issue", pool, func(np *promo.NewPromotion) { np.PerUserLimit = 0 })
	firstReq := issueReq(p.ID, "first", 5)
	first := h.issue(firstReq)
	failing := issueReq(p.ID, "victim", 10)
	failing.EventID = firstReq.EventID // the audit row's id: taken
	_, err := h.s.Issue(h.ctx, failing)
	failedOK := err != nil
	if !failedOK {
		t.Errorf("an issuance whose audit row collides succeeded")
	}
	if cs, _ := h.s.UserCodes(h.ctx, "victim", time.Now(), 0); len(cs) != 0 {
		t.Errorf("the failed issuance bound %d codes", len(cs))
	}
	got := map[string]bool{}
	for _, c := range first.Issuance.Codes {
		got[c] = true
	}
	var mu sync.Mutex
	race(pool, func(i int) {
		out, err := h.s.Issue(h.ctx, issueReq(p.ID, fmt.Sprintf("after-%d", i), 1))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if promo.ReasonOf(err) != promo.ReasonPoolExhausted {
				t.Errorf("issuance %d: %v", i, err)
			}
			return
		}
		for _, c := range out.Issuance.Codes {
			if got[c] {
				t.Errorf("code %s handed out twice", c)
			}
			got[c] = true
		}
	})
	_, err = h.s.Issue(h.ctx, issueReq(p.ID, "last", 1))
	if len(got) != len(all) || promo.ReasonOf(err) != promo.ReasonPoolExhausted {
		t.Errorf("handed out %d distinct of %d codes, then %v; want all, then pool_exhausted", len(got), len(all), err)
	}
	logf("issuance failing between its statements", "audit write failed after the codes were taken: rolled back (%t), "+
		"then %d racing issuances handed out %d distinct of %d codes, then pool_exhausted", failedOK, pool, len(got), pool)

	// Confirmations: another order, tightened rules. (A harness of its own
	// per case: one harness's generated promotions share code strings.)
	h = newHarness(t, s)
	rules := &promo.Eligibility{MinOrderAmount: &promo.Money{Amount: 1000000, Currency: "EUR"}}
	q, codes := h.generatedCodes("adv-confirm", 3, func(np *promo.NewPromotion) { np.PerUserLimit, np.Eligibility = 0, rules })
	big := promo.Shopper{Order: &promo.Order{Amount: 1000000, Currency: "EUR"}}
	res := reserveReq(codes[0], "alice", time.Minute)
	res.Shopper = &big
	held := h.reserve(res)
	small := confirmReq(held.Reservation.ID, "order-small")
	small.Shopper = &promo.Shopper{Order: &promo.Order{Amount: 100, Currency: "EUR"}}
	out, err := h.s.Confirm(h.ctx, small)
	if err != nil || out.Refused != promo.ReasonNotEligible {
		t.Errorf("confirm for a smaller order: %+v, %v", out, err)
	}
	if _, err := h.s.UpdatePromotion(h.ctx, update(q.ID, func(u *promo.PromotionUpdate) {
		u.SetEligibility, u.Eligibility = true, &promo.Eligibility{MinOrderAmount: &promo.Money{Amount: 2000000, Currency: "EUR"}}
	})); err != nil {
		t.Fatal(err)
	}
	out2, err := h.s.Confirm(h.ctx, confirmReq(held.Reservation.ID, "order-big"))
	if err != nil || out2.Refused != promo.ReasonNotEligible {
		t.Errorf("confirm after the rules tightened: %+v, %v", out2, err)
	}
	if h.used(codes[0]) != 0 {
		t.Errorf("refused confirmations used the code")
	}
	logf("confirmation against eligibility", "for a smaller order: %s %s; after the minimum rose: %s %s; uses taken %d",
		out.Refused, out.Rule, out2.Refused, out2.Rule, h.used(codes[0]))

	// A bound code reserved by another user, and by its owner then
	// confirmed: only the owner's use.
	h = newHarness(t, s)
	b, bc := h.generatedCodes("adv-bound", 1, func(np *promo.NewPromotion) { np.PerUserLimit = 0 })
	h.issue(issueReq(b.ID, "owner", 1))
	other := h.reserve(reserveReq(bc[0], "mallory", time.Minute))
	mine := h.reserve(reserveReq(bc[0], "owner", time.Minute))
	conf, err := h.s.Confirm(h.ctx, confirmReq(mine.Reservation.ID, "o"))
	if other.Refused != promo.ReasonNotYourCode || mine.Refused != "" || err != nil || conf.Refused != "" || h.used(bc[0]) != 1 {
		t.Errorf("bound code: other %+v, owner %+v, confirm %+v %v, used %d", other, mine, conf, err, h.used(bc[0]))
	}
	logf("bound code through reservations", "another user's reservation %s; the owner's reserved and confirmed; uses %d",
		other.Refused, h.used(bc[0]))
}
