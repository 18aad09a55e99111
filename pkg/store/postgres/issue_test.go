package postgres_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres"
)

// An issuance late in a large pool takes about as long as one early in it:
// it starts where the issuances before it stopped instead of reading past
// every code already issued (docs/store.md, "Personal codes"). Two
// promotions of 200,000 codes each, one with 180,000 issued: the median
// issuance of the late one is within 5 times the median of the fresh one
// (reading past 180,000 issued rows made it 20 to 100 times slower).
func TestLateIssuanceSkipsIssuedCodes(t *testing.T) {
	const codes, issued, runs = 200000, 180000, 9
	ctx := context.Background()
	s := open(t)
	pool := postgres.Pool(s)
	create := func(name string, issued int) int64 {
		t.Helper()
		p, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: name,
			Kind: promo.KindGenerated, CodeCount: codes, Format: &promo.Format{Charset: "numeric", Length: 15, Prefix: "C"},
			MaxUsagePerCode: 1, CounterName: "late-" + name}, BatchSize: codes, SeqLimit: math.MaxInt64})
		if err != nil {
			t.Fatal(err)
		}
		// The codes as the generator leaves them, one promotion's rows
		// together; the issued ones first, live, as they are once vacuum has
		// let the issuances' new row versions fill the pages they left.
		if _, err := pool.Exec(ctx, `INSERT INTO codes (code, promotion_id, user_id, issuance_id, issued_at)
SELECT $2 || lpad(i::text, 12, '0'), $1, CASE WHEN i <= $4 THEN 'early' END, CASE WHEN i <= $4 THEN 'early' END,
	CASE WHEN i <= $4 THEN now() END
FROM generate_series(1, $3::int) i ORDER BY i`, p.ID, name, codes, issued); err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	fresh, late := create("F", 0), create("L", issued)
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE codes`); err != nil {
		t.Fatal(err)
	}
	// Pages of codes read, from the statistics each backend flushes at
	// most 10 s after its last transaction.
	blocks := func() int64 {
		t.Helper()
		time.Sleep(11 * time.Second)
		var n int64
		if err := pool.QueryRow(ctx, `SELECT heap_blks_read + heap_blks_hit FROM pg_statio_user_tables
WHERE relid = 'codes'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := 0
	issue := func(id int64, runs int) time.Duration {
		t.Helper()
		var took []time.Duration
		for range runs {
			n++
			i := n
			start := time.Now()
			out, err := s.Issue(ctx, promo.IssueRequest{ID: fmt.Sprintf("i-%d-%d", id, i), EventID: fmt.Sprintf("e-%d-%d", id, i),
				PromotionID: id, UserID: fmt.Sprintf("u%d", i), Count: 5, Now: time.Now()})
			if err != nil || len(out.Issuance.Codes) != 5 {
				t.Fatalf("Issue(%d): %+v, %v", id, out, err)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		return took[len(took)/2]
	}
	f := issue(fresh, runs)
	issue(late, 1) // it may look for where to start
	before := blocks()
	l := issue(late, runs)
	read := blocks() - before
	t.Logf("median issuance of 5 codes: fresh pool %v, after %d of %d issued %v; %d pages of codes read by %d late issuances",
		f, issued, codes, l, read, runs)
	if read > 50*runs {
		t.Fatalf("%d late issuances read %d pages of codes (%d each): they read past the issued codes", runs, read, read/runs)
	}
}
