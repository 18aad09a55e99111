//go:build integration

package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// envBatchCrashChild makes the test binary the process
// TestAdversarialCrashBatchedRows kills.
const envBatchCrashChild = "PROMOCODES_ADV_BATCH_CRASH_CHILD"

// batchCrashLoad redeems on 64 goroutines (large groups: their audit rows
// and events are the groups' multi-row inserts), a key each, a sixth with
// shopper fields, writing "R key code user id" or "X key code user reason"
// once answered.
func batchCrashLoad(ctx context.Context, s *Store, codes []string, w io.Writer) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	tag := fmt.Sprintf("%d", os.Getpid())
	for g := range 64 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("bc-%s-%d-%d", tag, g, i)
				req := promo.RedeemRequest{ID: storetestID(), EventID: storetestID(), Code: codes[rand.IntN(len(codes))],
					UserID: fmt.Sprintf("u%s-%03d", tag, rand.IntN(5000)), Now: time.Now().UTC(), IdempotencyKey: key,
					RequestHash: "h:" + key}
				if i%6 == 0 {
					req.Shopper = &promo.Shopper{Country: "FR"}
				}
				out, err := s.Redeem(ctx, req)
				var line string
				switch {
				case err != nil:
					line = fmt.Sprintf("E %s %s %s\n", key, req.Code, req.UserID)
				case out.Refused == "":
					line = fmt.Sprintf("R %s %s %s %s\n", key, req.Code, req.UserID, out.Redemption.ID)
				default:
					line = fmt.Sprintf("X %s %s %s %s\n", key, req.Code, req.UserID, out.Refused)
				}
				mu.Lock()
				io.WriteString(w, line) //nolint:errcheck // the parent reads what it gets
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestAdversarialCrashBatchedRows kills (SIGKILL) a process redeeming on 64
// goroutines through group commit (large groups, whose audit rows and
// events are written at their end in multi-row inserts), three times.
// After each kill: every redemption answered has its audit row and its one
// redemption.created event naming it, with the uses left and the code's
// uses the row says; each code's uses = audit rows = redemption events;
// no user past the limit.
func TestAdversarialCrashBatchedRows(t *testing.T) {
	if path := os.Getenv(envBatchCrashChild); path != "" {
		s, err := Open(context.Background(), Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		batchCrashLoad(context.Background(), s, strings.Fields(os.Getenv(envBatchCrashChild+"_CODES")), os.Stdout)
		return
	}
	ctx := context.Background()
	s, path := migratedFile(t)
	s.Close()
	for round := range 3 {
		s, err := Open(ctx, Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		codes := make([]string, 3)
		for i := range codes {
			codes[i] = fmt.Sprintf("BC%d%d", round, i)
			if _, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: codes[i],
				Kind: promo.KindVanity, VanityCode: codes[i], MaxUsagePerCode: []int{300, 100_000, 100_000}[i],
				PerUserLimit: 3}}); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		lines := storetest.KillChild(t, "^TestAdversarialCrashBatchedRows$",
			[]string{envBatchCrashChild + "=" + path, envBatchCrashChild + "_CODES=" + strings.Join(codes, " ")},
			time.Duration(700+rand.IntN(800))*time.Millisecond)
		db := rawDB(t, path)
		byID := map[string][]promo.RedemptionEvent{}
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
			if err := json.Unmarshal([]byte(payload), &ev); err == nil && ev.Redemption.ID != "" {
				byID[ev.Redemption.ID] = append(byID[ev.Redemption.ID], ev)
			}
		}
		evRows.Close()
		var redeemed, refused, errs, torn int
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) < 4 || len(f) != map[string]int{"R": 5, "X": 5, "E": 4}[f[0]] {
				torn++
				continue
			}
			switch f[0] {
			case "R":
				redeemed++
				var usesLeft, n int
				if err := db.QueryRowContext(ctx, `SELECT uses_left FROM redemptions WHERE id = ?`, f[4]).Scan(&usesLeft); err != nil {
					t.Errorf("round %d: redemption %s answered, its audit row: %v", round, f[4], err)
					continue
				}
				evs := byID[f[4]]
				n = len(evs)
				for _, ev := range evs {
					if ev.Type != promo.EventRedeemed || ev.Redemption.UsesLeft != usesLeft || ev.CodeUses == nil ||
						ev.Redemption.UserID != f[3] || ev.Redemption.Code != f[2] {
						t.Errorf("round %d: redemption %s (uses left %d): event %+v", round, f[4], usesLeft, ev)
					}
				}
				if n != 1 {
					t.Errorf("round %d: redemption %s answered: %d events", round, f[4], n)
				}
			case "X":
				refused++
			default:
				errs++
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
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE payload LIKE ? AND payload LIKE ?`,
				`%"type":"redemption.created"%`, `%"code":"`+c+`"%`).Scan(&events); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM user_uses u JOIN codes c ON c.promotion_id = u.promotion_id
				WHERE c.code = ? AND u.used > 3`, c).Scan(&over); err != nil {
				t.Fatal(err)
			}
			if used != audit || audit != events || over != 0 {
				t.Errorf("round %d code %s: %d uses, %d audit rows, %d redemption events, %d users past the limit",
					round, c, used, audit, events, over)
			}
		}
		var check string
		if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
			t.Errorf("round %d: integrity_check %q, %v", round, check, err)
		}
		state := ""
		if t.Failed() {
			state = "FAILED: "
		}
		t.Logf("adversarial: SIGKILL mid-group, 64 redeemers, round %d [sqlite]: %s%d redeemed, %d refused, %d errors, "+
			"%d torn lines; every answered redemption has its row and one event with its uses; uses = audit rows = events",
			round, state, redeemed, refused, errs, torn)
	}
}
