package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// RedemptionStore is the redemption half of a store.
type RedemptionStore interface {
	CodeState(ctx context.Context, code, userID string) (promo.CodeState, error)
	Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error)
	RedeemBatch(ctx context.Context, reqs []promo.RedeemRequest) ([]promo.RedeemResult, error)
	Rollback(ctx context.Context, req promo.RollbackRequest) (r promo.Redemption, replayed bool, err error)
	Redemptions(ctx context.Context, f promo.RedemptionFilter) ([]promo.Redemption, error)
	ExportRedemptions(ctx context.Context, f promo.RedemptionFilter, fn func(promo.Redemption) error) error
	ClaimEvents(ctx context.Context, limit int, lease time.Duration) ([]promo.OutboxEvent, error)
	MarkEventsPublished(ctx context.Context, seqs []int64) error
	PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error)
	CodeSpaces(ctx context.Context, afterID int64, limit int) ([]promo.Promotion, error)
	SetPromotionActive(ctx context.Context, id int64, active bool) error
}

var idCounter atomic.Uint64

// newID returns a unique, increasing id shaped like the API's (time-ordered
// text), so audit paging order is the order of creation.
func newID() string {
	return fmt.Sprintf("%016x-%08d", time.Now().UnixNano(), idCounter.Add(1))
}

// redeemReq builds a redemption request at now.
func redeemReq(code, user string) promo.RedeemRequest {
	return promo.RedeemRequest{ID: newID(), EventID: newID(), Code: code, UserID: user,
		Now: time.Now().UTC()}
}

func (h *harness) redeem(req promo.RedeemRequest) promo.RedeemOutcome {
	h.t.Helper()
	out, err := h.s.Redeem(h.ctx, req)
	if err != nil {
		h.t.Fatalf("Redeem(%q, %q): %v", req.Code, req.UserID, err)
	}
	return out
}

func (h *harness) used(code string) int {
	h.t.Helper()
	st, err := h.s.CodeState(h.ctx, code, "")
	if err != nil {
		h.t.Fatalf("CodeState(%q): %v", code, err)
	}
	return st.Used
}

// generatedCodes creates a generated promotion of n committed codes and
// returns them; edit changes the request first.
func (h *harness) generatedCodes(name string, n int, edit func(np *promo.NewPromotion)) (promo.Promotion, []string) {
	h.t.Helper()
	np := h.generated(name, int64(n), int64(n))
	if edit != nil {
		edit(&np)
	}
	p := h.create(np)
	b := h.batches(p.ID)[0]
	h.commit(h.chunk(b, 0, n))
	codes := make([]string, n)
	for i := range codes {
		codes[i] = h.code(b.SeqStart + uint64(i))
	}
	return p, codes
}

func wantRefused(t *testing.T, what string, out promo.RedeemOutcome, reason promo.Reason) {
	t.Helper()
	if out.Refused != reason {
		t.Fatalf("%s: outcome %+v, want refusal %q", what, out, reason)
	}
}

