package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// migratedFile opens a migrated store on a new file in t's temporary
// directory, and names the file.
func migratedFile(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "promocodes.db")
	s, err := Open(context.Background(), Config{Path: path})
	return storetest.Migrated(t, s, err), path
}

// rawDB opens path with a connection pool of the test's own.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// inOneGroup redeems reqs through s's group commit as one group, in their
// order (inOneGroupWith, a lead of its own whose answer does not matter).
func inOneGroup(t *testing.T, s *Store, path string, reqs []promo.RedeemRequest) []promo.RedeemResult {
	t.Helper()
	lead := promo.RedeemRequest{ID: storetestID(), EventID: storetestID(), Code: reqs[0].Code, UserID: "lead",
		Now: time.Now().UTC()}
	res, _ := inOneGroupWith(t, s, path, lead, reqs)
	return res
}

// inOneGroupWith redeems reqs through s's group commit as one group, in
// their order: another connection holds the write lock while lead's group
// waits for it and reqs gather behind, one at a time. It answers reqs' and
// lead's results.
func inOneGroupWith(t *testing.T, s *Store, path string, lead promo.RedeemRequest, reqs []promo.RedeemRequest) ([]promo.RedeemResult, promo.RedeemResult) {
	t.Helper()
	ctx := context.Background()
	conn, err := rawDB(t, path).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	g0, _, _, _ := s.GroupStats()
	var wg sync.WaitGroup
	var led promo.RedeemResult
	wg.Go(func() { led.Outcome, led.Err = s.Redeem(ctx, lead) })
	for {
		if _, _, _, busy := s.GroupStats(); busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	res := make([]promo.RedeemResult, len(reqs))
	for i, req := range reqs {
		wg.Go(func() { res[i].Outcome, res[i].Err = s.Redeem(ctx, req) })
		for {
			if _, _, pending, _ := s.GroupStats(); pending == i+1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if g1, _, _, _ := s.GroupStats(); g1-g0 != 2 {
		t.Fatalf("%d groups written, want 2 (the lead's, then the %d gathered)", g1-g0, len(reqs))
	}
	return res, led
}

var idSeq atomic.Int64

func storetestID() string { return fmt.Sprintf("%016x-adv%06d", time.Now().UnixNano(), idSeq.Add(1)) }

// codeTotals reads code's uses, and the audit rows and redemption.created
// events of its promotion (promotionID).
func codeTotals(t *testing.T, db *sql.DB, code string, promotionID int64) (uses, audit, events int) {
	t.Helper()
	if err := db.QueryRow(`SELECT (SELECT used FROM codes WHERE code = ?1),
	(SELECT count(*) FROM redemptions WHERE promotion_id = ?2),
	(SELECT count(*) FROM events WHERE event_key = ?3 AND payload LIKE '%redemption.created%')`,
		code, promotionID, promo.FormatID(promotionID)).Scan(&uses, &audit, &events); err != nil {
		t.Fatal(err)
	}
	return uses, audit, events
}
