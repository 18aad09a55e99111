package storetest

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// LifecycleStore is the admin-change half of a store.
type LifecycleStore interface {
	RevokeCode(ctx context.Context, req promo.RevokeRequest) (promo.Revocation, bool, error)
	AuditLog(ctx context.Context, f promo.AuditFilter) ([]promo.AuditEntry, error)
	UpdatePromotion(ctx context.Context, u promo.PromotionUpdate) (promo.PromotionSettings, error)
	CancelPromotion(ctx context.Context, req promo.CancelRequest) (replayed bool, err error)
	TopUp(ctx context.Context, req promo.TopUpRequest) (t promo.TopUp, replayed bool, err error)
	TopUps(ctx context.Context, id int64) ([]promo.TopUp, error)
	RequestDeletion(ctx context.Context, a promo.AuditEntry) (replayed bool, err error)
	FinishDeletion(ctx context.Context, a promo.AuditEntry) error
	PurgeRows(ctx context.Context, table string, id int64, limit int) (int64, error)
	MarkPurge(ctx context.Context, id int64, before, now time.Time) (bool, error)
	RecordPurge(ctx context.Context, a promo.AuditEntry) error
	Deletion(ctx context.Context, id int64) (promo.Deletion, error)
}

var lifecycleTests = cases{
	{"RevokeCode", testRevokeCode},
	{"UpdatePromotion", testUpdatePromotion},
	{"CancelPromotion", testCancelPromotion},
	{"TopUp", testTopUp},
}

func revokeReq(code, reason string) promo.RevokeRequest {
	return promo.RevokeRequest{Code: code, Reason: reason, Actor: "admin:test", Now: time.Now().UTC(), AuditID: newID()}
}

func testRevokeCode(t *testing.T, h *harness) {
	p, codes := h.generatedCodes("revoke", 3, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 5, 0
	})
	held := h.reserve(reserveReq(codes[0], "alice", time.Minute))
	req := revokeReq(codes[0], "leaked on a forum")
	rev, replayed, err := h.s.RevokeCode(h.ctx, req)
	if err != nil || replayed || rev.Code != codes[0] || rev.PromotionID != p.ID || rev.Reason != req.Reason ||
		!rev.RevokedAt.Equal(req.Now.Truncate(time.Microsecond)) {
		t.Fatalf("RevokeCode = %+v, %t, %v", rev, replayed, err)
	}
	wantRefused(t, "redeem a revoked code", h.redeem(redeemReq(codes[0], "bob")), promo.ReasonRevoked)
	wantReserveRefused(t, "reserve a revoked code", h.reserve(reserveReq(codes[0], "bob", time.Minute)), promo.ReasonRevoked)
	if out := h.confirm(confirmReq(held.Reservation.ID, "o")); out.Refused != promo.ReasonRevoked {
		t.Errorf("confirm a reservation of a code revoked since: %+v, want %s", out, promo.ReasonRevoked)
	}
	if st := h.state(codes[0], ""); !st.Revoked || st.Status(time.Now(), false) != promo.ReasonRevoked || st.Used != 0 {
		t.Errorf("CodeState of a revoked code = %+v", st)
	}
	if out := h.redeem(redeemReq(codes[1], "bob")); out.Refused != "" {
		t.Errorf("a neighbour of a revoked code: %+v", out)
	}
	again, replayed, err := h.s.RevokeCode(h.ctx, revokeReq(codes[0], "other reason"))
	if err != nil || !replayed || again.Reason != req.Reason || !again.RevokedAt.Equal(rev.RevokedAt) {
		t.Errorf("second RevokeCode = %+v, %t, %v; want the first revocation replayed", again, replayed, err)
	}
	_, _, err = h.s.RevokeCode(h.ctx, revokeReq("N"+h.tag+"NOSUCH", "x"))
	wantCode(t, "RevokeCode(unknown)", err, promo.ENotFound)

	log, err := h.s.AuditLog(h.ctx, promo.AuditFilter{PromotionID: p.ID})
	if err != nil || len(log) != 1 {
		t.Fatalf("AuditLog = %+v, %v; want the one revocation", log, err)
	}
	a := log[0]
	var detail map[string]string
	_ = json.Unmarshal(a.Detail, &detail)
	if a.ID != req.AuditID || a.Action != promo.ActionCodeRevoked || a.Actor != "admin:test" || a.Code != codes[0] ||
		a.PromotionID != p.ID || !a.At.Equal(rev.RevokedAt) || detail["reason"] != req.Reason {
		t.Errorf("audit entry = %+v (%s)", a, a.Detail)
	}
	_, err = h.s.AuditLog(h.ctx, promo.AuditFilter{PromotionID: p.ID + 1_000_000})
	wantCode(t, "AuditLog(unknown promotion)", err, promo.ENotFound)
}

