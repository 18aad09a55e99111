package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// vanity creates a vanity promotion of code.
func vanity(t *testing.T, st *sqlite.Store, code string, maxUses, perUser int) promo.Promotion {
	t.Helper()
	p, _, err := st.CreatePromotion(context.Background(), promo.NewPromotion{Promotion: promo.Promotion{Name: code,
		Kind: promo.KindVanity, VanityCode: code, MaxUsagePerCode: maxUses, PerUserLimit: perUser}})
	if err != nil {
		t.Fatalf("create %s: %v", code, err)
	}
	return p
}

var ids struct {
	sync.Mutex
	n int
}

func nextID(prefix string) string {
	ids.Lock()
	defer ids.Unlock()
	ids.n++
	return fmt.Sprintf("%s-%08d", prefix, ids.n)
}

var redeemReq = storetest.KeyedReq

// TestGroupCommitExact: storetest.GroupCommitExact through the one writer's
// groups.
func TestGroupCommitExact(t *testing.T) {
	st := open(t)
	storetest.GroupCommitExact(t, st, func() (int64, int64) {
		g, m, _, _ := st.GroupStats()
		return g, m
	})
}

// TestGroupCommitFailingMember: one group (the write lock is held by
// another connection while the members gather) holds redemptions that
// succeed, refusals, a replay and members that fail half-way (their
// redemption id is taken: the audit row's insert fails after the key, the
// code and the allowance were written). The failing members are rolled back
// alone, to their savepoint: nothing of theirs is left (a retry of the same
// key and user redeems), and the others' redemptions and refusals commit.
func TestGroupCommitFailingMember(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "promocodes.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	p := vanity(t, st, "GCF", 1000, 1)
	first, err := st.Redeem(ctx, redeemReq("GCF", "early", ""))
	if err != nil || first.Refused != "" {
		t.Fatalf("first redemption: %+v, %v", first, err)
	}
	replayed := redeemReq("GCF", "keyed", "kr")
	if out, err := st.Redeem(ctx, replayed); err != nil || out.Refused != "" {
		t.Fatalf("keyed redemption: %+v, %v", out, err)
	}

	// Another connection takes the write lock: the next redemption's group
	// waits for it, and the rest gather behind.
	blocker, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	conn, err := blocker.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	g0, _, _, _ := st.GroupStats()
	s0, _ := st.GroupStatements()

	type member struct {
		req  promo.RedeemRequest
		want string // ok, fail, refused, replay
	}
	var ms []member
	ms = append(ms, member{redeemReq("GCF", "lead", ""), "ok"}) // the group of one that waits for the lock
	for i := range 30 {
		req := redeemReq("GCF", fmt.Sprintf("m%02d", i), fmt.Sprintf("km%02d", i))
		want := "ok"
		switch i % 6 {
		case 1:
			req.ID = first.Redemption.ID // taken: fails at the audit row
			want = "fail"
		case 4:
			req.UserID, req.RequestHash = "early", "h:GCF:early" // early's one use is spent
			want = "refused"
		}
		ms = append(ms, member{req, want})
	}
	ms = append(ms, member{replayed, "replay"})
	type answer struct {
		out promo.RedeemOutcome
		err error
	}
	answers := make([]answer, len(ms))
	var (
		wg       sync.WaitGroup
		answered atomic.Int32
	)
	wg.Go(func() {
		answers[0].out, answers[0].err = st.Redeem(ctx, ms[0].req)
		answered.Add(1)
	})
	for {
		// The lead's group is being written: waiting for the lock.
		if _, _, _, busy := st.GroupStats(); busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < len(ms); i++ {
		wg.Go(func() {
			answers[i].out, answers[i].err = st.Redeem(ctx, ms[i].req)
			answered.Add(1)
		})
	}
	for {
		if _, _, pending, _ := st.GroupStats(); pending == len(ms)-1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := answered.Load(); n != 0 {
		t.Fatalf("%d members answered before their group could commit", n)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	g1, _, _, _ := st.GroupStats()
	if g1-g0 != 2 {
		t.Fatalf("%d groups written, want 2 (the lead, then the %d that gathered)", g1-g0, len(ms)-1)
	}
	// The group with failing members was written again, a savepoint each.
	if s1, _ := st.GroupStatements(); s1-s0 != int64(len(ms)-1) {
		t.Errorf("%d savepoints taken, want %d (the failing group, written again member by member)", s1-s0, len(ms)-1)
	}

	okCount := 2 // early, keyed
	for i, m := range ms {
		out, err := answers[i].out, answers[i].err
		switch m.want {
		case "ok":
			if err != nil || out.Refused != "" || out.Replayed {
				t.Errorf("member %d (%s): %+v, %v: want redeemed", i, m.req.UserID, out, err)
			}
			okCount++
		case "fail":
			if err == nil {
				t.Errorf("member %d (%s): %+v: want an error (its id is taken)", i, m.req.UserID, out)
			}
		case "refused":
			if err != nil || out.Refused != promo.ReasonUserLimitReached {
				t.Errorf("member %d (%s): %+v, %v: want user_limit_reached", i, m.req.UserID, out, err)
			}
		case "replay":
			if err != nil || !out.Replayed {
				t.Errorf("member %d: %+v, %v: want the replay", i, out, err)
			}
		}
	}
	rows, per := storetest.AuditRows(t, st, p.ID)
	cs, err := st.CodeState(ctx, "GCF", "")
	if err != nil {
		t.Fatal(err)
	}
	if rows != okCount || cs.Used != okCount {
		t.Errorf("%d redeemed, %d audit rows, %d uses: want them equal (failed members must leave nothing)", okCount, rows, cs.Used)
	}
	// A failed member left no key, no allowance use: its retry redeems.
	for i, m := range ms {
		if m.want != "fail" {
			continue
		}
		if per[m.req.UserID] != 0 {
			t.Errorf("member %d (%s): %d audit rows after its failure", i, m.req.UserID, per[m.req.UserID])
		}
		retry := m.req
		retry.ID, retry.EventID = nextID("r"), nextID("e")
		out, err := st.Redeem(ctx, retry)
		if err != nil || out.Refused != "" || out.Replayed {
			t.Errorf("retry of member %d (%s, key %s): %+v, %v: want a fresh redemption", i, m.req.UserID,
				m.req.IdempotencyKey, out, err)
		}
	}
}

// TestGroupCommitQuietGoesAlone: a redemption that finds no group being
// written is written at once, in a group of its own (no wait for company).
func TestGroupCommitQuietGoesAlone(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	vanity(t, st, "GCQ", 100, 0)
	g0, m0, _, _ := st.GroupStats()
	for i := range 5 {
		start := time.Now()
		out, err := st.Redeem(ctx, redeemReq("GCQ", fmt.Sprintf("q%d", i), ""))
		if err != nil || out.Refused != "" {
			t.Fatalf("redeem: %+v, %v", out, err)
		}
		t.Logf("redemption %d alone: %s", i, time.Since(start).Round(time.Microsecond))
	}
	g1, m1, _, _ := st.GroupStats()
	if g1-g0 != 5 || m1-m0 != 5 {
		t.Errorf("5 redemptions one after another: %d groups of %d members, want 5 of 5", g1-g0, m1-m0)
	}
}

// TestGroupCommitHonoursTheContext: a group whose members have all gone
// (their contexts ended) stops waiting for the write lock, as a lone
// Redeem does, instead of holding the request for the group's own bound.
func TestGroupCommitHonoursTheContext(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "promocodes.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path, BusyTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	vanity(t, st, "GCX", 100, 0)
	blocker, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	conn, err := blocker.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "ROLLBACK") //nolint:errcheck // the test's end
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = st.Redeem(short, redeemReq("GCX", fmt.Sprintf("x%d", i), "")) })
	}
	wg.Wait()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("redemptions whose context ended after 300ms returned after %s", took.Round(time.Millisecond))
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("redemption %d: no error while the write lock was held", i)
		} else if !errors.Is(err, context.DeadlineExceeded) {
			// The API answers a passed deadline 503 (try again), a bare
			// cancellation 500.
			t.Errorf("redemption %d: %v; want its own context's deadline (context.DeadlineExceeded)", i, err)
		}
	}
}

