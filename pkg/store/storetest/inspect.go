package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// InspectStore is what an admin's views of codes and users read besides
// the audit trail: a code's live reservations and its revocation.
type InspectStore interface {
	CodeReservations(ctx context.Context, promotionID int64, code string, now time.Time, limit int) ([]promo.Reservation, error)
	Revocation(ctx context.Context, code string) (r promo.Revocation, revoked bool, err error)
}

var inspectTests = cases{
	{"RedemptionsByCodeUserAndRange", testRedemptionsByCodeUserAndRange},
	{"CodeReservations", testCodeReservations},
	{"Revocation", testRevocation},
}

func (h *harness) ids(f promo.RedemptionFilter) []string {
	h.t.Helper()
	rs, err := h.s.Redemptions(h.ctx, f)
	if err != nil {
		h.t.Fatalf("Redemptions(%+v): %v", f, err)
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// The audit trail by code within a promotion, by user across promotions,
// and over an id range (a time range: ids are time-ordered), each newest
// first and paged; export takes the same filters; filters no query serves
// are refused.
func testRedemptionsByCodeUserAndRange(t *testing.T, h *harness) {
	p1, codes1 := h.generatedCodes("by-code-1", 4, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 5, promo.UnlimitedPerUser
	})
	other := "V" + h.tag + "OTHER"
	p2 := h.create(h.vanity(other, 10))
	alice, bob := "alice-"+h.tag, "bob-"+h.tag
	type redeemed struct{ id, code, user string }
	var all []redeemed // oldest first
	for _, r := range []struct{ code, user string }{
		{codes1[0], alice}, {codes1[1], bob}, {codes1[0], bob}, {other, alice}, {codes1[0], alice},
		{codes1[2], alice}, {other, bob}, {codes1[0], bob},
	} {
		out := h.redeem(redeemReq(r.code, r.user))
		if out.Refused != "" {
			t.Fatalf("redeem %s for %s: refused %s", r.code, r.user, out.Refused)
		}
		all = append(all, redeemed{out.Redemption.ID, r.code, r.user})
	}
	want := func(keep func(redeemed) bool) []string {
		var ids []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(all[i]) {
				ids = append(ids, all[i].id)
			}
		}
		return ids
	}
	code0 := want(func(r redeemed) bool { return r.code == codes1[0] })
	if got := h.ids(promo.RedemptionFilter{PromotionID: p1.ID, Code: codes1[0]}); !slices.Equal(got, code0) {
		t.Errorf("by code = %v, want %v (newest first)", got, code0)
	}
	if got := h.ids(promo.RedemptionFilter{PromotionID: p2.ID, Code: codes1[0]}); len(got) != 0 {
		t.Errorf("a code of another promotion = %v, want none", got)
	}
	if got := h.ids(promo.RedemptionFilter{PromotionID: p1.ID, Code: codes1[0], Limit: 2, After: code0[1]}); !slices.Equal(got, code0[2:4]) {
		t.Errorf("by code, second page of 2 = %v, want %v", got, code0[2:4])
	}
	aliceAll := want(func(r redeemed) bool { return r.user == alice })
	if got := h.ids(promo.RedemptionFilter{UserID: alice}); !slices.Equal(got, aliceAll) {
		t.Errorf("by user across promotions = %v, want %v", got, aliceAll)
	}
	if got := h.ids(promo.RedemptionFilter{UserID: alice, Limit: 3}); !slices.Equal(got, aliceAll[:3]) {
		t.Errorf("by user, first page of 3 = %v, want %v", got, aliceAll[:3])
	}
	if got := h.ids(promo.RedemptionFilter{UserID: alice, After: aliceAll[2]}); !slices.Equal(got, aliceAll[3:]) {
		t.Errorf("by user after %s = %v, want %v", aliceAll[2], got, aliceAll[3:])
	}
	if got := h.ids(promo.RedemptionFilter{UserID: "nobody-" + h.tag}); len(got) != 0 {
		t.Errorf("an unknown user = %v, want none", got)
	}
	// A range [since, before): the 3rd to the 6th redemption.
	since, before := all[2].id, all[6].id
	inRange := func(r redeemed) bool { return r.id >= since && r.id < before }
	for name, tc := range map[string]struct {
		f    promo.RedemptionFilter
		keep func(redeemed) bool
	}{
		"promotion": {promo.RedemptionFilter{PromotionID: p1.ID}, func(r redeemed) bool { return r.code != other }},
		"user":      {promo.RedemptionFilter{PromotionID: p1.ID, UserID: bob}, func(r redeemed) bool { return r.code != other && r.user == bob }},
		"code":      {promo.RedemptionFilter{PromotionID: p1.ID, Code: codes1[0]}, func(r redeemed) bool { return r.code == codes1[0] }},
		"all users": {promo.RedemptionFilter{UserID: bob}, func(r redeemed) bool { return r.user == bob }},
	} {
		f := tc.f
		f.Since, f.After = since, before
		wantIDs := want(func(r redeemed) bool { return tc.keep(r) && inRange(r) })
		if got := h.ids(f); !slices.Equal(got, wantIDs) {
			t.Errorf("%s in a range = %v, want %v", name, got, wantIDs)
		}
		var exported []string
		if err := h.s.ExportRedemptions(h.ctx, f, func(r promo.Redemption) error {
			exported = append(exported, r.ID)
			return nil
		}); err != nil || !slices.Equal(exported, wantIDs) {
			t.Errorf("%s in a range, exported = %v (%v), want %v", name, exported, err, wantIDs)
		}
	}
	_, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p1.ID, UserID: alice, Code: codes1[0]})
	wantCode(t, "Redemptions(user and code)", err, promo.EInvalid)
	_, err = h.s.Redemptions(h.ctx, promo.RedemptionFilter{Code: codes1[0]})
	wantCode(t, "Redemptions(no promotion, no user)", err, promo.EInvalid)
	_, err = h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p1.ID + 1_000_000, Code: codes1[0]})
	wantCode(t, "Redemptions(unknown promotion, by code)", err, promo.ENotFound)
}