func testRedeem(t *testing.T, h *harness) {
	p, codes := h.generatedCodes("redeem", 10, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 3, 0
	})
	code := codes[4]
	for i := 1; i <= 3; i++ {
		req := redeemReq(code, fmt.Sprintf("user-%d", i))
		req.OrderID, req.Metadata = "order-"+req.UserID, json.RawMessage(`{"cart":42}`)
		out := h.redeem(req)
		r := out.Redemption
		if out.Refused != "" || out.Replayed || r.ID != req.ID || r.Code != code || r.PromotionID != p.ID ||
			r.UserID != req.UserID || r.OrderID != req.OrderID || string(r.Metadata) != `{"cart":42}` ||
			r.UsesLeft != 3-i || !r.RedeemedAt.Equal(req.Now.Truncate(time.Microsecond)) {
			t.Fatalf("redemption %d = %+v, want uses left %d and the request's fields", i, out, 3-i)
		}
	}
	wantRefused(t, "a 4th use of a max-3 code", h.redeem(redeemReq(code, "user-4")), promo.ReasonCodeExhausted)
	if u := h.used(code); u != 3 {
		t.Errorf("used = %d after 3 redemptions and a refusal, want 3", u)
	}
	if u := h.used(codes[5]); u != 0 {
		t.Errorf("a neighbour code's used = %d, want 0", u)
	}
	wantRefused(t, "an unknown code", h.redeem(redeemReq("N"+h.tag+"NOSUCHCODE", "u")), promo.ReasonCodeNotFound)

	st, err := h.s.CodeState(h.ctx, code, "user-1")
	if err != nil || st.Code != code || st.Promotion.ID != p.ID || st.Used != 3 || st.UsesLeft() != 0 ||
		!st.Active || st.UserUsed != 0 || st.Promotion.MaxUsagePerCode != 3 {
		t.Errorf("CodeState = %+v, %v", st, err)
	}
	if got := st.Status(time.Now(), true); got != promo.ReasonCodeExhausted {
		t.Errorf("status = %q, want %q", got, promo.ReasonCodeExhausted)
	}

	// Vanity codes take their promotion's max.
	v := "V" + h.tag + "ONCE"
	h.create(h.vanity(v, 1))
	if out := h.redeem(redeemReq(v, "u")); out.Refused != "" || out.Redemption.UsesLeft != 0 {
		t.Fatalf("redeem vanity: %+v", out)
	}
	wantRefused(t, "a used-up vanity code", h.redeem(redeemReq(v, "u2")), promo.ReasonCodeExhausted)

	// Requests the store refuses outright.
	bad := redeemReq(code, "")
	_, err = h.s.Redeem(h.ctx, bad)
	wantField(t, "Redeem without user", err, "userId")
}

// race runs fn n times at once and waits.
func race(n int, fn func(i int)) {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// testScopedKeys: one client key scoped to two owners (promo.ScopedKey) is
// two records, each replaying its own redemption; the audit trail shows the
// key as the client sent it.
func testScopedKeys(t *testing.T, h *harness) {
	code := "V" + h.tag + "SCOPED"
	p := h.create(h.vanity(code, 10))
	ids := map[string]string{}
	for _, owner := range []string{"mallory", "bob", "mallory", "bob"} {
		req := redeemReq(code, owner)
		req.IdempotencyKey, req.RequestHash = promo.ScopedKey(owner, "order-1"), "hash-"+owner
		out := h.redeem(req)
		if out.Refused != "" || out.Redemption.UserID != owner {
			t.Fatalf("%s's redemption under the key order-1: %+v", owner, out)
		}
		if id, ok := ids[owner]; ok != out.Replayed || (ok && out.Redemption.ID != id) {
			t.Fatalf("%s's redemption under the key order-1: %+v, want %s replayed: %v", owner, out, id, ok)
		}
		ids[owner] = out.Redemption.ID
	}
	if u := h.used(code); u != 2 {
		t.Errorf("used = %d after two owners' redemptions and their replays, want 2", u)
	}
	rs, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID})
	if err != nil || len(rs) != 2 {
		t.Fatalf("audit trail: %d rows, %v; want 2", len(rs), err)
	}
	for _, r := range rs {
		if r.IdempotencyKey != "order-1" {
			t.Errorf("%s's audit row shows the key %q, want it as sent (order-1)", r.UserID, r.IdempotencyKey)
		}
	}
}

func testRedeemConcurrent(t *testing.T, h *harness) {
	code := "V" + h.tag + "FIVE"
	np := h.vanity(code, 5)
	np.PerUserLimit = promo.UnlimitedPerUser
	h.create(np)
	var (
		mu       sync.Mutex
		ok, full int
		left     []int
	)
	const n = 24
	race(n, func(i int) {
		out, err := h.s.Redeem(h.ctx, redeemReq(code, fmt.Sprintf("u%d", i)))
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			t.Errorf("concurrent redemption: %v", err)
		case out.Refused == "":
			ok++
			left = append(left, out.Redemption.UsesLeft)
		case out.Refused == promo.ReasonCodeExhausted:
			full++
		default:
			t.Errorf("concurrent redemption refused %q", out.Refused)
		}
	})
	slices.Sort(left)
	if ok != 5 || full != n-5 || !slices.Equal(left, []int{0, 1, 2, 3, 4}) {
		t.Errorf("%d concurrent redemptions of a max-5 code: %d succeeded (uses left %v), %d exhausted; want 5 (0..4) and %d",
			n, ok, left, full, n-5)
	}
	if u := h.used(code); u != 5 {
		t.Errorf("used = %d, want 5", u)
	}
}

