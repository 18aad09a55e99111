package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// openGroup returns a migrated store whose redemption groups hold up to
// size members, flights of them at once.
func openGroup(t *testing.T, size, flights int) *postgres.Store {
	t.Helper()
	return openGroupIn(t, postgrestest.Schema(t), size, flights)
}

// openGroupIn is openGroup on a given schema: two stores on one schema are
// two replicas.
func openGroupIn(t *testing.T, schema string, size, flights int) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{DSN: postgrestest.DSN(t), Schema: schema,
		MaxConns: 8, RedeemGroup: size, RedeemFlights: flights})
	return storetest.Migrated(t, s, err)
}

func gcVanity(t *testing.T, st *postgres.Store, code string, maxUses, perUser int) promo.Promotion {
	t.Helper()
	p, _, err := st.CreatePromotion(context.Background(), promo.NewPromotion{Promotion: promo.Promotion{Name: code,
		Kind: promo.KindVanity, VanityCode: code, MaxUsagePerCode: maxUses, PerUserLimit: perUser}})
	if err != nil {
		t.Fatalf("create %s: %v", code, err)
	}
	return p
}

var gcIDs atomic.Int64

func gcReq(code, user, key string) promo.RedeemRequest {
	n := gcIDs.Add(1)
	req := promo.RedeemRequest{ID: fmt.Sprintf("gr-%08d", n), EventID: fmt.Sprintf("ge-%08d", n), Code: code,
		UserID: user, Now: time.Now().UTC(), IdempotencyKey: key}
	if key != "" {
		req.RequestHash = "h:" + code + ":" + user
	}
	return req
}

type gcAnswer struct {
	req promo.RedeemRequest
	out promo.RedeemOutcome
	err error
}

// TestGroupCommitExact: storetest.GroupCommitExact with groups in flight
// at once.
func TestGroupCommitExact(t *testing.T) {
	st := openGroup(t, 16, 3)
	storetest.GroupCommitExact(t, st, func() (int64, int64) {
		g, m, _, _, _ := st.GroupStats()
		return g, m
	})
	_, _, _, _, fb := st.GroupStats()
	t.Logf("%d groups fell back to one by one", fb)
}

// lockCodes opens a transaction holding the code rows' locks: a redemption
// of one of them waits until release.
func lockCodes(t *testing.T, st *postgres.Store, codes ...string) (release func()) {
	release, _ = lockCodesBy(t, st, codes...)
	return release
}

