package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// ReservationStore is the reservation half of a store.
type ReservationStore interface {
	Reserve(ctx context.Context, req promo.ReserveRequest) (promo.ReserveOutcome, error)
	Confirm(ctx context.Context, req promo.ConfirmRequest) (promo.ConfirmOutcome, error)
	Release(ctx context.Context, id string, now time.Time) (r promo.Reservation, replayed bool, err error)
	Reservation(ctx context.Context, id string) (promo.Reservation, error)
	SweepReservations(ctx context.Context, before time.Time, limit int) (int64, error)
	SweepIdempotencyKeys(ctx context.Context, before time.Time, limit int) (int64, error)
}

var reservationTests = cases{
	{"ReserveHoldsAUse", testReserveHoldsAUse},
	{"ReservationExpiry", testReservationExpiry},
	{"ReservePerUserLimit", testReservePerUserLimit},
	{"ReserveIdempotency", testReserveIdempotency},
	{"ReserveConcurrentLastUse", testReserveConcurrentLastUse},
	{"ReservationsRacingRedemptions", testReservationsRacingRedemptions},
	{"ReservationsRacingPerUser", testReservationsRacingPerUser},
	{"ConfirmRacingRelease", testConfirmRacingRelease},
	{"SweepReservations", testSweepReservations},
	{"SweepIdempotencyKeys", testSweepIdempotencyKeys},
}

func reserveReq(code, user string, ttl time.Duration) promo.ReserveRequest {
	return promo.ReserveRequest{ID: newID(), Code: code, UserID: user, Now: time.Now().UTC(), TTL: ttl}
}

func confirmReq(id, order string) promo.ConfirmRequest {
	return promo.ConfirmRequest{ReservationID: id, RedemptionID: newID(), EventID: newID(), OrderID: order,
		Now: time.Now().UTC()}
}

func (h *harness) reserve(req promo.ReserveRequest) promo.ReserveOutcome {
	h.t.Helper()
	out, err := h.s.Reserve(h.ctx, req)
	if err != nil {
		h.t.Fatalf("Reserve(%q, %q): %v", req.Code, req.UserID, err)
	}
	return out
}

func (h *harness) confirm(req promo.ConfirmRequest) promo.ConfirmOutcome {
	h.t.Helper()
	out, err := h.s.Confirm(h.ctx, req)
	if err != nil {
		h.t.Fatalf("Confirm(%q): %v", req.ReservationID, err)
	}
	return out
}

func (h *harness) state(code, user string) promo.CodeState {
	h.t.Helper()
	st, err := h.s.CodeState(h.ctx, code, user)
	if err != nil {
		h.t.Fatalf("CodeState(%q): %v", code, err)
	}
	return st
}