// A code's live reservations: held and not expired, soonest to expire
// first, at most the limit; confirmed, released and expired ones are not.
func testCodeReservations(t *testing.T, h *harness) {
	p, codes := h.generatedCodes("reservations", 2, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 10, promo.UnlimitedPerUser
	})
	code := codes[0]
	now := time.Now().UTC()
	var held []string
	for i, ttl := range []time.Duration{30 * time.Minute, 10 * time.Minute, 20 * time.Minute} {
		out := h.reserve(reserveReq(code, "holder-"+h.tag+string(rune('a'+i)), ttl))
		held = append(held, out.Reservation.ID)
	}
	released := h.reserve(reserveReq(code, "released-"+h.tag, time.Hour)).Reservation.ID
	if _, _, err := h.s.Release(h.ctx, released, time.Now()); err != nil {
		t.Fatal(err)
	}
	expired := reserveReq(code, "expired-"+h.tag, time.Minute)
	expired.Now = now.Add(-2 * time.Minute)
	h.reserve(expired)
	h.reserve(reserveReq(codes[1], "neighbour-"+h.tag, time.Hour))

	rs, err := h.s.CodeReservations(h.ctx, p.ID, code, time.Now(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.ID)
		if r.Code != code || r.PromotionID != p.ID || r.Status != promo.ReservationHeld {
			t.Errorf("reservation %+v", r)
		}
	}
	if wantIDs := []string{held[1], held[2], held[0]}; !slices.Equal(got, wantIDs) {
		t.Errorf("live reservations = %v, want %v (soonest to expire first)", got, wantIDs)
	}
	if rs, err := h.s.CodeReservations(h.ctx, p.ID, code, time.Now(), 2); err != nil || len(rs) != 2 {
		t.Errorf("limit 2: %d reservations, %v", len(rs), err)
	}
	if rs, err := h.s.CodeReservations(h.ctx, p.ID+1_000_000, code, time.Now(), 10); err != nil || len(rs) != 0 {
		t.Errorf("the code under another promotion id: %d reservations, %v; want none", len(rs), err)
	}
	if rs, err := h.s.CodeReservations(h.ctx, p.ID, code, now.Add(40*time.Minute), 10); err != nil || len(rs) != 0 {
		t.Errorf("after every TTL: %d reservations, %v; want none", len(rs), err)
	}
}

// A code's revocation: not revoked, then revoked with its time and reason;
// an unknown code is ENotFound.
func testRevocation(t *testing.T, h *harness) {
	_, codes := h.generatedCodes("revocation", 1, nil)
	r, revoked, err := h.s.Revocation(h.ctx, codes[0])
	if err != nil || revoked {
		t.Fatalf("fresh code: revoked %v (%+v), %v", revoked, r, err)
	}
	now := time.Now().UTC()
	if _, _, err := h.s.RevokeCode(h.ctx, promo.RevokeRequest{Code: codes[0], Reason: "leaked", Actor: "admin:test",
		Now: now, AuditID: newID()}); err != nil {
		t.Fatal(err)
	}
	r, revoked, err = h.s.Revocation(h.ctx, codes[0])
	if err != nil || !revoked || r.Reason != "leaked" || r.RevokedAt.Sub(now).Abs() > time.Millisecond {
		t.Errorf("revoked code: revoked %v, %+v, %v; want leaked at %s", revoked, r, err, now)
	}
	_, _, err = h.s.Revocation(h.ctx, "N"+h.tag+"NOSUCHCODE")
	wantCode(t, "Revocation(unknown code)", err, promo.ENotFound)
}
