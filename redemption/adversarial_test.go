package redemption_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// TestAdversarialLifecycle is the standing adversarial suite's part for the
// redemption guarantees through the lifecycle (make test-adversarial): each
// case on SQLite and PostgreSQL at a size meant to catch a race, one line
// per case and database.
func TestAdversarialLifecycle(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, backend string) string
	}{
		{"rollback after re-create", func(t *testing.T, backend string) string {
			return scenarioRollbackAfterRecreate(t, newSweepingHarness(t, backend), "ADVAGAIN")
		}},
		{"deleted promotion takes no change", func(t *testing.T, backend string) string {
			return scenarioDeletedTakesNoChange(t, newSweepingHarness(t, backend), 20_000)
		}},
		{"purge under a redemption burst", func(t *testing.T, backend string) string {
			return scenarioPurgeUnderBurst(t, newHarness(t, backend, noGuessLimit), 50, 10_000, 100)
		}},
		{"delete under a redemption burst", func(t *testing.T, backend string) string {
			return scenarioDeleteUnderBurst(t, newSweepingHarness(t, backend), 50, 10_000)
		}},
		{"purge dates", func(t *testing.T, backend string) string {
			return scenarioPurgeDates(t, newHarness(t, backend, noGuessLimit))
		}},
		{"concurrent confirms of one reservation", func(t *testing.T, backend string) string {
			return scenarioConcurrentConfirms(t, newHarness(t, backend, noGuessLimit), 5, 200)
		}},
		{"retried top-up", func(t *testing.T, backend string) string {
			return scenarioTopUpRetries(t, newHarness(t, backend, noGuessLimit), 100)
		}},
		{"purged promotion extended and topped up", func(t *testing.T, backend string) string {
			return scenarioPurgedStaysPurged(t, newHarness(t, backend, noGuessLimit), 50)
		}},
		{"retry after purge --with-redemptions", func(t *testing.T, backend string) string {
			return scenarioRetryAfterPurge(t, newHarness(t, backend, noGuessLimit), 500)
		}},
	}
	for _, c := range cases {
		for _, backend := range backends {
			t.Run(c.name+"/"+backend, func(t *testing.T) {
				outcome := c.run(t, backend)
				if t.Failed() {
					outcome = "FAILED: " + outcome
				}
				t.Logf("adversarial: %s [%s]: %s", c.name, backend, outcome)
			})
		}
	}
}

// scenarioDeleteUnderBurst: users with perUserLimit 1 who each used one code
// keep redeeming other codes over HTTP while the promotion is deleted and an
// admin keeps trying to switch it back on: no user ever has two live uses,
// and nothing answers 5xx.
func scenarioDeleteUnderBurst(t *testing.T, h *harness, users, n int) string {
	p, list := h.seed(promotionSpec{n: n, maxUsage: 1, perUser: 1})
	id := p.IDString()
	for u := range users {
		if r, err := h.redeem(list[u], fmt.Sprintf("user-%d", u), nil); err != nil || r.status != http.StatusCreated {
			t.Fatalf("first use of user %d: %v %d %s", u, err, r.status, r.body)
		}
	}
	var (
		stop              atomic.Bool
		wg                sync.WaitGroup
		mu                sync.Mutex
		counts            = map[string]int{}
		revived, attempts atomic.Int64
		deleted           atomic.Bool
	)
	for u := range users {
		wg.Go(func() {
			user := fmt.Sprintf("user-%d", u)
			for i := 0; !stop.Load(); i++ {
				r, err := h.redeem(list[users+(u*37+i)%(n-users)], user, nil)
				key := "transport error"
				if err == nil {
					var pd problemDoc
					_ = jsonUnmarshal(r.body, &pd)
					key = fmt.Sprintf("%d %s", r.status, pd.Reason)
					if r.status >= 500 {
						t.Errorf("redeem during the deletion: %d %s", r.status, r.body)
					}
				}
				mu.Lock()
				counts[key]++
				mu.Unlock()
			}
		})
	}
	wg.Go(func() { // an admin racing the deletion
		for !stop.Load() {
			after := deleted.Load()
			if after {
				attempts.Add(1)
			}
			r, err := h.try("PATCH", "/v1/promotions/"+id, adminToken, `{"active":true}`, nil)
			if err == nil && after && r.status == http.StatusOK {
				revived.Add(1)
				t.Errorf("PATCH active=true after DELETE answered 200")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(100 * time.Millisecond)
	if r := h.do("DELETE", "/v1/promotions/"+id, adminToken, "", nil); r.status != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	deleted.Store(true)
	h.waitDeleted(id)
	time.Sleep(100 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	// Live uses per user, from the audit trail (kept by a deletion).
	perUser := map[string]int{}
	rs, err := h.st.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	over := 0
	for _, r := range rs {
		if r.RolledBackAt == nil {
			perUser[r.UserID]++
			if perUser[r.UserID] == 2 {
				over++
				t.Errorf("user %s has a second live use (%s)", r.UserID, r.Code)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return fmt.Sprintf("%d users (perUserLimit 1) redeeming through DELETE while an admin sent %d PATCH active=true after it (%d accepted): answers %v; users over the limit %d",
		users, attempts.Load(), revived.Load(), counts, over)
}