func testReserveHoldsAUse(t *testing.T, h *harness) {
	p, codes := h.generatedCodes("reserve", 3, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 2, 0
	})
	code := codes[1]
	req := reserveReq(code, "alice", 15*time.Minute)
	a := h.reserve(req)
	r := a.Reservation
	if a.Refused != "" || a.Replayed || r.ID != req.ID || r.Code != code || r.PromotionID != p.ID || r.UserID != "alice" ||
		r.Status != promo.ReservationHeld || !r.ExpiresAt.Equal(req.Now.Truncate(time.Microsecond).Add(15*time.Minute)) {
		t.Fatalf("Reserve = %+v, want a held reservation of 15m", a)
	}
	if st := h.state(code, ""); st.Used != 0 || st.Reserved != 1 || st.UsesLeft() != 1 {
		t.Errorf("after one reservation: used %d, reserved %d, left %d; want 0, 1, 1", st.Used, st.Reserved, st.UsesLeft())
	}
	b := h.reserve(reserveReq(code, "bob", time.Minute))
	if b.Refused != "" {
		t.Fatalf("second reservation of a max-2 code: %+v", b)
	}
	wantReserveRefused(t, "a third reservation", h.reserve(reserveReq(code, "carol", time.Minute)), promo.ReasonCodeExhausted)
	wantRefused(t, "a redemption while both uses are held", h.redeem(redeemReq(code, "dave")), promo.ReasonCodeExhausted)
	if st := h.state(code, ""); st.Status(time.Now(), false) != promo.ReasonCodeExhausted {
		t.Errorf("status with both uses held = %q, want code_exhausted", st.Status(time.Now(), false))
	}

	// Release gives the use back at once; a second release answers the same.
	rel, replayed, err := h.s.Release(h.ctx, a.Reservation.ID, time.Now())
	if err != nil || replayed || rel.Status != promo.ReservationReleased || rel.SettledAt == nil {
		t.Fatalf("Release = %+v, %t, %v", rel, replayed, err)
	}
	if _, replayed, err := h.s.Release(h.ctx, a.Reservation.ID, time.Now()); err != nil || !replayed {
		t.Errorf("second Release: replayed %t, %v; want replayed", replayed, err)
	}
	wantReserveRefusedConfirm(t, h, a.Reservation.ID, promo.ReasonReservationReleased)
	if out := h.redeem(redeemReq(code, "dave")); out.Refused != "" || out.Redemption.UsesLeft != 0 {
		t.Fatalf("redemption after a release: %+v, want one with 0 uses left (bob's hold counts)", out)
	}

	// Confirm turns bob's hold into his redemption, once.
	creq := confirmReq(b.Reservation.ID, "order-b")
	c := h.confirm(creq)
	if c.Refused != "" || c.Replayed || c.Redemption.ID != creq.RedemptionID || c.Redemption.UserID != "bob" ||
		c.Redemption.Code != code || c.Redemption.OrderID != "order-b" || c.Redemption.UsesLeft != 0 {
		t.Fatalf("Confirm = %+v", c)
	}
	if st := h.state(code, ""); st.Used != 2 || st.Reserved != 0 {
		t.Errorf("after confirm: used %d, reserved %d; want 2, 0", st.Used, st.Reserved)
	}
	again := confirmReq(b.Reservation.ID, "order-b")
	if c2 := h.confirm(again); !c2.Replayed || c2.Redemption.ID != creq.RedemptionID {
		t.Errorf("second Confirm = %+v, want the first redemption replayed", c2)
	}
	_, err = h.s.Confirm(h.ctx, confirmReq(b.Reservation.ID, "another-order"))
	wantCode(t, "Confirm with another orderId", err, promo.EConflict)
	_, _, err = h.s.Release(h.ctx, b.Reservation.ID, time.Now())
	if promo.ReasonOf(err) != promo.ReasonReservationConfirmed {
		t.Errorf("Release of a confirmed reservation: %v, want %s", err, promo.ReasonReservationConfirmed)
	}
	if got, err := h.s.Reservation(h.ctx, b.Reservation.ID); err != nil || got.Status != promo.ReservationConfirmed ||
		got.RedemptionID != creq.RedemptionID || got.OrderID != "order-b" {
		t.Errorf("Reservation = %+v, %v", got, err)
	}
	if u := h.used(code); u != 2 {
		t.Errorf("used = %d, want 2", u)
	}

	wantReserveRefused(t, "an unknown code", h.reserve(reserveReq("N"+h.tag+"NOSUCH", "u", time.Minute)), promo.ReasonCodeNotFound)
	_, err = h.s.Confirm(h.ctx, confirmReq("no-such-reservation", "o"))
	wantCode(t, "Confirm(unknown)", err, promo.ENotFound)
	_, _, err = h.s.Release(h.ctx, "no-such-reservation", time.Now())
	wantCode(t, "Release(unknown)", err, promo.ENotFound)
	_, err = h.s.Reservation(h.ctx, "no-such-reservation")
	wantCode(t, "Reservation(unknown)", err, promo.ENotFound)
	_, err = h.s.Reserve(h.ctx, reserveReq(code, "", time.Minute))
	wantField(t, "Reserve without user", err, "userId")

	// A deactivated promotion refuses reservations and confirmations.
	held := h.reserve(reserveReq(codes[2], "erin", time.Minute))
	if err := h.s.SetPromotionActive(h.ctx, p.ID, false); err != nil {
		t.Fatal(err)
	}
	wantReserveRefused(t, "reserve when deactivated", h.reserve(reserveReq(codes[0], "u", time.Minute)), promo.ReasonDeactivated)
	if out := h.confirm(confirmReq(held.Reservation.ID, "o")); out.Refused != promo.ReasonDeactivated {
		t.Errorf("confirm when deactivated: %+v, want %s", out, promo.ReasonDeactivated)
	}
}

