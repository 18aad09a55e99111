//go:build integration

package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// TestAdversarialCloseMidGroup: the store is closed (its statement caches,
// its pools) at a random moment while 48 goroutines redeem through group
// commit, keyed, a sixth with shopper fields: groups are gathering, being
// written, committing. Five rounds on one file. Redemptions after the
// close fail, and nothing crashes; reopened, every redemption answered has
// its audit row and its one event, nothing answered with an error has a
// row, and uses = audit rows = events.
func TestAdversarialCloseMidGroup(t *testing.T) {
	ctx := context.Background()
	s, path := migratedFile(t)
	p, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "CLOSE", Kind: promo.KindVanity,
		VanityCode: "CLOSE", MaxUsagePerCode: 1_000_000, PerUserLimit: 3}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	type answer struct {
		req promo.RedeemRequest
		res promo.RedeemResult
	}
	var (
		mu      sync.Mutex
		answers []answer
	)
	for round := range 5 {
		s, err := Open(ctx, Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 48 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					key := fmt.Sprintf("close-%d-%d-%d", round, g, i)
					req := promo.RedeemRequest{ID: storetestID(), EventID: storetestID(), Code: "CLOSE",
						UserID: fmt.Sprintf("u%d", rand.IntN(2000)), Now: time.Now().UTC(), IdempotencyKey: key, RequestHash: "h"}
					if i%6 == 0 {
						req.Shopper = &promo.Shopper{Country: "FR"}
					}
					rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					out, err := s.Redeem(rctx, req)
					cancel()
					mu.Lock()
					answers = append(answers, answer{req, promo.RedeemResult{Outcome: out, Err: err}})
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(20+rand.IntN(200)) * time.Millisecond)
		s.Close()
		time.Sleep(20 * time.Millisecond)
		close(stop)
		wg.Wait()
	}
	db := rawDB(t, path)
	ids := map[string]bool{}
	evs := map[string]int{}
	rows, err := db.QueryContext(ctx, `SELECT id FROM redemptions`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	rows.Close()
	rows, err = db.QueryContext(ctx, `SELECT payload FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var payload string
		if err := rows.Scan(&payload); err != nil {
			t.Fatal(err)
		}
		var ev promo.RedemptionEvent
		if json.Unmarshal([]byte(payload), &ev) == nil && ev.Type == promo.EventRedeemed {
			evs[ev.Redemption.ID]++
		}
	}
	rows.Close()
	redeemed, refused, failed := 0, 0, 0
	for _, a := range answers {
		switch {
		case a.res.Err == nil && a.res.Outcome.Refused == "":
			redeemed++
			if !ids[a.req.ID] || evs[a.req.ID] != 1 {
				t.Errorf("%s answered redeemed: audit row %t, %d events", a.req.ID, ids[a.req.ID], evs[a.req.ID])
			}
		case a.res.Err == nil:
			refused++
		default:
			failed++
			if ids[a.req.ID] {
				t.Errorf("%s answered %v: has its audit row", a.req.ID, a.res.Err)
			}
		}
	}
	var used, audit, events int
	if err := db.QueryRowContext(ctx, `SELECT used FROM codes WHERE code = 'CLOSE'`).Scan(&used); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM redemptions WHERE promotion_id = ?`, p.ID).Scan(&audit); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE payload LIKE '%"type":"redemption.created"%'`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if used != redeemed || audit != redeemed || events != redeemed {
		t.Errorf("%d answered redeemed: %d uses, %d audit rows, %d events", redeemed, used, audit, events)
	}
	state := ""
	if t.Failed() {
		state = "FAILED: "
	}
	t.Logf("adversarial: store closed mid-group, 5 rounds of 48 redeemers [sqlite]: %s%d answers (%d redeemed, %d refused, "+
		"%d errors); every redemption answered has its row and one event, no error has a row, uses = audit rows = events",
		state, len(answers), redeemed, refused, failed)
}