func testRedeemWindowAndSwitch(t *testing.T, h *harness) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	starts, expires := now.Add(time.Hour), now.Add(2*time.Hour)
	p, codes := h.generatedCodes("window", 2, func(np *promo.NewPromotion) {
		np.StartsAt, np.ExpiresAt = &starts, &expires
		np.MaxUsagePerCode, np.PerUserLimit = 10, 0
	})
	at := func(code string, t time.Time) promo.RedeemRequest {
		r := redeemReq(code, "u")
		r.Now = t
		return r
	}
	c := codes[0]
	wantRefused(t, "before startsAt", h.redeem(at(c, starts.Add(-time.Microsecond))), promo.ReasonNotStarted)
	if out := h.redeem(at(c, starts)); out.Refused != "" {
		t.Fatalf("at startsAt exactly: %+v, want a redemption (the window is [startsAt, expiresAt))", out)
	}
	if out := h.redeem(at(c, expires.Add(-time.Microsecond))); out.Refused != "" {
		t.Fatalf("just before expiresAt: %+v, want a redemption", out)
	}
	wantRefused(t, "at expiresAt", h.redeem(at(c, expires)), promo.ReasonExpired)
	wantRefused(t, "after expiresAt", h.redeem(at(c, expires.Add(time.Hour))), promo.ReasonExpired)
	if u := h.used(c); u != 2 {
		t.Errorf("used = %d after 2 redemptions and 3 refusals, want 2", u)
	}

	if err := h.s.SetPromotionActive(h.ctx, p.ID, false); err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	wantRefused(t, "deactivated", h.redeem(at(codes[1], starts.Add(time.Minute))), promo.ReasonDeactivated)
	st, err := h.s.CodeState(h.ctx, codes[1], "")
	if err != nil || st.Active || st.Status(starts.Add(time.Minute), false) != promo.ReasonDeactivated {
		t.Errorf("CodeState of a deactivated promotion's code = %+v, %v", st, err)
	}
	if err := h.s.SetPromotionActive(h.ctx, p.ID, true); err != nil {
		t.Fatalf("reactivate: %v", err)
	}
	if out := h.redeem(at(codes[1], starts.Add(time.Minute))); out.Refused != "" {
		t.Fatalf("after reactivation: %+v", out)
	}
	err = h.s.SetPromotionActive(h.ctx, p.ID+1_000_000, false)
	wantCode(t, "SetPromotionActive(unknown)", err, promo.ENotFound)
}

func testRedeemPerUserLimit(t *testing.T, h *harness) {
	p, codes := h.generatedCodes("peruser", 5, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 1, 2
	})
	for i := range 2 {
		if out := h.redeem(redeemReq(codes[i], "alice")); out.Refused != "" {
			t.Fatalf("alice's use %d: %+v", i+1, out)
		}
	}
	wantRefused(t, "alice's 3rd use", h.redeem(redeemReq(codes[2], "alice")), promo.ReasonUserLimitReached)
	if u := h.used(codes[2]); u != 0 {
		t.Errorf("the code of a refused user's attempt has used = %d, want 0 (the use is taken back)", u)
	}
	if out := h.redeem(redeemReq(codes[2], "bob")); out.Refused != "" {
		t.Fatalf("bob: %+v", out)
	}
	st, err := h.s.CodeState(h.ctx, codes[3], "alice")
	if err != nil || st.UserUsed != 2 || st.UserUsesLeft() != 0 || st.Status(time.Now(), true) != promo.ReasonUserLimitReached {
		t.Errorf("CodeState for alice = %+v, %v; want 2 uses, none left", st, err)
	}
	if st, err := h.s.CodeState(h.ctx, codes[3], "carol"); err != nil || st.UserUsed != 0 || st.UserUsesLeft() != 2 {
		t.Errorf("CodeState for carol = %+v, %v; want 2 left", st, err)
	}
	// The allowance is per promotion: another promotion's codes are free.
	other := "V" + h.tag + "OTHER"
	h.create(h.vanity(other, 5)) // perUserLimit 1
	if out := h.redeem(redeemReq(other, "alice")); out.Refused != "" {
		t.Fatalf("alice in another promotion: %+v", out)
	}
	_ = p
}