func testReservationExpiry(t *testing.T, h *harness) {
	_, codes := h.generatedCodes("expiry", 2, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 1, 0
	})
	// A reservation made an hour ago for a minute has expired: it holds
	// nothing, with no job having run.
	old := reserveReq(codes[0], "alice", time.Minute)
	old.Now = time.Now().UTC().Add(-time.Hour)
	a := h.reserve(old)
	if a.Refused != "" {
		t.Fatalf("reserve: %+v", a)
	}
	if st := h.state(codes[0], "alice"); st.Reserved != 0 || st.UserReserved != 0 || st.UsesLeft() != 1 {
		t.Errorf("an expired reservation still holds: %+v", st)
	}
	if got, err := h.s.Reservation(h.ctx, a.Reservation.ID); err != nil || got.State(time.Now()) != promo.ReservationExpired {
		t.Errorf("Reservation = %+v, %v; want state expired", got, err)
	}
	// Its use is still free: confirming it takes the use anew (documented).
	if c := h.confirm(confirmReq(a.Reservation.ID, "o-1")); c.Refused != "" || c.Redemption.UserID != "alice" {
		t.Fatalf("confirm an expired reservation whose use is free: %+v, want a redemption", c)
	}
	// Here the use was taken by someone else: reservation_expired.
	b := old
	b.ID, b.Code = newID(), codes[1]
	expired := h.reserve(b)
	if out := h.redeem(redeemReq(codes[1], "bob")); out.Refused != "" {
		t.Fatalf("redeem the expired hold's code: %+v", out)
	}
	wantReserveRefusedConfirm(t, h, expired.Reservation.ID, promo.ReasonReservationExpired)
	if u := h.used(codes[1]); u != 1 {
		t.Errorf("used = %d, want 1", u)
	}
}

func testReservePerUserLimit(t *testing.T, h *harness) {
	_, codes := h.generatedCodes("reserve-peruser", 3, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 5, 1
	})
	a := h.reserve(reserveReq(codes[0], "alice", time.Minute))
	if a.Refused != "" {
		t.Fatalf("reserve: %+v", a)
	}
	wantReserveRefused(t, "alice's second hold", h.reserve(reserveReq(codes[1], "alice", time.Minute)), promo.ReasonUserLimitReached)
	wantRefused(t, "alice's redemption while she holds her one use", h.redeem(redeemReq(codes[1], "alice")), promo.ReasonUserLimitReached)
	if st := h.state(codes[1], "alice"); st.UserReserved != 1 || st.UserUsesLeft() != 0 || st.Used != 0 {
		t.Errorf("CodeState for alice = %+v", st)
	}
	if out := h.reserve(reserveReq(codes[1], "bob", time.Minute)); out.Refused != "" {
		t.Errorf("bob: %+v", out)
	}
	if c := h.confirm(confirmReq(a.Reservation.ID, "o")); c.Refused != "" {
		t.Fatalf("confirm alice's: %+v", c)
	}
	if st := h.state(codes[2], "alice"); st.UserUsed != 1 || st.UserReserved != 0 || st.UserUsesLeft() != 0 {
		t.Errorf("after confirm, alice = %+v", st)
	}
	wantReserveRefused(t, "alice after her use", h.reserve(reserveReq(codes[2], "alice", time.Minute)), promo.ReasonUserLimitReached)
}

func testReserveIdempotency(t *testing.T, h *harness) {
	code := "V" + h.tag + "RIDEM"
	np := h.vanity(code, 1)
	np.PerUserLimit = promo.UnlimitedPerUser
	h.create(np)
	req := reserveReq(code, "u", time.Minute)
	req.IdempotencyKey, req.RequestHash = "rkey-"+h.tag, "hash-1"
	first := h.reserve(req)
	req2 := req
	req2.ID = newID()
	again := h.reserve(req2)
	if first.Refused != "" || !again.Replayed || again.Reservation.ID != first.Reservation.ID {
		t.Fatalf("replay = %+v, want %s replayed", again, first.Reservation.ID)
	}
	req3 := req2
	req3.RequestHash = "hash-2"
	_, err := h.s.Reserve(h.ctx, req3)
	wantCode(t, "the key with another request", err, promo.EConflict)
	// A refusal is recorded too.
	ref := reserveReq(code, "v", time.Minute)
	ref.IdempotencyKey, ref.RequestHash = "rkey2-"+h.tag, "h"
	wantReserveRefused(t, "a second hold on a max-1 code", h.reserve(ref), promo.ReasonCodeExhausted)
	if _, _, err := h.s.Release(h.ctx, first.Reservation.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	ref.ID = newID()
	if out := h.reserve(ref); out.Refused != promo.ReasonCodeExhausted || !out.Replayed {
		t.Errorf("replayed refusal = %+v, want the recorded code_exhausted", out)
	}
}

func wantReserveRefused(t *testing.T, what string, out promo.ReserveOutcome, reason promo.Reason) {
	t.Helper()
	if out.Refused != reason {
		t.Fatalf("%s: outcome %+v, want refusal %q", what, out, reason)
	}
}

func wantReserveRefusedConfirm(t *testing.T, h *harness, id string, reason promo.Reason) {
	t.Helper()
	if out := h.confirm(confirmReq(id, "o")); out.Refused != reason {
		t.Fatalf("confirm %s: %+v, want refusal %q", id, out, reason)
	}
}

// counts tallies concurrent outcomes by refusal reason ("" for success).
type counts struct {
	mu sync.Mutex
	m  map[promo.Reason]int
}

func (c *counts) add(r promo.Reason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[promo.Reason]int{}
	}
	c.m[r]++
}

