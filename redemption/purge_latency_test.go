package redemption_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/promotion"
)

// TestPurgeLatency measures redemption latency on a live promotion before
// and during the purge of an ended promotion of 1,000,000 codes (README
// figure). It is a measurement, minutes long: it runs only with
// PROMOCODES_PURGE_LATENCY=1 (and PostgreSQL with its DSN).
func TestPurgeLatency(t *testing.T) {
	if os.Getenv("PROMOCODES_PURGE_LATENCY") != "1" {
		t.Skip("measurement: set PROMOCODES_PURGE_LATENCY=1 (and PROMOCODES_TEST_POSTGRES_DSN) to run it")
	}
	h := newHarness(t, "postgres", noGuessLimit)
	ps := h.st.(purgeStore)
	const n = 1_000_000
	start := time.Now()
	ended, _ := h.seedEnded(n)
	t.Logf("seeded %d codes in %s", n, time.Since(start).Round(time.Second))
	_, live := h.seed(promotionSpec{n: 20_000, maxUsage: 1})
	var next atomic.Int64
	measure := func(d time.Duration) []time.Duration {
		var (
			mu  sync.Mutex
			lat []time.Duration
			wg  sync.WaitGroup
		)
		stop := time.Now().Add(d)
		for range 8 {
			wg.Go(func() {
				for time.Now().Before(stop) {
					i := int(next.Add(1)) % len(live)
					t0 := time.Now()
					r, err := h.redeem(live[i], fmt.Sprintf("s%d", i), nil)
					el := time.Since(t0)
					if err != nil || (r.status != http.StatusCreated && r.status != http.StatusConflict) {
						t.Errorf("redeem: %v %d %s", err, r.status, r.body)
						return
					}
					mu.Lock()
					lat = append(lat, el)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		slices.Sort(lat)
		return lat
	}
	pct := func(l []time.Duration, p float64) time.Duration { return l[int(float64(len(l)-1)*p)] }
	base := measure(5 * time.Second)
	var (
		res  []promotion.PurgedPromotion
		perr error
		took time.Duration
		wg   sync.WaitGroup
	)
	wg.Go(func() {
		t0 := time.Now()
		res, perr = promotion.Purge(h.ctx, ps, promotion.PurgeOptions{ExpiredBefore: time.Now().Add(-time.Hour)}, zap.NewNop())
		took = time.Since(t0)
	})
	during := measure(5 * time.Second)
	wg.Wait()
	if perr != nil || len(res) != 1 || res[0].ID != ended.ID || res[0].Codes != n {
		t.Fatalf("purge = %+v, %v", res, perr)
	}
	t.Logf("purge of %d codes: %s in %d statements", n, took.Round(time.Millisecond), res[0].Statements)
	t.Logf("redemptions, 8 clients: before p50 %s p99 %s (%d); during the purge p50 %s p99 %s (%d)",
		pct(base, .5).Round(10*time.Microsecond), pct(base, .99).Round(10*time.Microsecond), len(base),
		pct(during, .5).Round(10*time.Microsecond), pct(during, .99).Round(10*time.Microsecond), len(during))
}