// TestGroupCommitStatementsPerMember: groups of redemptions that all
// succeed take no savepoint (a member is only undone when one fails), and a
// member runs two statements (the code's use with its holds, the
// allowance's with the user's holds), one more with an idempotency key;
// the audit rows and the events are the group's multi-row inserts, two to
// fourteen a group (a statement per power of two of its members, each).
func TestGroupCommitStatementsPerMember(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	vanity(t, st, "GCS", 100_000, 3)
	g0, m0, _, _ := st.GroupStats()
	s0, n0 := st.GroupStatements()
	i0 := st.GroupInserts()
	var wg sync.WaitGroup
	errs := make(chan error, 32*20)
	for w := range 32 {
		wg.Go(func() {
			for r := range 20 {
				key := ""
				if r%2 == 0 {
					key = fmt.Sprintf("ks-%d-%d", w, r)
				}
				out, err := st.Redeem(ctx, redeemReq("GCS", fmt.Sprintf("s%d-%d", w, r/3), key))
				if err == nil && out.Refused != "" {
					err = fmt.Errorf("refused %s", out.Refused)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	g1, m1, _, _ := st.GroupStats()
	s1, n1 := st.GroupStatements()
	t.Logf("%d redemptions in %d groups: %d savepoints, %d statements run", m1-m0, g1-g0, s1-s0, n1-n0)
	if g1-g0 < 20 || g1-g0 >= m1-m0 {
		t.Fatalf("%d groups for %d redemptions: want at least 20 groups, of more than one member on average", g1-g0, m1-m0)
	}
	if keyed := m1 - m0; n1-n0 != 2*(m1-m0)+keyed/2 {
		t.Errorf("%d statements run for %d redemptions, half of them with a key: want %d (2 each, 3 with a key)",
			n1-n0, m1-m0, 2*(m1-m0)+keyed/2)
	}
	if i1, groups := st.GroupInserts(), g1-g0; i1-i0 < 2*groups || i1-i0 > 14*groups {
		t.Errorf("%d multi-row inserts for %d groups: want 2 to 14 a group", i1-i0, groups)
	}
	if s1-s0 != 0 {
		t.Errorf("%d savepoints taken though no member failed: want none", s1-s0)
	}
}

// TestGroupCommitConflictWritesNothing: a member answered with an error
// before it wrote anything (an Idempotency-Key reused for another request:
// idempotency_conflict) leaves the group as it is; the group is not
// written again member by member, so a client reusing keys cannot make the
// writer do a whole group's work twice.
func TestGroupCommitConflictWritesNothing(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	vanity(t, st, "GCK", 100_000, 0)
	first := redeemReq("GCK", "owner", "kc")
	if out, err := st.Redeem(ctx, first); err != nil || out.Refused != "" {
		t.Fatalf("first: %+v, %v", out, err)
	}
	s0, _ := st.GroupStatements()
	g0, _, _, _ := st.GroupStats()
	var (
		wg        sync.WaitGroup
		conflicts atomic.Int32
		redeemed  atomic.Int32
	)
	for w := range 32 {
		wg.Go(func() {
			for r := range 10 {
				req := redeemReq("GCK", fmt.Sprintf("k%d-%d", w, r), "")
				if r%3 == 0 {
					req = redeemReq("GCK", "other", "kc") // the key, another request
				}
				out, err := st.Redeem(ctx, req)
				switch {
				case r%3 == 0 && promo.ReasonOf(err) == promo.ReasonIdempotencyConflict:
					conflicts.Add(1)
				case r%3 != 0 && err == nil && out.Refused == "":
					redeemed.Add(1)
				default:
					t.Errorf("%s with key %q: %+v, %v", req.UserID, req.IdempotencyKey, out, err)
				}
			}
		})
	}
	wg.Wait()
	g1, _, _, _ := st.GroupStats()
	s1, _ := st.GroupStatements()
	t.Logf("%d conflicts, %d redeemed in %d groups: %d savepoints", conflicts.Load(), redeemed.Load(), g1-g0, s1-s0)
	if conflicts.Load() != 32*4 || redeemed.Load() != 32*6 {
		t.Fatalf("%d conflicts, %d redeemed: want %d and %d", conflicts.Load(), redeemed.Load(), 32*4, 32*6)
	}
	if s1 != s0 {
		t.Errorf("%d savepoints taken: a conflict, which writes nothing, made its group be written again", s1-s0)
	}
	rows, _ := storetest.AuditRows(t, st, vanityID(t, st, "GCK"))
	if rows != 1+32*6 {
		t.Errorf("%d audit rows, want %d", rows, 1+32*6)
	}
}

// vanityID is the promotion id of a vanity code.
func vanityID(t *testing.T, st *sqlite.Store, code string) int64 {
	t.Helper()
	cs, err := st.CodeState(context.Background(), code, "")
	if err != nil {
		t.Fatal(err)
	}
	return cs.Promotion.ID
}