func update(id int64, edit func(u *promo.PromotionUpdate)) promo.PromotionUpdate {
	u := promo.PromotionUpdate{ID: id, Actor: "admin:test", Now: time.Now().UTC(), AuditID: newID()}
	edit(&u)
	return u
}

func testUpdatePromotion(t *testing.T, h *harness) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	starts, expires := now.Add(-time.Hour), now.Add(time.Hour)
	p, codes := h.generatedCodes("update", 3, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 10, 0
		np.StartsAt, np.ExpiresAt = &starts, &expires
	})
	name := "renamed " + h.tag
	s, err := h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) { u.Name = &name }))
	if err != nil || s.ID != p.ID || s.Name != name || !s.Active || s.StartsAt == nil || !s.StartsAt.Equal(starts) ||
		s.ExpiresAt == nil || !s.ExpiresAt.Equal(expires) {
		t.Fatalf("rename = %+v, %v; want the name changed and nothing else", s, err)
	}
	if st, err := h.s.GetPromotion(h.ctx, p.ID); err != nil || st.Name != name {
		t.Errorf("GetPromotion after rename: %+v, %v", st.Promotion, err)
	}

	off, on := false, true
	if s, err := h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) { u.Active = &off })); err != nil || s.Active {
		t.Fatalf("deactivate = %+v, %v", s, err)
	}
	wantRefused(t, "redeem when deactivated", h.redeem(redeemReq(codes[0], "u")), promo.ReasonDeactivated)
	wantReserveRefused(t, "reserve when deactivated", h.reserve(reserveReq(codes[0], "u", time.Minute)), promo.ReasonDeactivated)
	if _, err := h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) { u.Active = &on })); err != nil {
		t.Fatal(err)
	}
	if out := h.redeem(redeemReq(codes[0], "u")); out.Refused != "" {
		t.Fatalf("redeem after reactivation: %+v", out)
	}

	// Ending the promotion now: its codes answer expired at once.
	ended := now.Add(-time.Minute)
	if _, err := h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) {
		u.SetExpiresAt, u.ExpiresAt = true, &ended
	})); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "redeem after expiresAt moved to the past", h.redeem(redeemReq(codes[1], "u")), promo.ReasonExpired)

	// An empty window is refused and changes nothing.
	late := now.Add(time.Hour)
	_, err = h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) {
		u.SetStartsAt, u.StartsAt = true, &late
		u.Name = new(string)
		*u.Name = "not applied"
	}))
	wantField(t, "startsAt after expiresAt", err, "expiresAt")
	if st, _ := h.s.GetPromotion(h.ctx, p.ID); st.Name != name || !st.StartsAt.Equal(starts) {
		t.Errorf("a refused update changed the promotion: %+v", st.Promotion)
	}
	// Clearing both bounds: open-ended again.
	s, err = h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) {
		u.SetStartsAt, u.SetExpiresAt = true, true
	}))
	if err != nil || s.StartsAt != nil || s.ExpiresAt != nil {
		t.Fatalf("clear the window = %+v, %v", s, err)
	}
	if out := h.redeem(redeemReq(codes[1], "u")); out.Refused != "" {
		t.Errorf("redeem with no window: %+v", out)
	}

	_, err = h.s.UpdatePromotion(h.ctx, update(p.ID+1_000_000, func(u *promo.PromotionUpdate) { u.Active = &off }))
	wantCode(t, "UpdatePromotion(unknown)", err, promo.ENotFound)
	_, err = h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) {}))
	wantCode(t, "an empty update", err, promo.EInvalid)

	log, err := h.s.AuditLog(h.ctx, promo.AuditFilter{PromotionID: p.ID})
	if err != nil || len(log) != 5 {
		t.Fatalf("AuditLog = %d entries, %v; want the 5 applied updates", len(log), err)
	}
	var change map[string]any
	_ = json.Unmarshal(log[4].Detail, &change)
	if log[4].Action != promo.ActionPromotionUpdated || change["name"] != name || len(change) != 1 {
		t.Errorf("oldest entry = %+v (%s), want the rename", log[4], log[4].Detail)
	}
	_ = json.Unmarshal(log[0].Detail, &change)
	if v, ok := change["startsAt"]; !ok || v != nil {
		t.Errorf("newest entry = %s, want startsAt and expiresAt cleared (null)", log[0].Detail)
	}
}