func testRedeemPerUserLimitConcurrent(t *testing.T, h *harness) {
	const n = 24
	_, codes := h.generatedCodes("peruser-race", n, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 1, 1
	})
	var ok, limited atomic.Int64
	race(n, func(i int) {
		out, err := h.s.Redeem(h.ctx, redeemReq(codes[i], "racer"))
		switch {
		case err != nil:
			t.Errorf("redeem: %v", err)
		case out.Refused == "":
			ok.Add(1)
		case out.Refused == promo.ReasonUserLimitReached:
			limited.Add(1)
		default:
			t.Errorf("refused %q", out.Refused)
		}
	})
	if ok.Load() != 1 || limited.Load() != n-1 {
		t.Errorf("one user racing %d codes with perUserLimit 1: %d succeeded, %d limited; want 1 and %d",
			n, ok.Load(), limited.Load(), n-1)
	}
	total := 0
	for _, c := range codes {
		total += h.used(c)
	}
	if total != 1 {
		t.Errorf("uses over all codes = %d, want 1", total)
	}
}

func testRedeemIdempotency(t *testing.T, h *harness) {
	code := "V" + h.tag + "IDEM"
	h.create(h.vanity(code, 2))
	req := redeemReq(code, "u")
	req.IdempotencyKey, req.RequestHash = "key-"+h.tag, "hash-1"
	first := h.redeem(req)
	again := req
	again.ID, again.EventID = newID(), newID() // a retry makes new ids; the stored answer wins
	second := h.redeem(again)
	if first.Refused != "" || !second.Replayed || second.Redemption.ID != first.Redemption.ID ||
		second.Redemption.UsesLeft != first.Redemption.UsesLeft {
		t.Fatalf("replay = %+v, want the first redemption %+v replayed", second, first)
	}
	if u := h.used(code); u != 1 {
		t.Errorf("used = %d after one redemption and its replay, want 1", u)
	}
	other := again
	other.RequestHash = "hash-2"
	_, err := h.s.Redeem(h.ctx, other)
	wantCode(t, "same key, other request", err, promo.EConflict)
	wantField(t, "same key, other request", err, "Idempotency-Key")

	// A refusal is remembered too: after the code is used up under another
	// key, a key whose first answer was a refusal keeps answering it, and a
	// key whose first answer was a redemption keeps answering that.
	h.redeem(redeemReq(code, "v"))
	refused := redeemReq(code, "w")
	refused.IdempotencyKey, refused.RequestHash = "key-refused-"+h.tag, "h"
	wantRefused(t, "used-up code", h.redeem(refused), promo.ReasonCodeExhausted)
	if out := h.redeem(refused); out.Refused != promo.ReasonCodeExhausted || !out.Replayed {
		t.Errorf("replayed refusal = %+v", out)
	}
	if out := h.redeem(again); out.Refused != "" || out.Redemption.ID != first.Redemption.ID {
		t.Errorf("replay after exhaustion = %+v, want the original redemption", out)
	}
}

func testRedeemIdempotencyConcurrent(t *testing.T, h *harness) {
	code := "V" + h.tag + "IDEMC"
	h.create(h.vanity(code, 100))
	const n = 24
	outs := make([]promo.RedeemOutcome, n)
	race(n, func(i int) {
		req := redeemReq(code, "u")
		req.IdempotencyKey, req.RequestHash = "key-"+h.tag, "hash"
		out, err := h.s.Redeem(h.ctx, req)
		if err != nil {
			t.Errorf("redeem: %v", err)
		}
		outs[i] = out
	})
	ids := map[string]int{}
	replays := 0
	for _, o := range outs {
		ids[o.Redemption.ID]++
		if o.Replayed {
			replays++
		}
	}
	if len(ids) != 1 || replays != n-1 {
		t.Errorf("%d concurrent redemptions with one key: ids %v, %d replays; want one id and %d replays", n, ids, replays, n-1)
	}
	if u := h.used(code); u != 1 {
		t.Errorf("used = %d, want 1", u)
	}
}

