package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// GroupCounts reports the redemption groups a store has written so far and
// their members (each dialect's export_test exposes its group's Stats).
type GroupCounts func() (groups, members int64)

// GroupCommitExact: many goroutines redeem a mix of codes (a per-user limit
// below the code's, a single use per user, a code held by a live
// reservation, an unknown code) with idempotency keys replayed and reused
// for another request, through st's group commit. Whatever the order and
// the grouping, the totals a one-at-a-time store gives are exact: the
// per-user limit, the code's uses net of the live hold, one audit row per
// success, every refusal's reason, every replay the original answer. It
// fails unless groups of more than one were written (else it proves nothing
// about grouping).
func GroupCommitExact(t *testing.T, st Store, counts GroupCounts) {
	ctx := context.Background()
	const (
		users   = 24
		workers = 96
		rounds  = 6
	)
	vanity := func(code string, maxUses, perUser int) promo.Promotion {
		p, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: code,
			Kind: promo.KindVanity, VanityCode: code, MaxUsagePerCode: maxUses, PerUserLimit: perUser}})
		if err != nil {
			t.Fatalf("create %s: %v", code, err)
		}
		return p
	}
	a := vanity("GCA", 1000, 2) // per-user limit binds: users*2 < 1000
	b := vanity("GCB", 1000, 1) // one each
	c := vanity("GCC", 10, 0)   // unlimited per user: the code's 10 bind, one held
	vanity("GCD", 1000, 1000)   // replays and conflicts only
	hold, err := st.Reserve(ctx, promo.ReserveRequest{ID: newID(), Code: "GCC", UserID: "holder",
		Now: time.Now().UTC(), TTL: time.Hour})
	if err != nil || hold.Refused != "" {
		t.Fatalf("reserve: %+v, %v", hold, err)
	}
	g0, m0 := counts()
	var (
		mu      sync.Mutex
		answers []groupAnswer
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				user := fmt.Sprintf("u%02d", (w+r)%users)
				var req promo.RedeemRequest
				switch (w + r) % 5 {
				case 0:
					req = redeemReq("GCA", user)
				case 1:
					req = redeemReq("GCB", user)
				case 2:
					req = redeemReq("GCC", user)
				case 3:
					req = redeemReq("NOPE", user)
				case 4:
					// Keys shared by many workers: one redeems, the rest
					// replay it (same request) or conflict (another hash).
					req = KeyedReq("GCD", fmt.Sprintf("k-user-%d", w%8), fmt.Sprintf("k%d", w%8))
					if w%3 == 0 {
						req.RequestHash = "other"
					}
				}
				out, err := st.Redeem(ctx, req)
				mu.Lock()
				answers = append(answers, groupAnswer{req, out, err})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	g1, m1 := counts()
	if m1-m0 != int64(workers*rounds) {
		t.Fatalf("%d group members for %d redemptions", m1-m0, workers*rounds)
	}
	if g1-g0 >= m1-m0 {
		t.Fatalf("%d groups for %d redemptions: nothing was grouped", g1-g0, m1-m0)
	}
	t.Logf("%d redemptions in %d groups", m1-m0, g1-g0)

	attempts := map[string]map[string]int{} // code, user: requests
	for _, an := range answers {
		if attempts[an.req.Code] == nil {
			attempts[an.req.Code] = map[string]int{}
		}
		attempts[an.req.Code][an.req.UserID]++
	}
	// What one-at-a-time redemption gives, whatever the order: each user up
	// to the per-user limit; GCC's 10 uses less the live hold.
	want := map[string]int{"GCC": 9, "GCB": len(attempts["GCB"])}
	for _, n := range attempts["GCA"] {
		want["GCA"] += min(n, 2)
	}
	for code, n := range want {
		total := 0
		for _, k := range attempts[code] {
			total += k
		}
		if total <= n {
			t.Fatalf("%s: %d requests for %d uses: the limit is never reached", code, total, n)
		}
	}
	ok := map[string]int{}
	perUser := map[string]map[string]int{}
	byKey := map[string][]groupAnswer{}
	for _, an := range answers {
		req, out, err := an.req, an.out, an.err
		if req.IdempotencyKey != "" {
			byKey[req.IdempotencyKey] = append(byKey[req.IdempotencyKey], an)
			continue
		}
		if err != nil {
			t.Fatalf("%s for %s: %v", req.Code, req.UserID, err)
		}
		wantReason := map[string]promo.Reason{"GCA": promo.ReasonUserLimitReached, "GCB": promo.ReasonUserLimitReached,
			"GCC": promo.ReasonCodeExhausted, "NOPE": promo.ReasonCodeNotFound}[req.Code]
		switch {
		case out.Refused == "":
			ok[req.Code]++
			if perUser[req.Code] == nil {
				perUser[req.Code] = map[string]int{}
			}
			perUser[req.Code][req.UserID]++
		case out.Refused != wantReason:
			t.Errorf("%s for %s refused %s, want %s", req.Code, req.UserID, out.Refused, wantReason)
		}
	}
	if ok["GCA"] != want["GCA"] || ok["GCB"] != want["GCB"] || ok["GCC"] != want["GCC"] || ok["NOPE"] != 0 {
		t.Errorf("redeemed %v: want %v (up to 2 per user, 1 per user, 10 less the live hold)", ok, want)
	}
	for code, p := range map[string]promo.Promotion{"GCA": a, "GCB": b, "GCC": c} {
		rows, per := AuditRows(t, st, p.ID)
		cs, err := st.CodeState(ctx, code, "")
		if err != nil {
			t.Fatal(err)
		}
		if rows != ok[code] || cs.Used != ok[code] {
			t.Errorf("%s: %d successes, %d audit rows, %d uses: want them equal", code, ok[code], rows, cs.Used)
		}
		for u, n := range per {
			if n != perUser[code][u] {
				t.Errorf("%s: user %s has %d audit rows, %d successes", code, u, n, perUser[code][u])
			}
		}
	}
	checkKeys(t, byKey)
}

