package redemption_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/redemption"
)

// Two rollers (two API replicas) running beside concurrent redemptions and
// rollbacks over real HTTP: the promotion's status reaches the audit
// trail's exact counts, without Kafka, within moments of the last change.
func TestRollerKeepsTotalsExact(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, redemption.Config{GuessLimit: -1, GuessLimitPerToken: -1})
			rs, ok := h.st.(redemption.RollupStore)
			if !ok {
				t.Fatalf("%T has no RollUp", h.st)
			}
			log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
			ctx, cancel := context.WithCancel(h.ctx)
			var loops sync.WaitGroup
			rollers := []*redemption.Roller{redemption.NewRoller(rs, 50*time.Millisecond, nil, log),
				redemption.NewRoller(rs, 50*time.Millisecond, nil, log)}
			h.svc.OnChange(func() {
				for _, r := range rollers {
					r.Notify()
				}
			})
			for _, r := range rollers {
				loops.Go(func() { _ = r.Run(ctx) })
			}
			t.Cleanup(func() {
				cancel()
				loops.Wait()
			})

			p, codes := h.seed(promotionSpec{n: 40, maxUsage: 2, perUser: 0, format: defaultFormat})
			var wg sync.WaitGroup
			ids := make(chan string, 80)
			for i := range 80 { // every code twice
				wg.Go(func() {
					r, err := h.redeem(codes[i%40], fmt.Sprintf("u%d", i), nil)
					if err != nil || r.status != 201 {
						t.Errorf("redeem: %v %d %s", err, r.status, r.body)
						return
					}
					var red struct {
						ID string `json:"id"`
					}
					decode(t, r.body, &red)
					ids <- red.ID
				})
			}
			wg.Wait()
			close(ids)
			n := 0
			for id := range ids {
				if n%4 == 0 { // 20 rollbacks
					if r := h.do("POST", "/v1/redemptions/"+id+"/rollback", redeemToken, `{"reason":"x"}`, nil); r.status != 200 {
						t.Fatalf("rollback: %d %s", r.status, r.body)
					}
				}
				n++
			}
			last := time.Now()

			var stats struct {
				Redemptions   int64 `json:"redemptions"`
				CodesRedeemed int64 `json:"codesRedeemed"`
			}
			decode(t, h.do("GET", fmt.Sprintf("/v1/promotions/%d/stats", p.ID), adminToken, "", nil).body, &stats)
			if stats.Redemptions != 60 {
				t.Fatalf("stats = %+v, want 60 live redemptions", stats)
			}
			var got struct {
				Redemptions   int64 `json:"redemptions"`
				CodesRedeemed int64 `json:"codesRedeemed"`
			}
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				decode(t, h.do("GET", fmt.Sprintf("/v1/promotions/%d", p.ID), adminToken, "", nil).body, &got)
				if got == stats || time.Now().After(deadline) {
					break
				}
			}
			if got != stats {
				t.Fatalf("status totals = %+v, the audit trail counts %+v", got, stats)
			}
			t.Logf("%s: totals %+v matched the audit trail %v after the last change", backend, got,
				time.Since(last).Round(time.Millisecond))
		})
	}
}
