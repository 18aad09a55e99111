//go:build integration

package sqlite

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// TestAdversarialGroupDiskFull: the database may not grow past a few pages
// more than it has (max_page_count: SQLITE_FULL, the error that can undo a
// statement or the whole transaction), and groups of 64 keyed redemptions,
// a sixth with shopper fields, are written until they fail: some members'
// statements, a group's multi-row insert, the savepoint pass meet the full
// file. Every member answered redeemed has its audit row and its event,
// every member answered an error has none; uses = audit rows = events; the
// file passes integrity_check and, reopened without the bound, redeems, and
// every key answered before replays as it was answered.
func TestAdversarialGroupDiskFull(t *testing.T) {
	ctx := context.Background()
	s, path := migratedFile(t)
	p, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "FULL", Kind: promo.KindVanity,
		VanityCode: "FULL", MaxUsagePerCode: 1_000_000, PerUserLimit: 0}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, path)
	var pages int
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	full, err := Open(ctx, Config{DSN: fmt.Sprintf("%s?_pragma=max_page_count(%d)", path, pages+40)})
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		req promo.RedeemRequest
		res promo.RedeemResult
	}
	var (
		answers []answer
		mu      sync.Mutex
		errs    int
	)
	for round := 0; round < 200 && errs < 200; round++ {
		var wg sync.WaitGroup
		for i := range 64 {
			key := fmt.Sprintf("full-%d-%d", round, i)
			req := promo.RedeemRequest{ID: storetestID(), EventID: storetestID(), Code: "FULL",
				UserID: fmt.Sprintf("u%d-%d", round, i), Now: time.Now().UTC(), IdempotencyKey: key, RequestHash: "h",
				Metadata: []byte(fmt.Sprintf(`{"pad":"%0200d"}`, i)), UserAgent: "agent/1.0 padding padding padding"}
			if i%6 == 0 {
				req.Shopper = &promo.Shopper{Country: "FR", Segments: []string{"a", "b"}}
			}
			wg.Go(func() {
				out, err := full.Redeem(ctx, req)
				mu.Lock()
				defer mu.Unlock()
				answers = append(answers, answer{req, promo.RedeemResult{Outcome: out, Err: err}})
				if err != nil {
					errs++
				}
			})
		}
		wg.Wait()
	}
	g, m, _, _ := full.GroupStats()
	full.Close()
	var check string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check %q, %v", check, err)
	}
	evs := map[string]int{}
	rows, err := db.QueryContext(ctx, `SELECT payload FROM events WHERE payload LIKE '%redemption.created%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var payload string
		if err := rows.Scan(&payload); err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{payload} {
			evs[a]++
		}
	}
	rows.Close()
	redeemed, failed := 0, 0
	kinds := map[string]int{}
	for _, a := range answers {
		if a.res.Err != nil {
			msg := a.res.Err.Error()
			if i := len(msg); i > 90 {
				msg = msg[i-90:]
			}
			kinds[msg]++
		}
	}
	t.Logf("errors: %v", kinds)
	for _, a := range answers {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM redemptions WHERE id = ?`, a.req.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		var e int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE payload LIKE ?`, `%"id":"`+a.req.ID+`"%`).Scan(&e); err != nil {
			t.Fatal(err)
		}
		switch {
		case a.res.Err == nil && (n != 1 || e != 1):
			t.Errorf("%s answered redeemed: %d audit rows, %d events", a.req.ID, n, e)
		case a.res.Err != nil && (n != 0 || e != 0):
			t.Errorf("%s answered %v: %d audit rows, %d events", a.req.ID, a.res.Err, n, e)
		case a.res.Err == nil:
			redeemed++
		default:
			failed++
		}
	}
	used, audit, events := codeTotals(t, db, "FULL", p.ID)
	if used != redeemed || audit != redeemed || events != redeemed {
		t.Errorf("%d answered redeemed: %d uses, %d audit rows, %d events", redeemed, used, audit, events)
	}
	// Reopened without the bound: the keys answer as they were answered
	// (an error's key redeems now), and new redemptions go through.
	s, err = Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, a := range answers {
		again := a.req
		again.ID, again.EventID = storetestID(), storetestID()
		out, err := s.Redeem(ctx, again)
		switch {
		case err != nil:
			t.Errorf("key %s again, without the bound: %v", a.req.IdempotencyKey, err)
		case a.res.Err == nil && (!out.Replayed || out.Redemption.ID != a.req.ID):
			t.Errorf("key %s answered %s, again: %+v", a.req.IdempotencyKey, a.req.ID, out)
		case a.res.Err != nil && out.Replayed:
			t.Errorf("key %s answered %v, again: a replay %+v", a.req.IdempotencyKey, a.res.Err, out)
		}
	}
	state := ""
	if t.Failed() {
		state = "FAILED: "
	}
	t.Logf("adversarial: groups meeting a full database (max_page_count) [sqlite]: %s%d answers in %d groups (%d members), "+
		"%d redeemed, %d errors; every answer matches its rows and events, uses = audit rows = events, integrity_check %s, "+
		"every key answers the same once the file can grow", state, len(answers), g, m, redeemed, failed, check)
}