func testReserveConcurrentLastUse(t *testing.T, h *harness) {
	code := "V" + h.tag + "LAST"
	np := h.vanity(code, 3)
	np.PerUserLimit = promo.UnlimitedPerUser
	h.create(np)
	for i := range 2 {
		if out := h.redeem(redeemReq(code, fmt.Sprintf("early-%d", i))); out.Refused != "" {
			t.Fatal(out)
		}
	}
	const n = 32
	var c counts
	race(n, func(i int) {
		out, err := h.s.Reserve(h.ctx, reserveReq(code, fmt.Sprintf("u%d", i), time.Minute))
		if err != nil {
			t.Errorf("reserve: %v", err)
			return
		}
		c.add(out.Refused)
	})
	if c.m[""] != 1 || c.m[promo.ReasonCodeExhausted] != n-1 {
		t.Errorf("%d concurrent reservations of a code with one use left: %v; want exactly 1 held", n, c.m)
	}
	if st := h.state(code, ""); st.Used+st.Reserved != 3 {
		t.Errorf("used %d + reserved %d, want 3", st.Used, st.Reserved)
	}
}

// reserveOrRedeem reserves code for user (even i) or redeems it (odd i) and
// counts the outcome's refusal ("" for success).
func (h *harness) reserveOrRedeem(c *counts, i int, code, user string) {
	var (
		reason promo.Reason
		err    error
	)
	if i%2 == 0 {
		var out promo.ReserveOutcome
		out, err = h.s.Reserve(h.ctx, reserveReq(code, user, time.Minute))
		reason = out.Refused
	} else {
		var out promo.RedeemOutcome
		out, err = h.s.Redeem(h.ctx, redeemReq(code, user))
		reason = out.Refused
	}
	if err != nil {
		h.t.Errorf("attempt %d: %v", i, err)
		return
	}
	c.add(reason)
}

func testReservationsRacingRedemptions(t *testing.T, h *harness) {
	code := "V" + h.tag + "MIXED"
	np := h.vanity(code, 5)
	np.PerUserLimit = promo.UnlimitedPerUser
	h.create(np)
	const n = 40
	var c counts
	race(n, func(i int) { h.reserveOrRedeem(&c, i, code, fmt.Sprintf("u%d", i)) })
	st := h.state(code, "")
	if c.m[""] != 5 || c.m[promo.ReasonCodeExhausted] != n-5 || st.Used+st.Reserved != 5 {
		t.Errorf("%d reservations and redemptions racing on a max-5 code: %v, used %d + reserved %d; want 5 successes",
			n, c.m, st.Used, st.Reserved)
	}
}

func testReservationsRacingPerUser(t *testing.T, h *harness) {
	const n = 24
	_, codes := h.generatedCodes("reserve-peruser-race", n, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 1, 2
	})
	var c counts
	race(n, func(i int) { h.reserveOrRedeem(&c, i, codes[i], "racer") })
	st := h.state(codes[0], "racer")
	if c.m[""] != 2 || c.m[promo.ReasonUserLimitReached] != n-2 || st.UserUsed+st.UserReserved != 2 {
		t.Errorf("one user racing %d reservations and redemptions with perUserLimit 2: %v, used %d + reserved %d; want 2",
			n, c.m, st.UserUsed, st.UserReserved)
	}
}

