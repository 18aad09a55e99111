package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// TotalsStore is the rollup of outbox events into promotion totals, and the
// deletion steps the list's statuses need.
type TotalsStore interface {
	RollUp(ctx context.Context, limit int) (promo.RollupBatch, error)
	RequestDeletion(ctx context.Context, a promo.AuditEntry) (bool, error)
	FinishDeletion(ctx context.Context, a promo.AuditEntry) error
}

var totalsTests = cases{
	{"RollupTotalsExact", testRollupTotals},
}

func (h *harness) rollback(id string) {
	h.t.Helper()
	if _, _, err := h.s.Rollback(h.ctx, promo.RollbackRequest{RedemptionID: id, EventID: newID(), Reason: "test",
		Now: time.Now().UTC()}); err != nil {
		h.t.Fatalf("Rollback(%s): %v", id, err)
	}
}

// drain rolls up until a pass finds nothing.
func (h *harness) drain(limit int) {
	h.t.Helper()
	for range 10_000 {
		b, err := h.s.RollUp(h.ctx, limit)
		if err != nil {
			h.t.Fatalf("RollUp: %v", err)
		}
		if b.Events == 0 {
			return
		}
	}
	h.t.Fatal("RollUp never ran dry")
}

// totalsOf waits until the promotion's totals are want, rolling up: other
// subtests' publishers may hold a row for an instant, so that one pass skips
// it (an undercount heals; an overcount never does and fails).
func (h *harness) totalsOf(id int64, want promo.Totals) promo.Totals {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := h.status(id).Totals
		if got == want || time.Now().After(deadline) {
			return got
		}
		h.drain(0)
		time.Sleep(20 * time.Millisecond)
	}
}

// wantTotals checks the rolled-up totals against want and against the audit
// trail's own count (Stats).
func (h *harness) wantTotals(what string, id int64, want promo.Totals) {
	h.t.Helper()
	if got := h.totalsOf(id, want); got != want {
		h.t.Errorf("%s: totals %+v, want %+v", what, got, want)
	}
	st, err := h.s.Stats(h.ctx, promo.StatsQuery{PromotionID: id, Bucket: promo.BucketHour})
	if err != nil {
		h.t.Fatalf("Stats: %v", err)
	}
	if audit := (promo.Totals{Redemptions: st.Redemptions, CodesRedeemed: st.CodesRedeemed, RolledBack: st.RolledBack}); audit != want {
		h.t.Errorf("%s: the audit trail counts %+v, want %+v", what, audit, want)
	}
	// One more pass changes nothing: no event is counted twice.
	h.drain(0)
	if got := h.status(id).Totals; got != want {
		h.t.Errorf("%s: after another rollup, totals %+v, want %+v", what, got, want)
	}
}

// testRollupTotals: two rollers racing over the same events count each once;
// a rollback takes a redemption (and, at the code's last live use, a code)
// away; lifecycle events on the same stream count for nothing; GetPromotion
// and ListPromotions carry the totals.
func testRollupTotals(t *testing.T, h *harness) {
	code := "V" + h.tag + "TOTALS"
	np := h.vanity(code, 100)
	np.PerUserLimit = 0
	v := h.create(np)
	p, codes := h.generatedCodes("totals", 3, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 2, 0
	})
	if got := h.status(v.ID).Totals; got != (promo.Totals{}) {
		t.Fatalf("a new promotion's totals = %+v, want zero", got)
	}

	var vr []promo.RedeemOutcome
	for i := range 40 {
		out := h.redeem(redeemReq(code, fmt.Sprintf("u%d", i)))
		if out.Refused != "" {
			t.Fatalf("redeem %d: %+v", i, out)
		}
		vr = append(vr, out)
	}
	for _, out := range vr[:5] {
		h.rollback(out.Redemption.ID)
	}
	a1 := h.redeem(redeemReq(codes[0], "a"))
	a2 := h.redeem(redeemReq(codes[0], "b"))
	b1 := h.redeem(redeemReq(codes[1], "c"))
	for _, out := range []promo.RedeemOutcome{a1, a2, b1} {
		if out.Refused != "" {
			t.Fatalf("redeem: %+v", out)
		}
	}
	h.rollback(b1.Redemption.ID) // codes[1] back to 0 uses: one code fewer
	h.rollback(a1.Redemption.ID) // codes[0] keeps one use: still redeemed
	// Lifecycle events on the same stream: they count for nothing.
	name := "renamed " + h.tag
	if _, err := h.s.UpdatePromotion(h.ctx, promo.PromotionUpdate{ID: p.ID, Name: &name, Actor: "admin:test",
		Now: time.Now().UTC(), AuditID: newID()}); err != nil {
		t.Fatalf("UpdatePromotion: %v", err)
	}
	if _, _, err := h.s.RevokeCode(h.ctx, revokeReq(codes[2], "leaked")); err != nil {
		t.Fatalf("RevokeCode: %v", err)
	}

	// Two rollers race over the same events in small batches.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			for range 10_000 {
				b, err := h.s.RollUp(h.ctx, 3)
				if err != nil {
					errs <- err
					return
				}
				if b.Events == 0 {
					return
				}
				if b.Oldest.IsZero() || b.Oldest.After(time.Now()) {
					errs <- fmt.Errorf("rollup batch %+v: Oldest is not the oldest event's time", b)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("RollUp: %v", err)
	}
	h.wantTotals("vanity code", v.ID, promo.Totals{Redemptions: 35, CodesRedeemed: 1, RolledBack: 5})
	h.wantTotals("generated codes", p.ID, promo.Totals{Redemptions: 1, CodesRedeemed: 1, RolledBack: 2})

	// The last live use of codes[0] rolled back: no code redeemed.
	h.rollback(a2.Redemption.ID)
	h.wantTotals("after the last rollback", p.ID, promo.Totals{Redemptions: 0, CodesRedeemed: 0, RolledBack: 3})

	// The list carries the same totals as GetPromotion.
	list, err := h.s.ListPromotions(h.ctx, promo.ListFilter{Before: max(v.ID, p.ID) + 1, Limit: 500})
	if err != nil {
		t.Fatalf("ListPromotions: %v", err)
	}
	seen := 0
	for _, st := range list {
		if st.ID == v.ID || st.ID == p.ID {
			seen++
			if want := h.status(st.ID).Totals; st.Totals != want {
				t.Errorf("listed totals of %d = %+v, GetPromotion %+v", st.ID, st.Totals, want)
			}
		}
	}
	if seen != 2 {
		t.Errorf("the list holds %d of the 2 promotions", seen)
	}
}