func testRollback(t *testing.T, h *harness) {
	p, codes := h.generatedCodes("rollback", 2, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 1, 1
	})
	out := h.redeem(redeemReq(codes[0], "alice"))
	wantRefused(t, "alice on a second code", h.redeem(redeemReq(codes[1], "alice")), promo.ReasonUserLimitReached)

	rb := promo.RollbackRequest{RedemptionID: out.Redemption.ID, EventID: newID(), Reason: "order cancelled",
		Now: time.Now()}
	r, replayed, err := h.s.Rollback(h.ctx, rb)
	if err != nil || replayed || r.RolledBackAt == nil || r.RollbackReason != "order cancelled" || r.PromotionID != p.ID {
		t.Fatalf("Rollback = %+v, %v, %v", r, replayed, err)
	}
	if u := h.used(codes[0]); u != 0 {
		t.Errorf("used after rollback = %d, want 0", u)
	}
	// The use is back for the user too.
	if out := h.redeem(redeemReq(codes[1], "alice")); out.Refused != "" {
		t.Fatalf("alice after her rollback: %+v", out)
	}
	// A second rollback releases nothing and answers the same.
	rb2 := rb
	rb2.EventID, rb2.Now = newID(), time.Now()
	r2, replayed, err := h.s.Rollback(h.ctx, rb2)
	if err != nil || !replayed || r2.RolledBackAt == nil || !r2.RolledBackAt.Equal(*r.RolledBackAt) {
		t.Fatalf("second Rollback = %+v, %v, %v; want the first's result, replayed", r2, replayed, err)
	}
	if u := h.used(codes[0]); u != 0 {
		t.Errorf("used after a second rollback = %d, want still 0", u)
	}
	// The audit row stays, marked.
	rs, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID})
	if err != nil || len(rs) != 2 {
		t.Fatalf("Redemptions = %d rows, %v; want 2", len(rs), err)
	}
	if rs[1].ID != out.Redemption.ID || rs[1].RolledBackAt == nil || rs[0].RolledBackAt != nil {
		t.Errorf("audit rows = %+v, want the first rolled back, the second not", rs)
	}
	_, _, err = h.s.Rollback(h.ctx, promo.RollbackRequest{RedemptionID: "no-such", EventID: newID(), Now: time.Now()})
	wantCode(t, "Rollback(unknown)", err, promo.ENotFound)
}

func testRollbackRacingRedemptions(t *testing.T, h *harness) {
	code := "V" + h.tag + "RACE"
	const limit = 5
	h.create(h.vanity(code, limit))
	var (
		mu        sync.Mutex
		succeeded []string
		rolled    atomic.Int64
	)
	const n = 40
	race(n, func(i int) {
		if i%2 == 0 {
			out, err := h.s.Redeem(h.ctx, redeemReq(code, fmt.Sprintf("u%d", i)))
			if err != nil {
				t.Errorf("redeem: %v", err)
				return
			}
			if out.Refused == "" {
				mu.Lock()
				succeeded = append(succeeded, out.Redemption.ID)
				mu.Unlock()
			}
			return
		}
		mu.Lock()
		var id string
		if len(succeeded) > 0 {
			id = succeeded[len(succeeded)-1]
		}
		mu.Unlock()
		if id == "" {
			return
		}
		_, replayed, err := h.s.Rollback(h.ctx, promo.RollbackRequest{RedemptionID: id, EventID: newID(), Now: time.Now()})
		if err != nil {
			t.Errorf("rollback: %v", err)
		} else if !replayed {
			rolled.Add(1)
		}
	})
	u := h.used(code)
	if want := len(succeeded) - int(rolled.Load()); u != want || u < 0 || u > limit {
		t.Errorf("used = %d after %d redemptions and %d rollbacks; want %d, within [0, %d]",
			u, len(succeeded), rolled.Load(), want, limit)
	}
}