func cancelReq(id int64) promo.CancelRequest {
	return promo.CancelRequest{PromotionID: id, Actor: "admin:test", Now: time.Now().UTC(), AuditID: newID()}
}

func testCancelPromotion(t *testing.T, h *harness) {
	p := h.create(h.generated("cancel", 30, 10))
	bs := h.batches(p.ID)
	if len(bs) != 3 {
		t.Fatalf("%d batches, want 3", len(bs))
	}
	h.commit(h.chunk(bs[0], 0, 5))
	h.commit(h.chunk(bs[1], 0, 10))

	if replayed, err := h.s.CancelPromotion(h.ctx, cancelReq(p.ID)); err != nil || replayed {
		t.Fatalf("CancelPromotion = %t, %v", replayed, err)
	}
	st := h.status(p.ID)
	if st.Status() != promo.StatusCancelled || st.GeneratedCount != 15 || st.Batches.Cancelled != 2 ||
		st.Batches.Completed != 1 {
		t.Errorf("status after cancel = %s, %d codes, batches %+v; want cancelled, 15, 2 cancelled, 1 completed",
			st.Status(), st.GeneratedCount, st.Batches)
	}
	// The next chunk of the partial batch is refused by the compare-and-set.
	_, err := h.s.CommitChunk(h.ctx, h.chunk(bs[0], 5, 5))
	wantCode(t, "a chunk after cancel", err, promo.EMoved)
	if b := h.batch(bs[0].Ref()); b.State != promo.BatchCancelled || b.Done != 5 {
		t.Errorf("batch 0 after cancel = %+v, want cancelled at 5", b)
	}
	// A failing worker's state report does not undo the cancel.
	if err := h.s.SetBatchState(h.ctx, bs[2].Ref(), promo.BatchRetrying, "boom"); err != nil {
		t.Fatal(err)
	}
	if b := h.batch(bs[2].Ref()); b.State != promo.BatchCancelled {
		t.Errorf("batch 2 state = %s after SetBatchState, want cancelled", b.State)
	}
	// Nothing is left for reconcile or the shovel to re-enqueue.
	if inc, err := h.s.IncompleteBatches(h.ctx, p.ID); err != nil || len(inc) != 0 {
		t.Errorf("IncompleteBatches = %+v, %v; want none", inc, err)
	}
	if got := h.export(p.ID); len(got) != 15 {
		t.Errorf("%d codes exported, want the 15 that the status reports", len(got))
	}
	if replayed, err := h.s.CancelPromotion(h.ctx, cancelReq(p.ID)); err != nil || !replayed {
		t.Errorf("second CancelPromotion = %t, %v; want replayed", replayed, err)
	}

	done, _ := h.generatedCodes("cancel-done", 4, nil)
	_, err = h.s.CancelPromotion(h.ctx, cancelReq(done.ID))
	wantCode(t, "cancel a completed promotion", err, promo.EConflict)
	_, err = h.s.CancelPromotion(h.ctx, cancelReq(p.ID+1_000_000))
	wantCode(t, "cancel an unknown promotion", err, promo.ENotFound)

	log, err := h.s.AuditLog(h.ctx, promo.AuditFilter{PromotionID: p.ID})
	if err != nil || len(log) != 1 || log[0].Action != promo.ActionPromotionCancelled {
		t.Errorf("AuditLog = %+v, %v; want one promotion.cancelled", log, err)
	}
}

func topUpReq(id, n int64) promo.TopUpRequest {
	return promo.TopUpRequest{PromotionID: id, CodeCount: n, BatchSize: 10, SeqLimit: math.MaxInt64,
		Actor: "admin:test", Now: time.Now().UTC(), AuditID: newID()}
}

