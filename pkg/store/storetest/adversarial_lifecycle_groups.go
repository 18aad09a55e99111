package storetest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// AdversarialLifecycleDuringGroups: 32 goroutines redeem three vanity codes
// through s's group commit (a quarter of the redemptions rolled back at
// once, a sixth with shopper fields), while, at random moments, an admin
// revokes the first code, switches the second's promotion off and requests
// the third's deletion. Each answer is judged against the admin call's
// span: a redemption that started after the call returned is refused with
// its reason (revoked, deactivated, promotion_deleted); one refused so
// ended after the call started; a success started before it returned. At
// the end each code's uses equal its live audit rows, within its limits,
// and every rollback answered is in the audit trail.
func AdversarialLifecycleDuringGroups(t *testing.T, db string, s Store) {
	h := newHarness(t, s)
	type target struct {
		code   string
		reason promo.Reason
		p      promo.Promotion
		// the admin call's span
		start, end time.Time
	}
	targets := make([]*target, 3)
	for i, reason := range []promo.Reason{promo.ReasonRevoked, promo.ReasonDeactivated, promo.ReasonPromotionDeleted} {
		code := fmt.Sprintf("L%s%d", h.tag, i)
		np := h.vanity(code, 100_000)
		np.PerUserLimit = 4
		targets[i] = &target{code: code, reason: reason, p: h.create(np)}
	}
	var (
		mu       sync.Mutex
		problems []string
		judged   = map[promo.Reason]int{}
		rolled   = map[string]bool{} // redemption ids rolled back
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	type call struct {
		tg         *target
		start, end time.Time
		out        promo.RedeemOutcome
		err        error
	}
	var calls []call
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tg := targets[rand.IntN(len(targets))]
				req := redeemReq(tg.code, fmt.Sprintf("u%s-%d", h.tag, rand.IntN(500)))
				if i%2 == 0 {
					req.IdempotencyKey, req.RequestHash = fmt.Sprintf("lg-%s-%d-%d", h.tag, g, i), "h"
				}
				if i%6 == 0 {
					req.Shopper = &promo.Shopper{Country: "FR"}
				}
				c := call{tg: tg, start: time.Now()}
				c.out, c.err = s.Redeem(h.ctx, req)
				c.end = time.Now()
				if c.err == nil && c.out.Refused == "" && i%4 == 1 {
					if _, replayed, err := s.Rollback(h.ctx, promo.RollbackRequest{RedemptionID: c.out.Redemption.ID,
						EventID: newID(), Reason: "t", Now: time.Now().UTC()}); err != nil || replayed {
						problem("rollback of %s: replayed %t, %v", c.out.Redemption.ID, replayed, err)
					} else {
						mu.Lock()
						rolled[c.out.Redemption.ID] = true
						mu.Unlock()
					}
				}
				mu.Lock()
				calls = append(calls, c)
				mu.Unlock()
			}
		})
	}
	var admin sync.WaitGroup
	for _, tg := range targets {
		admin.Go(func() {
			time.Sleep(time.Duration(50+rand.IntN(300)) * time.Millisecond)
			tg.start = time.Now()
			var err error
			switch tg.reason {
			case promo.ReasonRevoked:
				_, _, err = s.RevokeCode(h.ctx, promo.RevokeRequest{Code: tg.code, Reason: "leaked", Actor: "t",
					Now: time.Now().UTC(), AuditID: newID()})
			case promo.ReasonDeactivated:
				err = s.SetPromotionActive(h.ctx, tg.p.ID, false)
			default:
				_, err = s.RequestDeletion(h.ctx, promo.AuditEntry{ID: newID(), At: time.Now().UTC(), Actor: "t",
					Action: promo.ActionDeleteRequested, PromotionID: tg.p.ID})
			}
			tg.end = time.Now()
			if err != nil {
				problem("admin call for %s: %v", tg.reason, err)
			}
		})
	}
	admin.Wait()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	for _, c := range calls {
		tg := c.tg
		switch {
		case c.err != nil:
			problem("redeem %s: %v", tg.code, c.err)
		case c.out.Refused == "" && !c.start.Before(tg.end):
			problem("redeem %s started %s after the %s call returned: redeemed", tg.code, c.start.Sub(tg.end), tg.reason)
		case c.out.Refused == tg.reason && c.end.Before(tg.start):
			problem("redeem %s ended %s before the %s call started: refused %s", tg.code, tg.start.Sub(c.end), tg.reason, c.out.Refused)
		case c.out.Refused != "" && c.out.Refused != tg.reason && c.out.Refused != promo.ReasonUserLimitReached:
			problem("redeem %s: refused %s", tg.code, c.out.Refused)
		case c.out.Refused == promo.ReasonUserLimitReached:
			judged[promo.ReasonUserLimitReached]++
		case c.out.Refused != "":
			judged[c.out.Refused]++
		case c.start.After(tg.start):
			judged["redeemed during the call"]++
		default:
			judged["redeemed"]++
		}
	}
	for _, tg := range targets {
		st, err := s.CodeState(h.ctx, tg.code, "")
		if err != nil {
			t.Fatal(err)
		}
		live, per, rolledSeen := 0, map[string]int{}, 0
		err = s.ExportRedemptions(h.ctx, promo.RedemptionFilter{PromotionID: tg.p.ID}, func(r promo.Redemption) error {
			if r.RolledBackAt == nil {
				live++
				per[r.UserID]++
			} else if rolled[r.ID] {
				rolledSeen++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Used != live {
			problem("code %s: %d uses, %d live audit rows", tg.code, st.Used, live)
		}
		for u, n := range per {
			if n > 4 {
				problem("code %s: user %s has %d live redemptions, limit 4", tg.code, u, n)
			}
		}
		judged["rolled back"] += rolledSeen
	}
	if n := judged["rolled back"]; n != len(rolled) {
		problem("%d rollbacks answered, %d in the audit trail", len(rolled), n)
	}
	for i, p := range problems {
		if i < 20 {
			t.Error(p)
		}
	}
	state := ""
	if len(problems) > 0 {
		state = fmt.Sprintf("FAILED (%d problems): ", len(problems))
	}
	t.Logf("adversarial: revoke, switch-off and deletion during grouped redemptions and rollbacks [%s]: %s%d redemptions "+
		"judged against the admin calls' spans %v; uses = live audit rows within the limits", db, state, len(calls), judged)
}