func testRedemptionAudit(t *testing.T, h *harness) {
	code := "V" + h.tag + "AUDIT"
	np := h.vanity(code, 100)
	np.PerUserLimit = promo.UnlimitedPerUser
	p := h.create(np)
	var ids []string
	for i := range 7 {
		user := "even"
		if i%2 == 1 {
			user = "odd"
		}
		ids = append(ids, h.redeem(redeemReq(code, user)).Redemption.ID)
	}
	slices.Reverse(ids) // newest first
	var got []string
	after := ""
	for {
		page, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID, After: after, Limit: 3})
		if err != nil {
			t.Fatalf("Redemptions: %v", err)
		}
		if len(page) > 3 {
			t.Fatalf("page of %d, limit 3", len(page))
		}
		for _, r := range page {
			got = append(got, r.ID)
		}
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, ids) {
		t.Errorf("paged ids = %v, want %v (newest first)", got, ids)
	}
	odd, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID, UserID: "odd"})
	if err != nil || len(odd) != 3 {
		t.Fatalf("filter by user: %d rows, %v; want 3", len(odd), err)
	}
	for _, r := range odd {
		if r.UserID != "odd" || r.Code != code {
			t.Errorf("filtered row %+v", r)
		}
	}
	n := 0
	if err := h.s.ExportRedemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID}, func(promo.Redemption) error {
		n++
		return nil
	}); err != nil || n != 7 {
		t.Errorf("ExportRedemptions: %d rows, %v; want 7", n, err)
	}
	_, err = h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID + 1_000_000})
	wantCode(t, "Redemptions(unknown promotion)", err, promo.ENotFound)
}