func testTopUp(t *testing.T, h *harness) {
	p, first := h.generatedCodes("topup", 10, nil)
	tu, _, err := h.s.TopUp(h.ctx, topUpReq(p.ID, 25))
	if err != nil || tu.No != 1 || tu.CodeCount != 25 || tu.FirstBatchNo != 1 || tu.BatchCount != 3 {
		t.Fatalf("TopUp = %+v, %v; want top-up 1 of 25 codes in batches 1..3", tu, err)
	}
	st := h.status(p.ID)
	if st.CodeCount != 35 || st.GeneratedCount != 10 || st.Status() != promo.StatusGenerating || st.Batches.Total != 4 {
		t.Errorf("status after top-up = %s, %d/%d, batches %+v; want generating 10/35 of 4 batches",
			st.Status(), st.GeneratedCount, st.CodeCount, st.Batches)
	}
	inc, err := h.s.IncompleteBatches(h.ctx, p.ID)
	if err != nil || len(inc) != 3 {
		t.Fatalf("IncompleteBatches = %+v, %v; want the 3 new batches", inc, err)
	}
	for _, b := range inc {
		if b.SeqStart < tu.SeqStart || b.SeqStart+uint64(b.CodeCount) > tu.SeqStart+25 {
			t.Errorf("batch %+v outside the top-up's range [%d, +25)", b, tu.SeqStart)
		}
		h.commit(h.chunk(b, 0, int(b.CodeCount)))
	}
	st = h.status(p.ID)
	codes := h.export(p.ID)
	slices.Sort(codes)
	if st.Status() != promo.StatusCompleted || st.GeneratedCount != 35 || len(codes) != 35 ||
		len(slices.Compact(codes)) != 35 {
		t.Errorf("after generating the top-up: %s, %d generated, %d codes exported; want completed, 35 distinct",
			st.Status(), st.GeneratedCount, len(codes))
	}
	if !slices.Contains(codes, first[0]) {
		t.Errorf("the original codes are gone")
	}

	tu2, _, err := h.s.TopUp(h.ctx, topUpReq(p.ID, 5))
	if err != nil || tu2.No != 2 || tu2.FirstBatchNo != 4 || tu2.SeqStart < tu.SeqStart+25 {
		t.Errorf("second TopUp = %+v, %v; want top-up 2 from batch 4 after the first range", tu2, err)
	}
	if list, err := h.s.TopUps(h.ctx, p.ID); err != nil || len(list) != 2 || list[0].No != 1 || list[1].CodeCount != 5 {
		t.Errorf("TopUps = %+v, %v", list, err)
	}

	// Past the format's capacity: refused, nothing written.
	over := topUpReq(p.ID, 1000)
	over.SeqLimit = tu2.SeqStart + 5 + 10
	_, _, err = h.s.TopUp(h.ctx, over)
	wantCode(t, "a top-up past capacity", err, promo.ECapacity)
	if st := h.status(p.ID); st.CodeCount != 40 {
		t.Errorf("code count %d after a refused top-up, want 40", st.CodeCount)
	}
	v := h.create(h.vanity("V"+h.tag+"TOPUP", 1))
	_, _, err = h.s.TopUp(h.ctx, topUpReq(v.ID, 5))
	wantCode(t, "top up a vanity promotion", err, promo.EConflict)
	_, _, err = h.s.TopUp(h.ctx, topUpReq(p.ID+1_000_000, 5))
	wantCode(t, "top up an unknown promotion", err, promo.ENotFound)
	c := h.create(h.generated("topup-cancelled", 20, 10))
	if _, err := h.s.CancelPromotion(h.ctx, cancelReq(c.ID)); err != nil {
		t.Fatal(err)
	}
	_, _, err = h.s.TopUp(h.ctx, topUpReq(c.ID, 5))
	wantCode(t, "top up a cancelled promotion", err, promo.EConflict)

	log, err := h.s.AuditLog(h.ctx, promo.AuditFilter{PromotionID: p.ID})
	if err != nil || len(log) != 2 || log[0].Action != promo.ActionPromotionToppedUp {
		t.Errorf("AuditLog = %+v, %v; want the 2 top-ups", log, err)
	}
}
