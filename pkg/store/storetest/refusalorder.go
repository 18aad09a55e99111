package storetest

import (
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Which reason a refusal names when several apply: deletion, revocation,
// another owner, deactivation, the window, then the uses (the order of
// promo.CodeState.Status), the same through Redeem, Reserve, RedeemBatch
// and Confirm.
var refusalOrderTests = cases{
	{"RefusalOrder", testRefusalOrder},
}

func testRefusalOrder(t *testing.T, h *harness) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	starts, expires := now.Add(-time.Hour), now.Add(time.Hour)
	p, codes := h.generatedCodes("order", 4, func(np *promo.NewPromotion) {
		np.StartsAt, np.ExpiresAt = &starts, &expires
		np.MaxUsagePerCode, np.PerUserLimit = 1, 0
	})
	bound := h.issue(issueReq(p.ID, "alice", 1)).Issuance.Codes[0]
	spent, other := codes[0], codes[1]
	if bound == spent || bound == other {
		spent, other = codes[2], codes[3]
	}
	if out := h.redeem(redeemReq(spent, "u")); out.Refused != "" {
		t.Fatalf("first use: %+v", out)
	}
	held := h.reserve(reserveReq(other, "bob", time.Hour))
	if held.Refused != "" {
		t.Fatalf("hold: %+v", held)
	}
	want := func(what, code, user string, at time.Time, reason promo.Reason) {
		t.Helper()
		r := redeemReq(code, user)
		r.Now = at
		wantRefused(t, what+" (redeem)", h.redeem(r), reason)
		q := reserveReq(code, user, time.Minute)
		q.Now = at
		wantReserveRefused(t, what+" (reserve)", h.reserve(q), reason)
		r2 := redeemReq(code, user+"-2")
		r2.Now = at
		r.ID, r.EventID = newID(), newID()
		for i, res := range h.redeemBatch([]promo.RedeemRequest{r, r2}) {
			if res.Err != nil || (i == 0 && res.Outcome.Refused != reason) {
				t.Errorf("%s (batch member %d): %+v, %v, want %s", what, i, res.Outcome, res.Err, reason)
			}
		}
	}
	want("used up, after the window", spent, "u", expires, promo.ReasonExpired)
	want("used up, before the window", spent, "u", starts.Add(-time.Microsecond), promo.ReasonNotStarted)
	want("another's code, after the window", bound, "bob", expires, promo.ReasonNotYourCode)

	if err := h.s.SetPromotionActive(h.ctx, p.ID, false); err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	want("deactivated, used up, after the window", spent, "u", expires, promo.ReasonDeactivated)
	want("deactivated, another's code", bound, "bob", now, promo.ReasonNotYourCode)
	for _, c := range []string{bound, other} {
		if _, _, err := h.s.RevokeCode(h.ctx, revokeReq(c, "order")); err != nil {
			t.Fatalf("revoke %s: %v", c, err)
		}
	}
	want("revoked, deactivated, another's code", bound, "bob", expires, promo.ReasonRevoked)
	if out := h.confirm(confirmReq(held.Reservation.ID, "o")); out.Refused != promo.ReasonRevoked {
		t.Errorf("confirm of a revoked code's hold, deactivated: %+v, want revoked", out)
	}
	if _, err := h.s.RequestDeletion(h.ctx, deletionReq(p.ID)); err != nil {
		t.Fatalf("RequestDeletion: %v", err)
	}
	want("deleted, revoked, another's code", bound, "bob", expires, promo.ReasonPromotionDeleted)
	want("deleted, used up", spent, "u", now, promo.ReasonPromotionDeleted)
}