func testEventOutbox(t *testing.T, h *harness) {
	code := "V" + h.tag + "EVENTS"
	p := h.create(h.vanity(code, 10))
	out := h.redeem(redeemReq(code, "u"))
	refused := redeemReq("N"+h.tag+"NONE", "u")
	h.redeem(refused) // a refusal writes no event
	if _, _, err := h.s.Rollback(h.ctx, promo.RollbackRequest{RedemptionID: out.Redemption.ID, EventID: "ev-rb-" + h.tag,
		Reason: "cancelled", Now: time.Now()}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	// Other subtests write events too: claim until this subtest's two are
	// seen, checking the outbox's guarantees on everything claimed.
	var mine []promo.RedemptionEvent
	var seqs []int64
	for range 50 {
		evs, err := h.s.ClaimEvents(h.ctx, 100, time.Minute)
		if err != nil {
			t.Fatalf("ClaimEvents: %v", err)
		}
		if len(evs) == 0 {
			break
		}
		for i, ev := range evs {
			if i > 0 && ev.Seq <= evs[i-1].Seq {
				t.Errorf("claimed events out of order: %d after %d", ev.Seq, evs[i-1].Seq)
			}
			seqs = append(seqs, ev.Seq)
			var e promo.RedemptionEvent
			if err := json.Unmarshal(ev.Payload, &e); err != nil {
				t.Fatalf("event payload %s: %v", ev.Payload, err)
			}
			if e.PromotionID == promo.FormatID(p.ID) {
				if ev.Key != promo.FormatID(p.ID) || ev.Stream != promo.StreamRedemptions {
					t.Errorf("event %+v: want key %d on stream %q", ev, p.ID, promo.StreamRedemptions)
				}
				mine = append(mine, e)
			}
		}
		if err := h.s.MarkEventsPublished(h.ctx, seqs); err != nil {
			t.Fatalf("MarkEventsPublished: %v", err)
		}
		if len(mine) >= 2 {
			break
		}
	}
	if len(mine) != 2 || mine[0].Type != promo.EventRedeemed || mine[1].Type != promo.EventRolledBack ||
		mine[0].Redemption.ID != out.Redemption.ID || mine[1].EventID != "ev-rb-"+h.tag ||
		mine[1].Redemption.RolledBackAt == nil || mine[0].V != 1 || mine[0].EventID == "" {
		t.Fatalf("this promotion's events = %+v; want its redemption then its rollback", mine)
	}
	// codeUses: the code's live uses after each change (the totals rollup's
	// codes redeemed: 0 → 1 on the redemption, back to 0 on the rollback).
	if mine[0].CodeUses == nil || *mine[0].CodeUses != 1 || mine[1].CodeUses == nil || *mine[1].CodeUses != 0 {
		t.Errorf("codeUses of the redemption and rollback events = %v, %v; want 1, 0", mine[0].CodeUses, mine[1].CodeUses)
	}

	// A claimed event is leased: another publisher does not get it until the
	// lease ends, and a published one never comes back.
	h.redeem(redeemReq(code, "leased"))
	var leased []int64
	for range 50 {
		evs, err := h.s.ClaimEvents(h.ctx, 100, time.Hour)
		if err != nil {
			t.Fatalf("ClaimEvents: %v", err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			leased = append(leased, ev.Seq)
			if slices.Contains(seqs, ev.Seq) {
				t.Errorf("event %d claimed again after it was published", ev.Seq)
			}
		}
	}
	if len(leased) == 0 {
		t.Fatal("the new redemption's event was never claimed")
	}
	if err := h.s.MarkEventsPublished(h.ctx, leased); err != nil {
		t.Fatalf("MarkEventsPublished: %v", err)
	}

	// Pruning deletes published events only, and only those before the cut.
	if n, err := h.s.PruneEvents(h.ctx, time.Now().Add(-time.Hour), 1000); err != nil || n != 0 {
		t.Errorf("PruneEvents(an hour ago) = %d, %v; want 0 (everything was published just now)", n, err)
	}
	h.redeem(redeemReq(code, "unpublished"))
	if _, err := h.s.PruneEvents(h.ctx, time.Now().Add(time.Minute), 1_000_000); err != nil {
		t.Fatalf("PruneEvents: %v", err)
	}
	evs, err := h.s.ClaimEvents(h.ctx, 1000, time.Minute)
	if err != nil {
		t.Fatalf("ClaimEvents after pruning: %v", err)
	}
	found := false
	for _, ev := range evs {
		found = found || strings.Contains(string(ev.Payload), `"unpublished"`)
	}
	if !found {
		t.Errorf("pruning deleted an unpublished event")
	}
}

// testRedemptionEventPayload: a redemption's event is exactly the encoding of
// the redemption it answered (whichever way the dialect writes it: from Go,
// or assembled in the database around the promotion id and the counts), with
// the shopper's text carried as it came.
func testRedemptionEventPayload(t *testing.T, h *harness) {
	code := "V" + h.tag + "PAYLOAD"
	p := h.create(h.vanity(code, 5))
	reqs := []promo.RedeemRequest{redeemReq(code, `al"ice`), redeemReq(code, "bob")}
	reqs[0].OrderID, reqs[0].IdempotencyKey, reqs[0].RequestHash = `"promotionId":"0"`, "k-"+h.tag, "h"
	reqs[0].Metadata = json.RawMessage(`{"usesLeft":0,"codeUses":0,"note":"<&> é"}`)
	want := map[string][]byte{}
	for i, req := range reqs {
		out := h.redeem(req)
		if out.Refused != "" || out.Redemption.PromotionID != p.ID || out.Redemption.UsesLeft != 5-(i+1) {
			t.Fatalf("redemption %d = %+v; want promotion %d, %d uses left", i, out, p.ID, 5-(i+1))
		}
		uses := i + 1
		ev, err := promo.NewRedemptionEvent(promo.EventRedeemed, req.EventID, out.Redemption.RedeemedAt, out.Redemption, &uses)
		if err != nil {
			t.Fatal(err)
		}
		want[out.Redemption.ID] = ev
		got, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: p.ID, Code: code, Limit: 1})
		if err != nil || len(got) != 1 || got[0].UsesLeft != out.Redemption.UsesLeft ||
			!got[0].RedeemedAt.Equal(out.Redemption.RedeemedAt) || string(got[0].Metadata) != string(req.Metadata) ||
			got[0].OrderID != req.OrderID || got[0].UserID != req.UserID || got[0].IdempotencyKey != req.IdempotencyKey {
			t.Errorf("audit row = %+v, %v; want %+v", got, err, out.Redemption)
		}
	}
	for range 50 {
		evs, err := h.s.ClaimEvents(h.ctx, 100, time.Minute)
		if err != nil || len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			var e promo.RedemptionEvent
			if err := json.Unmarshal(ev.Payload, &e); err != nil {
				t.Fatalf("event payload %s: %v", ev.Payload, err)
			}
			if w, ok := want[e.Redemption.ID]; ok {
				if string(ev.Payload) != string(w) {
					t.Errorf("event payload\n got %s\nwant %s", ev.Payload, w)
				}
				delete(want, e.Redemption.ID)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("%d redemption events never claimed", len(want))
	}
}

func testCodeSpaces(t *testing.T, h *harness) {
	g := h.create(h.generated("spaces", 10, 10))
	v := h.create(h.vanity("V"+h.tag+"SPACE", 1))
	ps, err := h.s.CodeSpaces(h.ctx, g.ID-1, 1000)
	if err != nil {
		t.Fatalf("CodeSpaces: %v", err)
	}
	var gotG, gotV bool
	for i, p := range ps {
		if i > 0 && p.ID <= ps[i-1].ID {
			t.Errorf("CodeSpaces not in id order")
		}
		switch p.ID {
		case g.ID:
			gotG = p.Kind == promo.KindGenerated && p.Format != nil && *p.Format == *g.Format
		case v.ID:
			gotV = p.Kind == promo.KindVanity && p.VanityCode == v.VanityCode
		}
	}
	if !gotG || !gotV {
		t.Errorf("CodeSpaces after %d = %+v; want the generated promotion with its format and the vanity one", g.ID-1, ps)
	}
	if ps, err := h.s.CodeSpaces(h.ctx, v.ID, 1000); err != nil || slices.ContainsFunc(ps, func(p promo.Promotion) bool {
		return p.ID <= v.ID
	}) {
		t.Errorf("CodeSpaces after %d = %+v, %v; want only later ids", v.ID, ps, err)
	}
}

func testRefusalCounts(t *testing.T, h *harness) {
	a := h.create(h.vanity("V"+h.tag+"REFA", 1))
	b := h.create(h.vanity("V"+h.tag+"REFB", 1))
	hour := time.Now().UTC().Truncate(time.Hour)
	add := func(counts ...promo.RefusalCount) {
		t.Helper()
		if err := h.s.AddRefusals(h.ctx, counts); err != nil {
			t.Fatalf("AddRefusals: %v", err)
		}
	}
	add(promo.RefusalCount{PromotionID: a.ID, Reason: promo.ReasonCodeExhausted, Hour: hour, N: 5},
		promo.RefusalCount{PromotionID: a.ID, Reason: promo.ReasonUserLimitReached, Hour: hour, N: 2},
		promo.RefusalCount{PromotionID: b.ID, Reason: promo.ReasonExpired, Hour: hour, N: 9})
	// The same counter again adds up; another hour is another row.
	add(promo.RefusalCount{PromotionID: a.ID, Reason: promo.ReasonCodeExhausted, Hour: hour, N: 3},
		promo.RefusalCount{PromotionID: a.ID, Reason: promo.ReasonUserLimitReached, Hour: hour.Add(-time.Hour), N: 1})
	got, err := h.s.RefusalsByReason(h.ctx, a.ID)
	want := []promo.ReasonCount{{Reason: promo.ReasonCodeExhausted, Count: 8}, {Reason: promo.ReasonUserLimitReached, Count: 3}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("RefusalsByReason(a) = %v, %v; want %v", got, err, want)
	}
	if got, err := h.s.RefusalsByReason(h.ctx, b.ID+1_000_000); err != nil || len(got) != 0 {
		t.Errorf("RefusalsByReason(unknown) = %v, %v; want none", got, err)
	}
}