// lockCodesBy is lockCodes that also returns the locking session's backend
// pid, so that a test can count the sessions its lock blocks and no other
// test's (pg_blocking_pids).
func lockCodesBy(t *testing.T, st *postgres.Store, codes ...string) (release func(), pid int32) {
	t.Helper()
	ctx := context.Background()
	tx, err := postgres.Pool(st).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	for _, c := range codes {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM codes WHERE code = $1 FOR UPDATE`, c); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := tx.Commit(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(release)
	return release, pid
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// gather starts a redemption of each request in order, each once the one
// before it is queued, while every flight is blocked on a locked code; it
// returns the answers' channel index by index.
func gather(t *testing.T, st *postgres.Store, reqs []promo.RedeemRequest) []chan gcAnswer {
	t.Helper()
	return gatherMore(t, st, 0, reqs)
}

// TestGroupCommitFailingMember: one group holds redemptions that succeed,
// a refusal, and a member that fails half-way (its redemption id is taken:
// the audit row's insert fails after its key, code and allowance were
// written). The group's statement fails whole and the members are redeemed
// one by one: the failing member is answered with its error and nothing of
// it is left, the others are answered as alone.
func TestGroupCommitFailingMember(t *testing.T) {
	ctx := context.Background()
	st := openGroup(t, 64, 1)
	p := gcVanity(t, st, "GCF", 1000, 1)
	_ = gcVanity(t, st, "GCBLOCK", 1000, 0)
	first, err := st.Redeem(ctx, gcReq("GCF", "early", ""))
	if err != nil || first.Refused != "" {
		t.Fatalf("first: %+v, %v", first, err)
	}
	release := lockCodes(t, st, "GCBLOCK")
	blocker := inFlight(t, st, gcReq("GCBLOCK", "b", "")) // the one flight, waiting
	bad := gcReq("GCF", "bad", "kbad")
	bad.ID = first.Redemption.ID // taken
	reqs := []promo.RedeemRequest{gcReq("GCF", "u1", "k1"), bad, gcReq("GCF", "early", ""), gcReq("NOPE", "u2", ""),
		gcReq("GCF", "u3", "")}
	chans := gather(t, st, reqs)
	g0, _, _, _, fb0 := st.GroupStats()
	release()
	if an := <-blocker; an.err != nil || an.out.Refused != "" {
		t.Fatalf("blocker: %+v, %v", an.out, an.err)
	}
	var got []gcAnswer
	for _, ch := range chans {
		got = append(got, <-ch)
	}
	g1, _, _, _, fb1 := st.GroupStats()
	if g1-g0 != 2 || fb1-fb0 != 1 {
		t.Fatalf("%d groups, %d fallbacks: want the blocker's and the 5 in one group that fell back", g1-g0, fb1-fb0)
	}
	if an := got[0]; an.err != nil || an.out.Refused != "" {
		t.Errorf("u1: %+v, %v; want redeemed", an.out, an.err)
	}
	if an := got[1]; an.err == nil || promo.Code(an.err) != promo.EInternal {
		t.Errorf("bad (taken id): %+v, %v; want an internal error", an.out, an.err)
	}
	if an := got[2]; an.err != nil || an.out.Refused != promo.ReasonUserLimitReached {
		t.Errorf("early again: %+v, %v; want user_limit_reached", an.out, an.err)
	}
	if an := got[3]; an.err != nil || an.out.Refused != promo.ReasonCodeNotFound {
		t.Errorf("NOPE: %+v, %v; want code_not_found", an.out, an.err)
	}
	if an := got[4]; an.err != nil || an.out.Refused != "" {
		t.Errorf("u3: %+v, %v; want redeemed", an.out, an.err)
	}
	// Nothing of the failed member is left: its key and user redeem now.
	retry := gcReq("GCF", "bad", "kbad")
	if out, err := st.Redeem(ctx, retry); err != nil || out.Refused != "" || out.Replayed {
		t.Errorf("retry of the failed member: %+v, %v; want a fresh redemption", out, err)
	}
	rows, _ := storetest.AuditRows(t, st, p.ID)
	cs, err := st.CodeState(ctx, "GCF", "")
	if err != nil || rows != 4 || cs.Used != 4 {
		t.Errorf("GCF: %d audit rows, %d uses (%v): want 4 and 4", rows, cs.Used, err)
	}
}

// TestGroupCommitSameKey: members of one group with the same idempotency
// key are answered as two calls one after the other: the first redeems,
// the same request again is its replay, another request with that key a
// conflict, and a refused first is replayed as refused.
func TestGroupCommitSameKey(t *testing.T) {
	ctx := context.Background()
	st := openGroup(t, 64, 1)
	p := gcVanity(t, st, "GCK", 1000, 1)
	_ = gcVanity(t, st, "GCKBLOCK", 1000, 0)
	seen := gcReq("GCK", "seen", "")
	if out, err := st.Redeem(ctx, seen); err != nil || out.Refused != "" {
		t.Fatalf("seen: %+v, %v", out, err)
	}
	release := lockCodes(t, st, "GCKBLOCK")
	blocker := inFlight(t, st, gcReq("GCKBLOCK", "b", ""))
	a := gcReq("GCK", "ua", "ka")
	a2 := a
	a2.ID, a2.EventID = "other-id", "other-event"
	other := gcReq("GCK", "ub", "ka") // another request, same key
	refused := gcReq("GCK", "seen", "kr")
	refused2 := refused
	refused2.ID, refused2.EventID = "other-id-2", "other-event-2"
	reqs := []promo.RedeemRequest{a, a2, other, refused, refused2}
	chans := gather(t, st, reqs)
	g0, _, _, _, fb0 := st.GroupStats()
	release()
	<-blocker
	var got []gcAnswer
	for _, ch := range chans {
		got = append(got, <-ch)
	}
	if g1, _, _, _, fb1 := st.GroupStats(); g1-g0 != 2 || fb1 != fb0 {
		t.Fatalf("%d groups, %d fallbacks: want the blocker's and one of 5, no fallback", g1-g0, fb1-fb0)
	}
	if an := got[0]; an.err != nil || an.out.Refused != "" || an.out.Replayed || an.out.Redemption.ID != a.ID {
		t.Errorf("first of ka: %+v, %v; want redeemed as %s", an.out, an.err, a.ID)
	}
	if an := got[1]; an.err != nil || !an.out.Replayed || an.out.Redemption.ID != a.ID {
		t.Errorf("same request again: %+v, %v; want the replay of %s", an.out, an.err, a.ID)
	}
	if an := got[2]; promo.ReasonOf(an.err) != promo.ReasonIdempotencyConflict {
		t.Errorf("another request with ka: %+v, %v; want idempotency_conflict", an.out, an.err)
	}
	if an := got[3]; an.err != nil || an.out.Refused != promo.ReasonUserLimitReached || an.out.Replayed {
		t.Errorf("refused first of kr: %+v, %v; want user_limit_reached", an.out, an.err)
	}
	if an := got[4]; an.err != nil || an.out.Refused != promo.ReasonUserLimitReached || !an.out.Replayed {
		t.Errorf("kr again: %+v, %v; want the replayed refusal", an.out, an.err)
	}
	if rows, _ := storetest.AuditRows(t, st, p.ID); rows != 2 {
		t.Errorf("GCK: %d audit rows, want 2", rows)
	}
}

// TestGroupCommitDeadlockFallsBack: two replicas (two stores on one
// database) each write a group that takes two idempotency keys in crossed
// order (replica A: code DLA1 with key KA, then DLA2 with KB; replica B:
// DLB1 with KB, then DLB2 with KA), each paused on its first code until
// both hold their first key. PostgreSQL aborts one group (40P01); its
// members are redeemed one by one and answered as if they came after the
// other group: replays of its redemptions. No member sees the deadlock.
func TestGroupCommitDeadlockFallsBack(t *testing.T) {
	ctx := context.Background()
	schema := postgrestest.Schema(t)
	a, b := openGroupIn(t, schema, 2, 1), openGroupIn(t, schema, 2, 1)
	got, groups, fallbacks, deadlocks := crossedKeys(t, a, b)
	t.Logf("%d groups, %d fallbacks, %d deadlocks in the database", groups, fallbacks, deadlocks)
	if groups != 4 || fallbacks != 1 || deadlocks == 0 {
		t.Fatalf("%d groups, %d fallbacks, %d deadlocks: want 4 groups (2 alone, 2 of 2), one deadlocked and fell back",
			groups, fallbacks, deadlocks)
	}
	checkCrossedKeys(t, ctx, a, got)
}

// TestGroupCommitGroupsShareNoRows: in one process, the same crossed
// groups cannot deadlock: a member that shares a code, a user or an
// idempotency key with a group in flight waits for a later group, so the
// two groups run one after the other (no fallback, no deadlock), with the
// same answers.
func TestGroupCommitGroupsShareNoRows(t *testing.T) {
	ctx := context.Background()
	st := openGroup(t, 2, 2)
	got, groups, fallbacks, deadlocks := crossedKeys(t, st, st)
	t.Logf("%d groups, %d fallbacks, %d deadlocks in the database", groups, fallbacks, deadlocks)
	if fallbacks != 0 || deadlocks != 0 || groups < 4 {
		t.Fatalf("%d groups, %d fallbacks, %d deadlocks: want no fallback and no deadlock", groups, fallbacks, deadlocks)
	}
	checkCrossedKeys(t, ctx, st, got)
}

// crossedKeys redeems DLA1 (key KA) and DLA2 (KB) through a, DLB1 (KB) and
// DLB2 (KA) through b, each pair gathered into one group while a's and b's
// flights are blocked (on DLZ1 and DLZ2), both groups then paused on their
// first code until both are waiting for a lock (or, when one process holds
// both, until the first is). It returns the four answers and the groups,
// fallbacks and database deadlocks it caused.
func crossedKeys(t *testing.T, a, b *postgres.Store) (got []gcAnswer, groups, fallbacks, deadlocks int64) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []string{"DLA1", "DLA2", "DLB1", "DLB2", "DLZ1", "DLZ2"} {
		gcVanity(t, a, c, 1000, 0)
	}
	stats := func() (g, fb int64) {
		for _, st := range []*postgres.Store{a, b} {
			sg, _, _, _, sfb := st.GroupStats()
			g, fb = g+sg, fb+sfb
			if a == b {
				break
			}
		}
		return g, fb
	}
	dl := func() (n int64) {
		if err := postgres.Pool(a).QueryRow(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	dl0 := dl()
	releaseZ := lockCodes(t, a, "DLZ1", "DLZ2")
	releaseFirst, holder := lockCodesBy(t, a, "DLA1", "DLB1")
	z := []chan gcAnswer{inFlight(t, a, gcReq("DLZ1", "z1", "")), inFlight(t, b, gcReq("DLZ2", "z2", ""))}
	req := func(code, key string) promo.RedeemRequest {
		r := gcReq(code, "u-"+code, key)
		r.RequestHash = "h:" + key // one request per key: a replay, not a conflict
		return r
	}
	chans := gather(t, a, []promo.RedeemRequest{req("DLA1", "KA"), req("DLA2", "KB")})
	if a == b {
		chans = append(chans, gatherMore(t, b, 2, []promo.RedeemRequest{req("DLB1", "KB"), req("DLB2", "KA")})...)
	} else {
		chans = append(chans, gather(t, b, []promo.RedeemRequest{req("DLB1", "KB"), req("DLB2", "KA")})...)
	}
	g0, fb0 := stats()
	releaseZ()
	for _, ch := range z {
		if an := <-ch; an.err != nil {
			t.Fatal(an.err)
		}
	}
	want := 2
	if a == b {
		want = 1 // the second group waits for the first
	}
	waitFor(t, "the groups waiting on a code", func() bool {
		var n int
		// Only the sessions this test's lock blocks: other tests on the
		// same database may be waiting in redeem_codes too.
		err := postgres.Pool(a).QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%redeem_codes%'`, holder).Scan(&n)
		return err == nil && n == want
	})
	releaseFirst()
	for _, ch := range chans {
		got = append(got, <-ch)
	}
	g1, fb1 := stats()
	return got, g1 - g0, fb1 - fb0, dl() - dl0
}

