package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// LifecycleStore is the admin-change half of a store.
type LifecycleStore interface {
	RevokeCode(ctx context.Context, req promo.RevokeRequest) (promo.Revocation, bool, error)
	AuditLog(ctx context.Context, f promo.AuditFilter) ([]promo.AuditEntry, error)
}

var lifecycleTests = []struct {
	name string
	fn   func(t *testing.T, h *harness)
}{
	{"RevokeCode", testRevokeCode},
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
