package storetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// AdversarialDeletedStaysOff: once a promotion's deletion is requested, no
// store method switches it back on, and none of its codes is used through
// any path (the one-statement functions, the statement path a request with
// shopper fields takes, reservations, batches), whatever was tried on it.
// With forceOn, the promotion is then switched on behind the store's back
// (a raw UPDATE, as a writer that forgot the rule would): every use must
// still be refused, since each path's condition checks the deletion itself.
func AdversarialDeletedStaysOff(t *testing.T, db string, s Store, forceOn ...func(id int64) error) {
	h := newHarness(t, s)
	p, codes := h.generatedCodes("stays-off", 6, func(np *promo.NewPromotion) { np.MaxUsagePerCode, np.PerUserLimit = 5, 0 })
	if _, err := h.s.RequestDeletion(h.ctx, deletionReq(p.ID)); err != nil {
		t.Fatalf("RequestDeletion: %v", err)
	}
	var used []string
	onErr := h.s.SetPromotionActive(h.ctx, p.ID, true)
	if promo.ReasonOf(onErr) != promo.ReasonPromotionDeleted || promo.Code(onErr) != promo.EGone {
		t.Errorf("SetPromotionActive(true) after the deletion: %v (reason %q), want 410 promotion_deleted", onErr,
			promo.ReasonOf(onErr))
	}
	if st, err := h.s.GetPromotion(h.ctx, p.ID); err != nil || st.Active {
		t.Errorf("after SetPromotionActive(true): active %t, %v; want a deleted promotion to stay off", st.Active, err)
	}
	for _, on := range forceOn {
		if err := on(p.ID); err != nil {
			t.Fatalf("switching promotion %d on behind the store: %v", p.ID, err)
		}
	}
	shopper := &promo.Shopper{Country: "DE"}
	for i, code := range codes[:4] {
		r := redeemReq(code, "u")
		if i%2 == 1 {
			r.Shopper = shopper // the statement path on every dialect
		}
		if out, err := h.s.Redeem(h.ctx, r); err != nil || out.Refused != promo.ReasonPromotionDeleted {
			t.Errorf("redeem %d (shopper %t): %+v, %v; want promotion_deleted", i, r.Shopper != nil, out, err)
			if err == nil && out.Refused == "" {
				used = append(used, "redeem")
			}
		}
		q := reserveReq(code, "u", time.Hour)
		if i%2 == 1 {
			q.Shopper = shopper
		}
		if out, err := h.s.Reserve(h.ctx, q); err != nil || out.Refused != promo.ReasonPromotionDeleted {
			t.Errorf("reserve %d (shopper %t): %+v, %v; want promotion_deleted", i, q.Shopper != nil, out, err)
			if err == nil && out.Refused == "" {
				used = append(used, "reserve")
			}
		}
	}
	res, err := h.s.RedeemBatch(h.ctx, []promo.RedeemRequest{redeemReq(codes[4], "a"), redeemReq(codes[4], "b")})
	for i, r := range res {
		if r.Err != nil || r.Outcome.Refused != promo.ReasonPromotionDeleted {
			t.Errorf("batch member %d: %+v, %v; want promotion_deleted", i, r.Outcome, r.Err)
			if r.Err == nil && r.Outcome.Refused == "" {
				used = append(used, "batch")
			}
		}
	}
	if err != nil {
		t.Errorf("RedeemBatch: %v", err)
	}
	outcome := "switching it on refused, every use refused promotion_deleted"
	if len(forceOn) > 0 {
		outcome = "switched on behind the store, every use refused promotion_deleted"
	}
	if t.Failed() {
		outcome = fmt.Sprintf("FAILED: SetPromotionActive(true) answered %v; uses taken: %v", onErr, used)
	}
	t.Logf("adversarial: reactivate a deleted promotion [%s]: %s", db, outcome)
}

