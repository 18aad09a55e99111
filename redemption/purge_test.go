package redemption_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/promotion"
)

// purgeStore is the harness store with the purge statements.
type purgeStore interface {
	store
	promotion.PurgeStore
}

func TestPurgeExpiredPromotions(t *testing.T) {
	n := 25_000
	if raceEnabled {
		n = 5_000
	}
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)
			ps := h.st.(purgeStore)
			// An ended promotion with n codes and 5 redemptions (made while
			// it ran; then its end moved into the past).
			ended, endedCodes := h.seed(promotionSpec{n: n, maxUsage: 1})
			for i := range 5 {
				if r, err := h.redeem(endedCodes[i], fmt.Sprintf("u%d", i), nil); err != nil || r.status != http.StatusCreated {
					t.Fatalf("redeem: %d %s", r.status, r.body)
				}
			}
			past := time.Now().UTC().Add(-48 * time.Hour).Format(time.RFC3339)
			if r := h.do("PATCH", "/v1/promotions/"+ended.IDString(), adminToken, `{"expiresAt":"`+past+`"}`, nil); r.status != http.StatusOK {
				t.Fatalf("end the promotion: %d %s", r.status, r.body)
			}
			live, liveCodes := h.seed(promotionSpec{n: 300, maxUsage: 1})
			before := time.Now().UTC().Add(-24 * time.Hour)

			dry, err := promotion.Purge(h.ctx, ps, promotion.PurgeOptions{ExpiredBefore: before, DryRun: true}, zap.NewNop())
			if err != nil || len(dry) != 1 || dry[0].ID != ended.ID || dry[0].Codes != int64(n) || dry[0].Redemptions != 5 {
				t.Fatalf("dry run = %+v, %v; want promotion %d with %d codes, 5 redemptions", dry, err, ended.ID, n)
			}
			if c, _, _ := ps.PurgeCount(h.ctx, ended.ID); c != int64(n) {
				t.Fatalf("a dry run deleted codes: %d left", c)
			}

			// Purge in 1,000-row statements while shoppers redeem every code
			// of the live promotion.
			var (
				wg      sync.WaitGroup
				results []promotion.PurgedPromotion
				perr    error
			)
			wg.Go(func() {
				results, perr = promotion.Purge(h.ctx, ps, promotion.PurgeOptions{ExpiredBefore: before, BatchRows: 1000},
					zap.NewNop())
			})
			counts := hammer(t, 20, len(liveCodes), func(i int) (reply, error) {
				return h.redeem(liveCodes[i], fmt.Sprintf("shopper-%d", i), nil)
			})
			wg.Wait()
			if perr != nil || len(results) != 1 || results[0].Codes != int64(n) || results[0].Redemptions != 0 ||
				results[0].Statements < n/1000 {
				t.Fatalf("purge = %+v, %v; want %d codes in bounded statements, redemptions kept", results, perr, n)
			}
			if counts["201"] != len(liveCodes) {
				t.Errorf("redemptions of the live promotion during the purge: %v; want %d × 201", counts, len(liveCodes))
			}
			if c, reds, _ := ps.PurgeCount(h.ctx, ended.ID); c != 0 || reds != 5 {
				t.Errorf("after the purge: %d codes, %d redemptions; want 0 and the 5 kept", c, reds)
			}
			if c, reds, _ := ps.PurgeCount(h.ctx, live.ID); c != 300 || reds != 300 {
				t.Errorf("the live promotion: %d codes, %d redemptions; want 300 and 300", c, reds)
			}
			if r, err := h.redeem(endedCodes[10], "late", nil); err != nil || r.status != http.StatusNotFound {
				t.Errorf("a purged code: %d %s, want 404", r.status, r.body)
			}
			var log struct {
				Entries []struct{ Action, Actor string }
			}
			decode(t, h.do("GET", "/v1/promotions/"+ended.IDString()+"/audit", adminToken, "", nil).body, &log)
			if len(log.Entries) == 0 || log.Entries[0].Action != "promotion.purged" || log.Entries[0].Actor != "cli:purge" {
				t.Errorf("audit log = %+v, want promotion.purged by cli:purge first", log.Entries)
			}

			// --with-redemptions removes the kept records too.
			again, err := promotion.Purge(h.ctx, ps, promotion.PurgeOptions{ExpiredBefore: before, WithRedemptions: true},
				zap.NewNop())
			if err != nil || len(again) != 1 || again[0].Codes != 0 || again[0].Redemptions != 5 {
				t.Errorf("purge --with-redemptions = %+v, %v; want the 5 redemptions", again, err)
			}
		})
	}
}

// seedEnded seeds a generated promotion of n codes whose window ended two
// days ago (created open, then its end moved into the past).
func (h *harness) seedEnded(n int) (p promoRef, codes []string) {
	h.t.Helper()
	pr, cs := h.seed(promotionSpec{n: n, maxUsage: 1})
	past := time.Now().UTC().Add(-48 * time.Hour).Format(time.RFC3339)
	if r := h.do("PATCH", "/v1/promotions/"+pr.IDString(), adminToken, `{"expiresAt":"`+past+`"}`, nil); r.status != http.StatusOK {
		h.t.Fatalf("end the promotion: %d %s", r.status, r.body)
	}
	return promoRef{ID: pr.ID}, cs
}

// promoRef names a seeded promotion.
type promoRef struct{ ID int64 }
