//go:build integration

package sqlite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// TestAdversarialGroupBatch: one group whose audit rows and events are the
// group's multi-row inserts, mixing redemptions, refusals (the code's and
// the user's limits), a key twice (the replay reads the first member's row,
// written before it), a key reused for another request (a conflict),
// redemptions with shopper fields (written at once, after the batched rows
// before them) and, in the failing round, two members with one redemption
// id (the batch's insert fails: the group is written again with a
// savepoint each, and only the second is rolled back). Every answer is
// checked, and uses = audit rows = events = redemptions answered, the
// events in the members' order.
func TestAdversarialGroupBatch(t *testing.T) {
	ctx := context.Background()
	s, path := migratedFile(t)
	db := rawDB(t, path)
	for _, failing := range []bool{false, true} {
		sfx := map[bool]string{true: "F", false: "N"}[failing]
		code, small := "GB"+sfx, "GS"+sfx
		p, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: code,
			Kind: promo.KindVanity, VanityCode: code, MaxUsagePerCode: 1000, PerUserLimit: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: small,
			Kind: promo.KindVanity, VanityCode: small, MaxUsagePerCode: 2, PerUserLimit: 1}}); err != nil {
			t.Fatal(err)
		}
		req := func(code, user, key string) promo.RedeemRequest {
			k := ""
			if key != "" {
				k = key + sfx
			}
			return promo.RedeemRequest{ID: storetestID(), EventID: storetestID(), Code: code, UserID: user,
				Now: time.Now().UTC(), IdempotencyKey: k, RequestHash: "h:" + code + user}
		}
		var (
			reqs  []promo.RedeemRequest
			wants []string // redeemed, replay:<i>, conflict, error, or the refusal
		)
		add := func(r promo.RedeemRequest, want string) {
			reqs, wants = append(reqs, r), append(wants, want)
		}
		for i := range 40 {
			r := req(code, fmt.Sprintf("u%02d", i), map[bool]string{true: fmt.Sprintf("k%02d", i)}[i%2 == 0])
			switch i % 10 {
			case 3: // the user again: refused after its first use in this group
				add(req(code, "u02", ""), "user_limit_reached")
			case 5: // the key of member 4 again, the same request: its replay
				again := reqs[4]
				again.ID, again.EventID = storetestID(), storetestID()
				add(again, "replay:4")
			case 6: // the key of member 4 for another request
				other := req(code, "other", "k04")
				add(other, "conflict")
			case 9: // after batched rows: written at once, after them
				r.Shopper = &promo.Shopper{Country: "DE", Segments: []string{"vip"}}
				add(r, "redeemed")
			case 8: // the small code: two uses, then refused
				want := "redeemed"
				if i > 20 {
					want = "code_exhausted"
				}
				add(req(small, r.UserID, ""), want)
			default:
				add(r, "redeemed")
			}
		}
		if failing {
			dup := req(code, "dup", "kdup")
			dup.ID = reqs[0].ID // the first member's id: its audit row fails
			add(dup, "error")
			add(req(code, "after", "kafter"), "redeemed")
		}
		sp0, _ := s.GroupStatements()
		in0 := s.GroupInserts()
		res := inOneGroup(t, s, path, reqs)
		sp1, _ := s.GroupStatements()
		in1 := s.GroupInserts()
		redeemed := map[string]bool{}
		var order []string // redemption ids in member order
		for i, w := range wants {
			out, err := res[i].Outcome, res[i].Err
			bad := false
			switch {
			case w == "redeemed":
				bad = err != nil || out.Refused != "" || out.Replayed || out.Redemption.ID != reqs[i].ID
				if !bad && reqs[i].Code == code {
					redeemed[out.Redemption.ID] = true
					order = append(order, out.Redemption.ID)
				}
			case strings.HasPrefix(w, "replay:"):
				var first int
				fmt.Sscanf(w, "replay:%d", &first)
				bad = err != nil || !out.Replayed || out.Redemption.ID != reqs[first].ID
			case w == "conflict":
				bad = promo.ReasonOf(err) != promo.ReasonIdempotencyConflict
			case w == "error":
				bad = err == nil
			default:
				bad = err != nil || string(out.Refused) != w || out.Replayed
			}
			if bad {
				t.Errorf("failing %t, member %d (%s, key %q): %+v, %v; want %s", failing, i, reqs[i].UserID,
					reqs[i].IdempotencyKey, out, err, w)
			}
		}
		var uses, rows, events int
		if err := db.QueryRowContext(ctx, `SELECT used FROM codes WHERE code = ?`, code).Scan(&uses); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM redemptions WHERE promotion_id = ?`, p.ID).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		evRows, err := db.QueryContext(ctx, `SELECT payload FROM events WHERE event_key = ? ORDER BY seq`, promo.FormatID(p.ID))
		if err != nil {
			t.Fatal(err)
		}
		var evOrder []string
		for evRows.Next() {
			var payload string
			if err := evRows.Scan(&payload); err != nil {
				t.Fatal(err)
			}
			events++
			for id := range redeemed {
				if strings.Contains(payload, `"`+id+`"`) {
					evOrder = append(evOrder, id)
				}
			}
		}
		if err := evRows.Close(); err != nil {
			t.Fatal(err)
		}
		// inOneGroup's lead redeems the code too, in the group before.
		if n := len(redeemed) + 1; uses != n || rows != n || events != n {
			t.Errorf("failing %t: %d redeemed (with the lead), %d uses, %d audit rows, %d events: want them equal",
				failing, n, uses, rows, events)
		}
		if fmt.Sprint(evOrder) != fmt.Sprint(order) {
			t.Errorf("failing %t: events in order %v, want the members' %v", failing, evOrder, order)
		}
		switch {
		case failing && sp1-sp0 != int64(len(reqs)):
			t.Errorf("failing: %d savepoints, want %d (the group written again, a savepoint each)", sp1-sp0, len(reqs))
		case !failing && (sp1 != sp0 || in1 == in0):
			t.Errorf("%d savepoints, %d multi-row inserts: want none and some", sp1-sp0, in1-in0)
		}
		state := ""
		if t.Failed() {
			state = "FAILED: "
		}
		t.Logf("adversarial: one group's audit rows and events batched, failing member %t [sqlite]: %s%d members "+
			"answered as if serial, %d redeemed = uses = audit rows = events in member order (%d savepoints, %d multi-row inserts)",
			failing, state, len(reqs), len(redeemed), sp1-sp0, in1-in0)
	}
}
