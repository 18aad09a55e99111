package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// AdversarialGroupLimitMix: on one code at its limit, through st's group
// commit, goroutines redeem, reserve then confirm, reserve then release,
// and redeem then roll back, all at once, while a watcher reads the code's
// state. The code's uses never exceed its maximum (uses plus live holds
// neither), no user's live redemptions exceed the per-user limit, and at
// the end uses = live audit rows = successes less rollbacks.
func AdversarialGroupLimitMix(t *testing.T, db string, st Store, counts GroupCounts) {
	ctx := context.Background()
	const (
		maxUses = 12
		perUser = 2
		users   = 10
		workers = 48
		rounds  = 8
	)
	p, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "AGM",
		Kind: promo.KindVanity, VanityCode: "AGM", MaxUsagePerCode: maxUses, PerUserLimit: perUser}})
	if err != nil {
		t.Fatal(err)
	}
	g0, m0 := counts()
	var (
		wg                 sync.WaitGroup
		used, rolled, errs atomic.Int64
		over               atomic.Value
		stop               = make(chan struct{})
	)
	fail := func(format string, args ...any) {
		errs.Add(1)
		t.Errorf(format, args...)
	}
	watch := make(chan struct{})
	go func() {
		defer close(watch)
		for {
			select {
			case <-stop:
				return
			default:
			}
			cs, err := st.CodeState(ctx, "AGM", "")
			if err == nil && (cs.Used > maxUses || cs.Used+cs.Reserved > maxUses) {
				over.Store(fmt.Sprintf("used %d, reserved %d", cs.Used, cs.Reserved))
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				user := fmt.Sprintf("u%02d", (w*rounds+r)%users)
				now := time.Now().UTC()
				switch (w + r) % 4 {
				case 0, 3: // redeem; on 3, roll it back
					out, err := st.Redeem(ctx, redeemReq("AGM", user))
					if err != nil {
						fail("redeem: %v", err)
						continue
					}
					if out.Refused != "" {
						continue
					}
					used.Add(1)
					if (w+r)%4 == 3 {
						_, replayed, err := st.Rollback(ctx, promo.RollbackRequest{RedemptionID: out.Redemption.ID,
							EventID: newID(), Now: time.Now().UTC()})
						if err != nil || replayed {
							fail("rollback: replayed %t, %v", replayed, err)
							continue
						}
						rolled.Add(1)
					}
				case 1, 2: // reserve; on 1 confirm, on 2 release
					res, err := st.Reserve(ctx, promo.ReserveRequest{ID: newID(), Code: "AGM", UserID: user,
						Now: now, TTL: time.Hour})
					if err != nil {
						fail("reserve: %v", err)
						continue
					}
					if res.Refused != "" {
						continue
					}
					if (w+r)%4 == 2 {
						if _, _, err := st.Release(ctx, res.Reservation.ID, time.Now().UTC()); err != nil {
							fail("release: %v", err)
						}
						continue
					}
					c, err := st.Confirm(ctx, promo.ConfirmRequest{ReservationID: res.Reservation.ID,
						RedemptionID: newID(), EventID: newID(), Now: time.Now().UTC()})
					if err != nil || c.Refused != "" {
						fail("confirm: %+v, %v", c, err)
						continue
					}
					used.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-watch
	g1, m1 := counts()
	if v := over.Load(); v != nil {
		t.Errorf("adversarial: group limit mix [%s]: over the code's %d: %v", db, maxUses, v)
	}
	cs, err := st.CodeState(ctx, "AGM", "")
	if err != nil {
		t.Fatal(err)
	}
	live, per := 0, map[string]int{}
	err = st.ExportRedemptions(ctx, promo.RedemptionFilter{PromotionID: p.ID}, func(r promo.Redemption) error {
		if r.RolledBackAt == nil {
			live++
			per[r.UserID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for u, n := range per {
		if n > perUser {
			t.Errorf("adversarial: group limit mix [%s]: user %s has %d live redemptions, limit %d", db, u, n, perUser)
		}
	}
	net := int(used.Load() - rolled.Load())
	if cs.Used > maxUses || cs.Used != live || cs.Used != net || cs.Reserved != 0 || errs.Load() != 0 {
		t.Fatalf("adversarial: group limit mix [%s]: uses %d, live audit rows %d, successes less rollbacks %d, held %d, errors %d (max %d)",
			db, cs.Used, live, net, cs.Reserved, errs.Load(), maxUses)
	}
	if m1-m0 == 0 || g1-g0 >= m1-m0 {
		t.Logf("adversarial: group limit mix [%s]: note: %d groups for %d members (little grouping)", db, g1-g0, m1-m0)
	}
	t.Logf("adversarial: group limit mix [%s]: held: uses %d = live audit rows %d = %d successes less %d rollbacks, never over %d; %d redemptions in %d groups",
		db, cs.Used, live, used.Load(), rolled.Load(), maxUses, m1-m0, g1-g0)
}
