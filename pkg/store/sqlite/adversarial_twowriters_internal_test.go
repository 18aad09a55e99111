//go:build integration

package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// TestAdversarialTwoWritersSharedKeys: two stores on one file (two
// processes' group writers, each with its own connection) redeem the same
// keyed requests at once, 24 goroutines each: every key is sent to both,
// the same request (each a replay of whichever committed first), and every
// third key also with another request (a conflict for whichever came
// second). Codes of 40 uses and 2 per user make refusals. Every key's
// answers name one outcome (the same redemption, or the same refusal),
// each key made at most one audit row, a conflict answered only for a
// request the key's record does not hold, and uses = audit rows = events
// within the limits.
func TestAdversarialTwoWritersSharedKeys(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "promocodes.db")
	a, err := Open(ctx, Config{Path: path})
	a = storetest.Migrated(t, a, err)
	b, err := Open(ctx, Config{Path: path})
	b = storetest.Migrated(t, b, err)
	codes := []string{"TWA", "TWB", "TWC"}
	for _, c := range codes {
		if _, _, err := a.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: c, Kind: promo.KindVanity,
			VanityCode: c, MaxUsagePerCode: 40, PerUserLimit: 2}}); err != nil {
			t.Fatal(err)
		}
	}
	const keys = 600
	type answer struct {
		body  string // which request: "same" or "other"
		store string
		out   promo.RedeemOutcome
		err   error
	}
	var (
		mu      sync.Mutex
		byKey   = map[string][]answer{}
		reqOf   = map[string]promo.RedeemRequest{}
		wg      sync.WaitGroup
		next    = make(chan int)
		started = time.Now()
	)
	for k := range keys {
		key := fmt.Sprintf("tw-%d", k)
		req := promo.RedeemRequest{Code: codes[k%len(codes)], UserID: fmt.Sprintf("u%d", rand.IntN(60)),
			IdempotencyKey: key, RequestHash: fmt.Sprintf("h:%d", k)}
		reqOf[key] = req
	}
	send := func(st *Store, name string) {
		for k := range next {
			key := fmt.Sprintf("tw-%d", k)
			bodies := []string{"same"}
			if k%3 == 0 {
				bodies = append(bodies, "other")
			}
			rand.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })
			for _, body := range bodies {
				req := reqOf[key]
				req.ID, req.EventID, req.Now = storetestID(), storetestID(), time.Now().UTC()
				if body == "other" {
					req.UserID, req.RequestHash = "someone-else", "h:other"
				}
				out, err := st.Redeem(ctx, req)
				mu.Lock()
				byKey[key] = append(byKey[key], answer{body, name, out, err})
				mu.Unlock()
			}
		}
	}
	for g := range 48 {
		st, name := a, "a"
		if g%2 == 1 {
			st, name = b, "b"
		}
		wg.Go(func() { send(st, name) })
	}
	for k := range keys {
		next <- k // each key to two goroutines, one of each store
		next <- k
	}
	close(next)
	wg.Wait()
	took := time.Since(started)

	db := rawDB(t, path)
	rowsOfKey := map[string][]string{}
	rows, err := db.QueryContext(ctx, `SELECT idempotency_key, id FROM redemptions WHERE idempotency_key IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, id string
		if err := rows.Scan(&k, &id); err != nil {
			t.Fatal(err)
		}
		rowsOfKey[k] = append(rowsOfKey[k], id)
	}
	rows.Close()
	redeemed, refused, conflicts, replays := 0, 0, 0, 0
	for key, as := range byKey {
		var first *answer
		for i := range as {
			x := &as[i]
			switch {
			case x.err != nil && promo.ReasonOf(x.err) == promo.ReasonIdempotencyConflict:
				conflicts++
				continue
			case x.err != nil:
				t.Errorf("key %s on %s (%s): %v", key, x.store, x.body, x.err)
				continue
			}
			if x.out.Replayed {
				replays++
			}
			if first == nil {
				first = x
				continue
			}
			if x.body != first.body || x.out.Refused != first.out.Refused || x.out.Redemption.ID != first.out.Redemption.ID {
				t.Errorf("key %s: answered %s %+v (%s) and %s %+v (%s)", key, first.body, first.out, first.store,
					x.body, x.out, x.store)
			}
		}
		n := len(rowsOfKey[key])
		switch {
		case first == nil:
			t.Errorf("key %s: no answer but conflicts", key)
		case first.out.Refused == "" && (n != 1 || rowsOfKey[key][0] != first.out.Redemption.ID):
			t.Errorf("key %s answered %s: audit rows %v", key, first.out.Redemption.ID, rowsOfKey[key])
		case first.out.Refused != "" && n != 0:
			t.Errorf("key %s answered %s: audit rows %v", key, first.out.Refused, rowsOfKey[key])
		case first.out.Refused == "":
			redeemed++
		default:
			refused++
		}
	}
	for _, c := range codes {
		var used, audit, events, over int
		if err := db.QueryRowContext(ctx, `SELECT used FROM codes WHERE code = ?`, c).Scan(&used); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM redemptions WHERE code = ?`, c).Scan(&audit); err != nil {
			t.Fatal(err)
		}
		evRows, err := db.QueryContext(ctx, `SELECT payload FROM events`)
		if err != nil {
			t.Fatal(err)
		}
		for evRows.Next() {
			var payload string
			if err := evRows.Scan(&payload); err != nil {
				t.Fatal(err)
			}
			var ev promo.RedemptionEvent
			if json.Unmarshal([]byte(payload), &ev) == nil && ev.Type == promo.EventRedeemed && ev.Redemption.Code == c {
				events++
			}
		}
		evRows.Close()
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM user_uses u JOIN codes c ON c.promotion_id = u.promotion_id
			WHERE c.code = ? AND u.used > 2`, c).Scan(&over); err != nil {
			t.Fatal(err)
		}
		if used != audit || audit != events || used > 40 || over != 0 {
			t.Errorf("code %s: %d uses, %d audit rows, %d events (max 40), %d users past 2", c, used, audit, events, over)
		}
	}
	ga, ma, _, _ := a.GroupStats()
	gb, mb, _, _ := b.GroupStats()
	state := ""
	if t.Failed() {
		state = "FAILED: "
	}
	t.Logf("adversarial: two writers (stores) on one file, each key sent to both [sqlite]: %s%d keys in %s (%d redeemed, "+
		"%d refused; %d replays, %d conflicts; groups %d/%d members on a, %d/%d on b): one outcome and at most one row a key, "+
		"uses = audit rows = events within the limits", state, len(byKey), took.Round(time.Millisecond), redeemed, refused,
		replays, conflicts, ga, ma, gb, mb)
}