// AdversarialOneCodeStorm drives one code with every way of using it at
// once: redemptions (alone, with shopper fields, in batches), reservations
// and their confirmations and releases, admins switching the promotion off
// and on, and finally its deletion. Whatever the interleaving: the code's
// uses never pass its maximum counting live holds, no user passes the
// per-user limit counting theirs, the uses equal the audit rows, every
// refusal names a reason the state could have given during that call, and
// nothing that starts after the deletion returned takes a use.
func AdversarialOneCodeStorm(t *testing.T, db string, s Store) {
	h := newHarness(t, s)
	const maxUses, perUser, workers, users = 40, 6, 8, 10
	p, codes := h.generatedCodes("storm", 1, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = maxUses, perUser
	})
	code := codes[0]
	// span: a switch-off call's start to its switch-on call's end (the
	// promotion may be off); surely off from the switch-off's return to the
	// switch-on's start.
	type span struct{ start, offDone, onStart, end time.Time }
	type taking struct {
		what, user string
		start, end time.Time
	}
	var (
		mu        sync.Mutex
		offs      []span // when the promotion may have been off (switch-off call start to switch-on call end)
		deleting  time.Time
		deleted   time.Time // RequestDeletion returned
		successes = map[string]int{}
		problems  []string
		calls     int
		refusals  = map[promo.Reason]int{}
		uses      []taking // every call that took a use
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	// check judges one call's answer: a success or a reason the state could
	// have given between start and end.
	check := func(what, user string, start, end time.Time, refused promo.Reason, err error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s for %s: error %v", what, user, err))
			return
		}
		refusals[refused]++
		del := !deleted.IsZero() && !start.Before(deleted)
		switch refused {
		case "":
			if del {
				problems = append(problems, fmt.Sprintf("%s for %s started after the deletion returned and took a use", what, user))
			}
			uses = append(uses, taking{what, user, start, end}) // judged against the switch-offs at the end
		case promo.ReasonPromotionDeleted:
			if deleting.IsZero() || end.Before(deleting) {
				problems = append(problems, fmt.Sprintf("%s for %s: promotion_deleted before any deletion", what, user))
			}
		case promo.ReasonDeactivated:
			ok := !deleting.IsZero() && !end.Before(deleting) // deletion switches it off too (its reason wins)
			for _, o := range offs {
				ok = ok || (!end.Before(o.start) && (o.end.IsZero() || !start.After(o.end)))
			}
			if !ok {
				problems = append(problems, fmt.Sprintf("%s for %s: deactivated while no switch-off overlapped", what, user))
			}
		case promo.ReasonCodeExhausted, promo.ReasonUserLimitReached:
		default:
			problems = append(problems, fmt.Sprintf("%s for %s: reason %s", what, user, refused))
		}
		if del && refused != promo.ReasonPromotionDeleted {
			problems = append(problems, fmt.Sprintf("%s for %s started after the deletion returned: %q, want promotion_deleted",
				what, user, refused))
		}
	}
	won := func(user string) {
		mu.Lock()
		successes[user]++
		mu.Unlock()
	}
	rolledBack := 0
	shopper := &promo.Shopper{Country: "DE"}
	var reserved sync.Map // reservation id -> user
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var mine []string  // this worker's held reservations
			var taken []string // this worker's redemptions (rollbacks give their uses back)
			took := func(out promo.Redemption, user string) {
				won(user)
				taken = append(taken, out.ID)
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				user := fmt.Sprintf("u%d", rng.IntN(users))
				start := time.Now()
				switch op := rng.IntN(12); {
				case op < 3:
					r := redeemReq(code, user)
					if op == 2 {
						r.Shopper = shopper
					}
					out, err := h.s.Redeem(h.ctx, r)
					check("redeem", user, start, time.Now(), out.Refused, err)
					if err == nil && out.Refused == "" {
						took(out.Redemption, user)
					}
				case op < 5 && len(mine) < 2:
					q := reserveReq(code, user, time.Hour)
					if op == 4 {
						q.Shopper = shopper
					}
					out, err := h.s.Reserve(h.ctx, q)
					check("reserve", user, start, time.Now(), out.Refused, err)
					if err == nil && out.Refused == "" {
						reserved.Store(q.ID, user)
						mine = append(mine, q.ID)
					}
				case op < 8 && len(mine) > 0:
					k := rng.IntN(len(mine))
					id := mine[k]
					mine = slices.Delete(mine, k, k+1)
					owner, _ := reserved.Load(id)
					if op == 5 {
						c := confirmReq(id, "o")
						out, err := h.s.Confirm(h.ctx, c)
						check("confirm", owner.(string), start, time.Now(), out.Refused, err)
						if err == nil && out.Refused == "" {
							took(out.Redemption, owner.(string))
						}
					} else if _, _, err := h.s.Release(h.ctx, id, time.Now().UTC()); err != nil {
						problem("release %s: %v", id, err)
					}
				case op == 8:
					u2 := fmt.Sprintf("u%d", rng.IntN(users))
					res, err := h.s.RedeemBatch(h.ctx, []promo.RedeemRequest{redeemReq(code, user), redeemReq(code, u2)})
					if err != nil {
						check("batch", user, start, time.Now(), "", err)
						continue
					}
					for j, r := range res {
						u := []string{user, u2}[j]
						check("batch member", u, start, time.Now(), r.Outcome.Refused, r.Err)
						if r.Err == nil && r.Outcome.Refused == "" {
							took(r.Outcome.Redemption, u)
						}
					}
				case op < 11 && len(taken) > 0:
					// A rollback gives the use back: the code stays contested.
					id := taken[0]
					taken = taken[1:]
					r, _, err := h.s.Rollback(h.ctx, promo.RollbackRequest{RedemptionID: id, EventID: newID(),
						Reason: "storm", Now: time.Now().UTC()})
					if err != nil {
						problem("rollback %s: %v", id, err)
						continue
					}
					mu.Lock()
					successes[r.UserID]--
					rolledBack++
					mu.Unlock()
				case op == 11 && w == 0:
					// The admin: off, a moment, on again (refused once deleted).
					off, on := false, true
					mu.Lock()
					offs = append(offs, span{start: start})
					k := len(offs) - 1
					mu.Unlock()
					_, err := h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) { u.Active = &off }))
					mu.Lock()
					if err == nil {
						offs[k].offDone = time.Now()
					}
					mu.Unlock()
					time.Sleep(time.Duration(15+rng.IntN(20)) * time.Millisecond)
					mu.Lock()
					offs[k].onStart = time.Now()
					mu.Unlock()
					_, err2 := h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) { u.Active = &on }))
					mu.Lock()
					offs[k].end = time.Now()
					mu.Unlock()
					for _, e := range []error{err, err2} {
						if e != nil && promo.ReasonOf(e) != promo.ReasonPromotionDeleted {
							problem("switch: %v", e)
						}
					}
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	deleting = time.Now()
	mu.Unlock()
	if _, err := h.s.RequestDeletion(h.ctx, deletionReq(p.ID)); err != nil {
		t.Errorf("RequestDeletion: %v", err)
	}
	mu.Lock()
	deleted = time.Now()
	mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	// The books: uses = live audit rows = successes; uses + live holds within
	// the code's maximum and each user's limit.
	st, err := h.s.CodeState(h.ctx, code, "")
	if err != nil {
		t.Fatalf("CodeState: %v", err)
	}
	rs, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID, Limit: 1000})
	if err != nil {
		t.Fatalf("Redemptions: %v", err)
	}
	rows, total := map[string]int{}, 0
	for _, r := range rs {
		if r.RolledBackAt == nil {
			rows[r.UserID]++
			total++
		}
	}
	holds, held := map[string]int{}, 0
	reserved.Range(func(id, user any) bool {
		r, err := h.s.Reservation(h.ctx, id.(string))
		if err != nil {
			problem("reservation %s: %v", id, err)
		} else if r.Live(time.Now()) {
			holds[user.(string)]++
			held++
		}
		return true
	})
	wins := 0
	for u, n := range successes {
		wins += n
		if rows[u] != n {
			problem("user %s: %d successes, %d audit rows", u, n, rows[u])
		}
	}
	if st.Used != total || total != wins {
		problem("uses %d, audit rows %d, successes %d", st.Used, total, wins)
	}
	if st.Used+held > maxUses {
		problem("uses %d + live holds %d > max %d", st.Used, held, maxUses)
	}
	for u := range users {
		user := fmt.Sprintf("u%d", u)
		if rows[user]+holds[user] > perUser {
			problem("user %s: %d redemptions + %d holds > limit %d", user, rows[user], holds[user], perUser)
		}
	}
	for _, u := range uses {
		for _, o := range offs {
			if !o.offDone.IsZero() && u.start.After(o.offDone) && u.end.Before(o.onStart) {
				problem("%s for %s took a use while the promotion was off (%s to %s)", u.what, u.user,
					o.offDone.Format(time.StampMicro), o.onStart.Format(time.StampMicro))
			}
		}
	}
	for _, pr := range problems {
		t.Error(pr)
	}
	outcome := fmt.Sprintf("held: %d calls, %d uses (= live audit rows = successes less %d rollbacks) + %d live holds "+
		"of %d, outcomes %v, %d switch-offs, nothing after the deletion", calls, st.Used, rolledBack, held, maxUses,
		refusals, len(offs))
	if t.Failed() {
		outcome = fmt.Sprintf("FAILED: %d problems, first: %s", len(problems), problems[0])
	}
	t.Logf("adversarial: one code storm [%s]: %s", db, outcome)
}