// gatherMore is gather for a store that already has queued members.
func gatherMore(t *testing.T, st *postgres.Store, queued int, reqs []promo.RedeemRequest) []chan gcAnswer {
	t.Helper()
	out := make([]chan gcAnswer, len(reqs))
	for i, req := range reqs {
		out[i] = make(chan gcAnswer, 1)
		go func() {
			o, err := st.Redeem(context.Background(), req)
			out[i] <- gcAnswer{req, o, err}
		}()
		waitFor(t, fmt.Sprintf("member %d queued", queued+i), func() bool {
			_, _, p, _, _ := st.GroupStats()
			return p == queued+i+1
		})
	}
	return out
}

// checkCrossedKeys: each key redeemed once and replayed once, the codes
// used and audited exactly.
func checkCrossedKeys(t *testing.T, ctx context.Context, st *postgres.Store, got []gcAnswer) {
	t.Helper()
	fresh, replays := map[string]string{}, 0
	for _, an := range got {
		if an.err != nil {
			t.Fatalf("%s with %s: %v", an.req.Code, an.req.IdempotencyKey, an.err)
		}
		if an.out.Refused != "" {
			t.Fatalf("%s with %s: refused %s", an.req.Code, an.req.IdempotencyKey, an.out.Refused)
		}
		if !an.out.Replayed {
			fresh[an.req.IdempotencyKey] = an.out.Redemption.ID
		}
	}
	for _, an := range got {
		if an.out.Replayed {
			replays++
			if an.out.Redemption.ID != fresh[an.req.IdempotencyKey] {
				t.Errorf("%s with %s: the replay of %s, want of %s", an.req.Code, an.req.IdempotencyKey,
					an.out.Redemption.ID, fresh[an.req.IdempotencyKey])
			}
		}
	}
	if len(fresh) != 2 || replays != 2 {
		t.Errorf("%d keys redeemed, %d replays: want 2 and 2", len(fresh), replays)
	}
	var used int
	if err := postgres.Pool(st).QueryRow(ctx, `SELECT sum(used) FROM codes WHERE code LIKE 'DL%'`).Scan(&used); err != nil || used != 4 {
		t.Errorf("uses of the DL codes: %d (%v), want 4 (2 Z, 2 redeemed)", used, err)
	}
	var rows int
	if err := postgres.Pool(st).QueryRow(ctx, `SELECT count(*) FROM redemptions WHERE code LIKE 'DL%'`).Scan(&rows); err != nil || rows != 4 {
		t.Errorf("audit rows of the DL codes: %d (%v), want 4", rows, err)
	}
}