// KeyedReq is a redemption request of code for user at now, with the
// idempotency key key (none if empty) and a request hash of its own.
func KeyedReq(code, user, key string) promo.RedeemRequest {
	req := redeemReq(code, user)
	if key != "" {
		req.IdempotencyKey, req.RequestHash = key, "h:"+code+":"+user
	}
	return req
}

// AuditRows counts a promotion's redemptions and each user's among them.
func AuditRows(t testing.TB, st interface {
	ExportRedemptions(ctx context.Context, f promo.RedemptionFilter, fn func(promo.Redemption) error) error
}, pid int64) (int, map[string]int) {
	t.Helper()
	n, per := 0, map[string]int{}
	err := st.ExportRedemptions(context.Background(), promo.RedemptionFilter{PromotionID: pid}, func(r promo.Redemption) error {
		n++
		per[r.UserID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, per
}

type groupAnswer struct {
	req promo.RedeemRequest
	out promo.RedeemOutcome
	err error
}

// checkKeys: each key made exactly one redemption, by whichever request
// came first; the same request again is its replay, another request a
// conflict.
func checkKeys(t *testing.T, byKey map[string][]groupAnswer) {
	t.Helper()
	for key, ans := range byKey {
		var first *groupAnswer
		for i, an := range ans {
			if an.err == nil && !an.out.Replayed && an.out.Refused == "" {
				if first != nil {
					t.Errorf("key %s: two redemptions, %s and %s", key, first.out.Redemption.ID, an.out.Redemption.ID)
				}
				first = &ans[i]
			}
		}
		if first == nil {
			t.Errorf("key %s: no redemption among %d requests", key, len(ans))
			continue
		}
		for i, an := range ans {
			switch {
			case &ans[i] == first:
			case an.req.RequestHash == first.req.RequestHash:
				if an.err != nil || !an.out.Replayed || an.out.Redemption.ID != first.out.Redemption.ID {
					t.Errorf("key %s, the same request: %+v, %v: want the replay of %s", key, an.out, an.err,
						first.out.Redemption.ID)
				}
			case promo.ReasonOf(an.err) != promo.ReasonIdempotencyConflict:
				t.Errorf("key %s, another request: %+v, %v: want idempotency_conflict", key, an.out, an.err)
			}
		}
	}
}