func testConfirmRacingRelease(t *testing.T, h *harness) {
	code := "V" + h.tag + "SETTLE"
	np := h.vanity(code, 20)
	np.PerUserLimit = promo.UnlimitedPerUser
	h.create(np)
	const n = 10
	ids := make([]string, n)
	for i := range ids {
		ids[i] = h.reserve(reserveReq(code, fmt.Sprintf("u%d", i), time.Minute)).Reservation.ID
	}
	var confirmed, released counts
	race(4*n, func(i int) {
		id := ids[i%n]
		if i/n%2 == 0 {
			out, err := h.s.Confirm(h.ctx, confirmReq(id, "order"))
			if err != nil {
				t.Errorf("confirm: %v", err)
				return
			}
			if out.Refused == "" && !out.Replayed {
				confirmed.add("")
			}
			return
		}
		_, replayed, err := h.s.Release(h.ctx, id, time.Now())
		switch {
		case promo.ReasonOf(err) == promo.ReasonReservationConfirmed:
		case err != nil:
			t.Errorf("release: %v", err)
		case !replayed:
			released.add("")
		}
	})
	st := h.state(code, "")
	if confirmed.m[""]+released.m[""] != n || st.Used != confirmed.m[""] || st.Reserved != 0 {
		t.Errorf("confirms racing releases of %d reservations: %d confirmed, %d released, used %d, reserved %d; "+
			"want each settled once and used = confirmed", n, confirmed.m[""], released.m[""], st.Used, st.Reserved)
	}
}

func testSweepReservations(t *testing.T, h *harness) {
	code := "V" + h.tag + "SWEEP"
	np := h.vanity(code, 10)
	np.PerUserLimit = promo.UnlimitedPerUser
	h.create(np)
	old := reserveReq(code, "u", time.Minute)
	old.Now = time.Now().UTC().Add(-48 * time.Hour)
	gone := h.reserve(old).Reservation
	live := h.reserve(reserveReq(code, "v", time.Hour)).Reservation
	for {
		n, err := h.s.SweepReservations(h.ctx, time.Now().Add(-24*time.Hour), 2)
		if err != nil {
			t.Fatalf("SweepReservations: %v", err)
		}
		if n < 2 {
			break
		}
	}
	_, err := h.s.Reservation(h.ctx, gone.ID)
	wantCode(t, "a swept reservation", err, promo.ENotFound)
	if _, err := h.s.Reservation(h.ctx, live.ID); err != nil {
		t.Errorf("a live reservation was swept: %v", err)
	}
}

// testSweepIdempotencyKeys: records older than the cut are deleted, a bounded
// number per call; a request repeating a swept key is a new request, one
// repeating a kept key is still answered from its record.
func testSweepIdempotencyKeys(t *testing.T, h *harness) {
	code := "V" + h.tag + "IDEMSWEEP"
	np := h.vanity(code, 10)
	np.PerUserLimit = promo.UnlimitedPerUser
	h.create(np)
	keyed := func(key string, at time.Time) promo.RedeemRequest {
		r := redeemReq(code, "u")
		r.IdempotencyKey, r.RequestHash, r.Now = key+"-"+h.tag, "h", at
		return r
	}
	old := []promo.RedeemRequest{keyed("sweep-old-1", time.Now().UTC().Add(-48*time.Hour)),
		keyed("sweep-old-2", time.Now().UTC().Add(-47*time.Hour)),
		keyed("sweep-old-3", time.Now().UTC().Add(-46*time.Hour))}
	for _, r := range old {
		h.redeem(r)
	}
	oldHold := reserveReq(code, "v", time.Minute)
	oldHold.Now, oldHold.IdempotencyKey, oldHold.RequestHash = time.Now().UTC().Add(-48*time.Hour), "sweep-hold-"+h.tag, "h"
	h.reserve(oldHold)
	recent := keyed("sweep-recent", time.Now().UTC())
	first := h.redeem(recent)
	var swept int64
	for {
		n, err := h.s.SweepIdempotencyKeys(h.ctx, time.Now().Add(-24*time.Hour), 2)
		if err != nil {
			t.Fatalf("SweepIdempotencyKeys: %v", err)
		}
		if n > 2 {
			t.Fatalf("SweepIdempotencyKeys(limit 2) deleted %d", n)
		}
		swept += n
		if n < 2 {
			break
		}
	}
	if swept < 4 {
		t.Errorf("swept %d records, want at least the 4 older than the cut", swept)
	}
	again := keyed("sweep-old-1", time.Now().UTC())
	again.ID, again.EventID = newID(), newID()
	if out := h.redeem(again); out.Replayed || out.Refused != "" {
		t.Errorf("a swept key's repeat: replayed %v, refused %q; want a new redemption", out.Replayed, out.Refused)
	}
	if out := h.redeem(recent); !out.Replayed || out.Redemption.ID != first.Redemption.ID {
		t.Errorf("a kept key's repeat: replayed %v, id %q; want the stored redemption %q", out.Replayed, out.Redemption.ID, first.Redemption.ID)
	}
	if got := h.used(code); got != 5 {
		t.Errorf("uses %d, want 5 (3 old, 1 recent, 1 after the sweep)", got)
	}
}