// inFlight starts a redemption of req and returns once it is a group of
// its own in flight (its code locked by lockCodes, it waits there).
func inFlight(t *testing.T, st *postgres.Store, req promo.RedeemRequest) chan gcAnswer {
	t.Helper()
	n := postgres.GroupInflight(st)
	ch := make(chan gcAnswer, 1)
	go func() {
		o, err := st.Redeem(context.Background(), req)
		ch <- gcAnswer{req, o, err}
	}()
	waitFor(t, req.Code+" in flight", func() bool { return postgres.GroupInflight(st) == n+1 })
	return ch
}

// TestGroupCommitRulesMemberGoesAlone: a member whose promotion has
// eligibility rules is left out of its group's statement and redeemed alone
// on the statement path, so the group does not fall back (before, its PC001
// aborted the group: anyone redeeming such a code could keep every group it
// joined from committing as one).
func TestGroupCommitRulesMemberGoesAlone(t *testing.T) {
	ctx := context.Background()
	st := openGroup(t, 64, 1)
	if _, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "GCRULES",
		Kind: promo.KindVanity, VanityCode: "GCRULES", MaxUsagePerCode: 1000, PerUserLimit: 0,
		Eligibility: &promo.Eligibility{Countries: []string{"DE"}}}}); err != nil {
		t.Fatal(err)
	}
	p := gcVanity(t, st, "GCPLAIN", 1000, 0)
	_ = gcVanity(t, st, "GCBLOCK", 1000, 0)
	release := lockCodes(t, st, "GCBLOCK")
	blocker := inFlight(t, st, gcReq("GCBLOCK", "b", ""))
	chans := gather(t, st, []promo.RedeemRequest{gcReq("GCPLAIN", "u1", ""), gcReq("GCRULES", "x", ""),
		gcReq("GCPLAIN", "u2", "k2")})
	g0, m0, _, _, fb0 := st.GroupStats()
	release()
	if an := <-blocker; an.err != nil || an.out.Refused != "" {
		t.Fatalf("blocker: %+v, %v", an.out, an.err)
	}
	var got []gcAnswer
	for _, ch := range chans {
		got = append(got, <-ch)
	}
	g1, m1, _, _, fb1 := st.GroupStats()
	if g1-g0 != 2 || m1-m0 != 4 || fb1-fb0 != 0 {
		t.Fatalf("%d groups of %d members, %d fallbacks: want the blocker's and one of 3, none fell back",
			g1-g0, m1-m0, fb1-fb0)
	}
	for _, i := range []int{0, 2} {
		if an := got[i]; an.err != nil || an.out.Refused != "" {
			t.Errorf("%s for %s: %+v, %v; want redeemed", an.req.Code, an.req.UserID, an.out, an.err)
		}
	}
	if an := got[1]; an.err != nil || an.out.Refused != promo.ReasonNotEligible {
		t.Errorf("GCRULES without a country: %+v, %v; want not_eligible", an.out, an.err)
	}
	if rows, _ := storetest.AuditRows(t, st, p.ID); rows != 2 {
		t.Errorf("GCPLAIN: %d audit rows, want 2", rows)
	}
	if cs, err := st.CodeState(ctx, "GCRULES", ""); err != nil || cs.Used != 0 {
		t.Errorf("GCRULES: %d uses (%v), want 0", cs.Used, err)
	}
}