// AdversarialUpgradeMidFlight: a database that an older release left with a
// live reservation and idempotency records (a success and a refusal) is
// migrated (migrate("new")) under the open store, whose pool and cached
// statements stay; the records replay as written, the hold still counts
// against the code and its user, its confirmation takes the use, and the
// limits hold; then down (migrate("old")) and up again, the same.
func AdversarialUpgradeMidFlight(t *testing.T, db string, s Store, migrate func(to string) error) {
	h := newHarness(t, s)
	step := func(to string) {
		t.Helper()
		if err := migrate(to); err != nil {
			t.Fatalf("migrate to %s: %v", to, err)
		}
	}
	step("old")
	_, codes := h.generatedCodes("upgrade", 1, func(np *promo.NewPromotion) { np.MaxUsagePerCode, np.PerUserLimit = 3, 1 })
	code := codes[0]
	keyed := func(user, key string) promo.RedeemRequest {
		r := redeemReq(code, user)
		r.IdempotencyKey, r.RequestHash = h.tag+key, "hash-"+key
		return r
	}
	hold := reserveReq(code, "alice", time.Hour)
	hold.IdempotencyKey, hold.RequestHash = h.tag+"hold", "hash-hold"
	held := h.reserve(hold)
	bob := h.redeem(keyed("bob", "bob"))
	bob2 := h.redeem(keyed("bob", "bob2"))
	if held.Refused != "" || bob.Refused != "" || bob2.Refused != promo.ReasonUserLimitReached {
		t.Fatalf("before the upgrade: hold %+v, bob %+v, bob again %+v", held, bob, bob2)
	}
	for round, to := range []string{"new", "old", "new"} {
		step(to)
		if round == 1 {
			continue
		}
		again := keyed("bob", "bob")
		if out := h.redeem(again); !out.Replayed || out.Redemption.ID != bob.Redemption.ID {
			t.Errorf("after %s: bob's key replays %+v, want redemption %s replayed", to, out, bob.Redemption.ID)
		}
		if out := h.redeem(keyed("bob", "bob2")); !out.Replayed || out.Refused != promo.ReasonUserLimitReached {
			t.Errorf("after %s: bob's refused key replays %+v, want user_limit_reached replayed", to, out)
		}
		hold2 := hold
		hold2.ID = newID()
		if out := h.reserve(hold2); !out.Replayed || out.Reservation.ID != held.Reservation.ID {
			t.Errorf("after %s: the hold's key replays %+v, want reservation %s", to, out, held.Reservation.ID)
		}
	}
	wantRefused(t, "alice, whose hold takes her allowance", h.redeem(redeemReq(code, "alice")), promo.ReasonUserLimitReached)
	if out := h.redeem(redeemReq(code, "carol")); out.Refused != "" {
		t.Fatalf("carol (uses 1 + hold 1 of 3): %+v", out)
	}
	wantRefused(t, "dave (uses 2 + hold 1 of 3)", h.redeem(redeemReq(code, "dave")), promo.ReasonCodeExhausted)
	wantReserveRefused(t, "erin's hold (uses 2 + hold 1 of 3)", h.reserve(reserveReq(code, "erin", time.Minute)),
		promo.ReasonCodeExhausted)
	if out := h.confirm(confirmReq(held.Reservation.ID, "o-1")); out.Refused != "" {
		t.Fatalf("confirm the hold made before the upgrade: %+v", out)
	}
	if u := h.used(code); u != 3 {
		t.Errorf("uses %d, want 3", u)
	}
	outcome := "held: records replayed, the old hold counted and confirmed, limits kept, through up, down, up"
	if t.Failed() {
		outcome = "FAILED"
	}
	t.Logf("adversarial: upgrade mid-flight [%s]: %s", db, outcome)
}

