//go:build integration

package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// TestAdversarialGroupCancelledMidWrite: groups of 96 members gathered
// behind a held write lock, whose contexts end at a random moment once the
// lock is released: before the group begins, while its members' statements
// or its multi-row inserts run, around its commit. In half of the rounds
// every member's context ends (the group's transaction is cancelled and
// rolled back by database/sql while the writer runs statements without a
// context), in the others a third of them keep theirs (the group goes on).
// Every member answered without an error has its audit row (or was
// refused), every member answered with one has none, and the code's uses =
// audit rows = events.
func TestAdversarialGroupCancelledMidWrite(t *testing.T) {
	ctx := context.Background()
	s, path := migratedFile(t)
	db := rawDB(t, path)
	p, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "GX", Kind: promo.KindVanity,
		VanityCode: "GX", MaxUsagePerCode: 1_000_000, PerUserLimit: 2}})
	if err != nil {
		t.Fatal(err)
	}
	var redeemed, refused, failed, rounds, committed, rolledBack int
	for round := range 60 {
		// From round 40 the audit rows' inserts are slow (a trigger that
		// counts to 3,000 a row): a group takes tens of milliseconds, and
		// the contexts end while its statements run, the multi-row insert
		// among them.
		slow := round >= 40
		if round == 40 {
			if _, err := db.ExecContext(ctx, `CREATE TRIGGER slow_audit AFTER INSERT ON redemptions BEGIN
				SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) SELECT x FROM c);
				END`); err != nil {
				t.Fatal(err)
			}
		}
		all := round%2 == 0
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		lead := promo.RedeemRequest{ID: storetestID(), EventID: storetestID(), Code: "GX", UserID: fmt.Sprintf("lead%d", round), Now: time.Now().UTC()}
		leadRes := promo.RedeemResult{}
		wg.Go(func() { leadRes.Outcome, leadRes.Err = s.Redeem(ctx, lead) })
		for {
			if _, _, _, busy := s.GroupStats(); busy {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		short, cancel := context.WithCancel(ctx)
		const n = 96
		reqs := make([]promo.RedeemRequest, n)
		res := make([]promo.RedeemResult, n)
		for i := range n {
			// 40 users, 2 uses each: some members are refused in the group.
			reqs[i] = promo.RedeemRequest{ID: storetestID(), EventID: storetestID(), Code: "GX",
				UserID: fmt.Sprintf("r%d-u%d", round, i%40), Now: time.Now().UTC()}
			if i%2 == 0 {
				reqs[i].IdempotencyKey, reqs[i].RequestHash = fmt.Sprintf("r%d-k%d", round, i), "h"
			}
			if i%7 == 3 {
				reqs[i].Shopper = &promo.Shopper{Country: "FR", Segments: []string{"s"}}
			}
			mctx := short
			if !all && i%3 == 0 {
				mctx = ctx
			}
			wg.Go(func() { res[i].Outcome, res[i].Err = s.Redeem(mctx, reqs[i]) })
		}
		for {
			if _, _, pending, _ := s.GroupStats(); pending == n {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		window := 6000
		if slow {
			window = 80000
		}
		time.Sleep(time.Duration(rand.IntN(window)) * time.Microsecond)
		cancel()
		wg.Wait()
		rounds++
		if all {
			n := 0
			for _, r := range res {
				if r.Err == nil {
					n++
				}
			}
			switch n {
			case 0:
				rolledBack++
			case len(res):
				committed++
			}
		}
		if leadRes.Err != nil || leadRes.Outcome.Refused != "" {
			t.Errorf("round %d: the lead (its context never ends): %+v, %v", round, leadRes.Outcome, leadRes.Err)
		}
		for i, r := range res {
			var rows int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM redemptions WHERE id = ?`, reqs[i].ID).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			switch {
			case r.Err == nil && r.Outcome.Refused == "" && rows != 1:
				t.Errorf("round %d member %d: answered redeemed (%s), %d audit rows", round, i, r.Outcome.Redemption.ID, rows)
			case r.Err == nil && r.Outcome.Refused != "" && rows != 0:
				t.Errorf("round %d member %d: answered %s, %d audit rows", round, i, r.Outcome.Refused, rows)
			case r.Err != nil && rows != 0:
				t.Errorf("round %d member %d: answered %v, %d audit rows", round, i, r.Err, rows)
			case r.Err != nil && !all && i%3 == 0:
				t.Errorf("round %d member %d, whose context never ended: %v", round, i, r.Err)
			case r.Err != nil:
				failed++
				if !strings.Contains(r.Err.Error(), "context canceled") {
					t.Errorf("round %d member %d: %v; want its context's end", round, i, r.Err)
				}
			case r.Outcome.Refused != "":
				refused++
			default:
				redeemed++
			}
		}
	}
	uses, rows, events := codeTotals(t, db, "GX", p.ID)
	if want := redeemed + rounds; uses != want || rows != want || events != want {
		t.Errorf("%d redeemed (with the leads): %d uses, %d audit rows, %d events", want, uses, rows, events)
	}
	var users int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM user_uses WHERE promotion_id = ? AND used > 2`, p.ID).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if users != 0 {
		t.Errorf("%d users past their limit of 2", users)
	}
	state := ""
	if t.Failed() {
		state = "FAILED: "
	}
	t.Logf("adversarial: groups whose members' contexts end at random while written [sqlite]: %s%d rounds, %d redeemed, "+
		"%d refused, %d ended by their context (groups all of whose members' contexts ended: %d committed, %d rolled back); "+
		"every answer matches its rows, uses = audit rows = events",
		state, rounds, redeemed, refused, failed, committed, rolledBack)
}