// AdversarialGroupEvents: many concurrent redemptions of a few codes of two
// promotions (the one writer's groups on SQLite, whose members' events are
// encoded on their own goroutines and completed by the writer), each with
// its own order, metadata, idempotency key and event id. Every redemption's
// event is its own: its event id, its promotion as key and in the body, and
// the redemption it carries equal to the audit row (user, code, order,
// metadata, time, uses left; no key), and a code's events count its uses 1, 2,
// ... n with no gap or repeat. s must hold no other events.
func AdversarialGroupEvents(t *testing.T, db string, s Store) {
	h := newHarness(t, s)
	const workers, each = 16, 12
	p1, codes1 := h.generatedCodes("events-a", 3, func(np *promo.NewPromotion) { np.MaxUsagePerCode, np.PerUserLimit = 1000, 0 })
	// The second promotion's code is a vanity code (generated codes of two
	// promotions of one harness render alike).
	vanity := "V" + h.tag + "EVENTS"
	np := h.vanity(vanity, 1000)
	np.PerUserLimit = 0
	p2, codes2 := h.create(np), []string{vanity}
	codes := append(slices.Clone(codes1), codes2...)
	promotionOf := map[string]int64{}
	for _, c := range codes1 {
		promotionOf[c] = p1.ID
	}
	for _, c := range codes2 {
		promotionOf[c] = p2.ID
	}
	var (
		mu      sync.Mutex
		reqs    = map[string]promo.RedeemRequest{} // by redemption id
		answers = map[string]promo.Redemption{}
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r := redeemReq(codes[(w+i)%len(codes)], fmt.Sprintf("user-%d-%d", w, i))
				r.OrderID = fmt.Sprintf("order-%d-%d", w, i)
				r.Metadata = []byte(fmt.Sprintf(`{"w":%d,"i":%d,"s":"\u003c%d\u003e"}`, w, i, w*100+i))
				r.IdempotencyKey, r.RequestHash = fmt.Sprintf("%s-ev-%d-%d", h.tag, w, i), "hash"
				out, err := h.s.Redeem(h.ctx, r)
				mu.Lock()
				if err != nil || out.Refused != "" {
					t.Errorf("redeem %d/%d: %+v, %v", w, i, out, err)
				} else {
					reqs[r.ID], answers[r.ID] = r, out.Redemption
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	rows := map[string]promo.Redemption{}
	for _, p := range []int64{p1.ID, p2.ID} {
		rs, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p, Limit: 1000})
		if err != nil {
			t.Fatalf("Redemptions: %v", err)
		}
		for _, r := range rs {
			rows[r.ID] = r
		}
	}
	uses := map[string][]int{}
	seen := 0
	for range 100 {
		evs, err := h.s.ClaimEvents(h.ctx, 500, time.Hour)
		if err != nil {
			t.Fatalf("ClaimEvents: %v", err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			var e promo.RedemptionEvent
			if err := json.Unmarshal(ev.Payload, &e); err != nil {
				t.Fatalf("event %s: %v", ev.Payload, err)
			}
			if e.Type != promo.EventRedeemed {
				continue
			}
			req, ok := reqs[e.Redemption.ID]
			if !ok {
				t.Errorf("an event for a redemption nobody made: %s", ev.Payload)
				continue
			}
			seen++
			row := rows[e.Redemption.ID]
			pid := promo.FormatID(promotionOf[req.Code])
			got := e.Redemption
			switch {
			case e.EventID != req.EventID:
				t.Errorf("redemption %s: event id %s, want its request's %s", req.ID, e.EventID, req.EventID)
			case ev.Key != pid || e.PromotionID != pid:
				t.Errorf("redemption %s of %s: key %s, promotionId %s, want %s", req.ID, req.Code, ev.Key, e.PromotionID, pid)
			case got.Code != req.Code || got.UserID != req.UserID || got.OrderID != req.OrderID ||
				got.IdempotencyKey != "" || !got.RedeemedAt.Equal(row.RedeemedAt) || // the key is not published
				got.UsesLeft != row.UsesLeft || got.UsesLeft != answers[req.ID].UsesLeft:
				t.Errorf("redemption %s: event (code %s user %s order %s key %s at %s left %d), audit row (at %s left %d), "+
					"answer left %d; request (code %s user %s order %s key %s)", req.ID, got.Code, got.UserID, got.OrderID,
					got.IdempotencyKey, got.RedeemedAt, got.UsesLeft, row.RedeemedAt, row.UsesLeft, answers[req.ID].UsesLeft,
					req.Code, req.UserID, req.OrderID, req.IdempotencyKey)
			case !jsonEqual(got.Metadata, req.Metadata):
				t.Errorf("redemption %s: event metadata %s, request's %s", req.ID, got.Metadata, req.Metadata)
			case e.CodeUses == nil:
				t.Errorf("redemption %s: no codeUses", req.ID)
			default:
				uses[req.Code] = append(uses[req.Code], *e.CodeUses)
			}
		}
	}
	if seen != len(reqs) || len(rows) != len(reqs) {
		t.Errorf("%d redemptions, %d audit rows, %d events", len(reqs), len(rows), seen)
	}
	for code, us := range uses {
		slices.Sort(us)
		for i, u := range us {
			if u != i+1 {
				t.Errorf("code %s: codeUses %v, want 1..%d", code, us, len(us))
				break
			}
		}
	}
	outcome := fmt.Sprintf("held: %d redemptions of %d codes, each event its own (id, key, promotion, fields = audit row), "+
		"codeUses 1..n per code", seen, len(codes))
	if t.Failed() {
		outcome = "FAILED"
	}
	t.Logf("adversarial: group members' events [%s]: %s", db, outcome)
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}

// AdversarialBatchOnHeldCode: a batch on a code whose live holds take every
// use left (PostgreSQL: promo_use_code's holds refusal, answered for every
// member at once): each member refused code_exhausted with its promotion,
// each key's refusal recorded (a retry replays it), nothing used, no audit
// row; once a hold is released one member of the next batch takes the use.
func AdversarialBatchOnHeldCode(t *testing.T, db string, s Store) {
	h := newHarness(t, s)
	code := "V" + h.tag + "HELDFULL"
	np := h.vanity(code, 2)
	np.PerUserLimit = 0
	p := h.create(np)
	var holds []string
	for _, u := range []string{"h1", "h2"} {
		out := h.reserve(reserveReq(code, u, time.Hour))
		if out.Refused != "" {
			t.Fatalf("hold for %s: %+v", u, out)
		}
		holds = append(holds, out.Reservation.ID)
	}
	batch := func(tag string) []promo.RedeemRequest {
		var reqs []promo.RedeemRequest
		for i := range 3 {
			r := redeemReq(code, fmt.Sprintf("%s-%d", tag, i))
			r.IdempotencyKey, r.RequestHash = fmt.Sprintf("%s-%s-%d", h.tag, tag, i), "hash"
			reqs = append(reqs, r)
		}
		return reqs
	}
	reqs := batch("full")
	for i, r := range h.redeemBatch(reqs) {
		if r.Err != nil || r.Outcome.Refused != promo.ReasonCodeExhausted || r.Outcome.PromotionID != p.ID {
			t.Errorf("member %d on a fully held code: %+v, %v; want code_exhausted of promotion %d", i, r.Outcome, r.Err, p.ID)
		}
	}
	for i, r := range reqs {
		r.ID, r.EventID = newID(), newID()
		if out := h.redeem(r); !out.Replayed || out.Refused != promo.ReasonCodeExhausted {
			t.Errorf("retry of member %d: %+v; want the replayed code_exhausted", i, out)
		}
	}
	if u := h.used(code); u != 0 {
		t.Errorf("uses %d, want 0", u)
	}
	if rs, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID, Limit: 10}); err != nil || len(rs) != 0 {
		t.Errorf("audit rows %d, %v; want none", len(rs), err)
	}
	if _, _, err := h.s.Release(h.ctx, holds[0], time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	won := 0
	for _, r := range h.redeemBatch(batch("freed")) {
		if r.Err == nil && r.Outcome.Refused == "" {
			won++
		} else if r.Err != nil || r.Outcome.Refused != promo.ReasonCodeExhausted {
			t.Errorf("after a release: %+v, %v", r.Outcome, r.Err)
		}
	}
	if u := h.used(code); won != 1 || u != 1 {
		t.Errorf("after a release: %d redeemed, uses %d; want 1, 1", won, u)
	}
	outcome := "held: every member code_exhausted and replayed so, nothing used; one use after a release"
	if t.Failed() {
		outcome = "FAILED"
	}
	t.Logf("adversarial: batch on a fully held code [%s]: %s", db, outcome)
}
