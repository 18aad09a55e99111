package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// The guarantees through the lifecycle: a rollback gives its use back to the
// exact code row it took, a deletion is final and refuses every change,
// concurrent confirms of one reservation answer one redemption, top-ups are
// idempotent, purged redemptions take their idempotency records with them, a
// cancel never waits for a chunk in flight, and each conditional statement
// holds at its limit on its own.

// StatementStore runs the store's own redemption statements (the core's
// sqlstore.StatementTx, on the dialect's text) in one transaction that is always rolled back, so
// that the suite can test each SQL condition at its limit directly, without
// the Go re-checks of the algorithm around it. Every store implements it for
// its tests (export_test.go).
type StatementStore interface {
	InStatementTx(ctx context.Context, fn func(sqlstore.StatementTx) error) error
}

// SingleWriter is implemented by a store whose writers take one lock for the
// whole database (SQLite): a chunk in flight holds it, so a cancel waits for
// the chunk there instead of overtaking it.
type SingleWriter interface{ SingleWriter() bool }

var guardTests = cases{
	{"RollbackAfterRecreate", testRollbackAfterRecreate},
	{"DeletionIsFinal", testDeletionIsFinal},
	{"ConfirmConcurrentSameOrder", testConfirmConcurrentSameOrder},
	{"TopUpIdempotency", testTopUpIdempotency},
	{"PurgeRedemptionsTakesTheirKeys", testPurgeRedemptionsTakesTheirKeys},
	{"PurgeIsFinal", testPurgeIsFinal},
	{"ReservationAfterRecreate", testReservationAfterRecreate},
	{"CancelOvertakesChunkInFlight", testCancelOvertakesChunkInFlight},
	{"ConditionsAtTheirLimits", testConditionsAtTheirLimits},
}

func deletionReq(id int64) promo.AuditEntry {
	return promo.AuditEntry{ID: newID(), At: time.Now().UTC().Truncate(time.Microsecond), Actor: "admin:test",
		Action: promo.ActionDeleteRequested, PromotionID: id}
}

// purgeAll deletes a promotion's rows from table in statements of 3.
func (h *harness) purgeAll(table string, id int64) int64 {
	h.t.Helper()
	var total int64
	for {
		n, err := h.s.PurgeRows(h.ctx, table, id, 3)
		if err != nil {
			h.t.Fatalf("PurgeRows(%s, %d): %v", table, id, err)
		}
		total += n
		if n < 3 {
			return total
		}
	}
}

func (h *harness) rollbackOf(id string) (promo.Redemption, bool) {
	h.t.Helper()
	r, replayed, err := h.s.Rollback(h.ctx, promo.RollbackRequest{RedemptionID: id, EventID: newID(),
		Reason: "test", Now: time.Now()})
	if err != nil {
		h.t.Fatalf("Rollback(%s): %v", id, err)
	}
	return r, replayed
}

// A vanity code redeemed, its promotion deleted, the same code created again
// with max 1 and used: rolling back the old redemption must not give the new
// code a use back (that would let it be used twice), and says so.
func testRollbackAfterRecreate(t *testing.T, h *harness) {
	code := "V" + h.tag + "AGAIN"
	old := h.create(h.vanity(code, 1))
	first := h.redeem(redeemReq(code, "alice"))
	if first.Refused != "" {
		t.Fatalf("first redemption: %+v", first)
	}
	if _, err := h.s.RequestDeletion(h.ctx, deletionReq(old.ID)); err != nil {
		t.Fatal(err)
	}
	if n := h.purgeAll("codes", old.ID); n != 1 {
		t.Fatalf("purged %d codes, want 1", n)
	}
	renewed := h.create(h.vanity(code, 1))
	if out := h.redeem(redeemReq(code, "bob")); out.Refused != "" || out.Redemption.PromotionID != renewed.ID {
		t.Fatalf("redeem the re-created code: %+v", out)
	}

	r, replayed := h.rollbackOf(first.Redemption.ID)
	if replayed || r.CodeRelease != promo.CodeGone || r.PromotionID != old.ID {
		t.Errorf("rollback of the old redemption = %+v, replayed %t; want code_gone in promotion %d", r, replayed, old.ID)
	}
	if u := h.used(code); u != 1 {
		t.Errorf("the re-created code has %d uses after the old rollback, want 1", u)
	}
	wantRefused(t, "a third shopper on the max-1 code", h.redeem(redeemReq(code, "carol")), promo.ReasonCodeExhausted)
	if r, replayed := h.rollbackOf(first.Redemption.ID); !replayed || r.CodeRelease != promo.CodeGone {
		t.Errorf("second rollback = %+v, replayed %t; want the first answer (code_gone) replayed", r, replayed)
	}
	if rs, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: old.ID}); err != nil || len(rs) != 1 ||
		rs[0].CodeRelease != promo.CodeGone {
		t.Errorf("audit trail of the old promotion = %+v, %v; want its redemption with codeRelease code_gone", rs, err)
	}

	// A rollback whose code is still there gives its use back and says so.
	rs, err := h.s.Redemptions(h.ctx, promo.RedemptionFilter{PromotionID: renewed.ID})
	if err != nil || len(rs) != 1 {
		t.Fatalf("audit trail of the new promotion = %+v, %v", rs, err)
	}
	if r, _ := h.rollbackOf(rs[0].ID); r.CodeRelease != promo.CodeReleased {
		t.Errorf("rollback of the new redemption = %+v, want codeRelease released", r)
	}
	if u := h.used(code); u != 0 {
		t.Errorf("uses after the new redemption's rollback = %d, want 0", u)
	}
}

// Once a deletion is requested nothing changes the promotion again and
// nothing uses its codes: every change and use is refused promotion_deleted.
func testDeletionIsFinal(t *testing.T, h *harness) {
	p := h.create(h.generated("deleted", 20, 10))
	bs := h.batches(p.ID)
	h.commit(h.chunk(bs[0], 0, 10))
	h.commit(h.chunk(bs[1], 0, 5))
	codes := []string{h.code(bs[0].SeqStart), h.code(bs[0].SeqStart + 1), h.code(bs[0].SeqStart + 2)}
	held := h.reserve(reserveReq(codes[0], "alice", time.Minute))
	keyed := topUpReq(p.ID, 5)
	keyed.IdempotencyKey, keyed.RequestHash = "topup-before-delete", "h1"
	before, _, err := h.s.TopUp(h.ctx, keyed)
	if err != nil {
		t.Fatal(err)
	}

	if replayed, err := h.s.RequestDeletion(h.ctx, deletionReq(p.ID)); err != nil || replayed {
		t.Fatalf("RequestDeletion = %t, %v", replayed, err)
	}
	wantDeleted := func(what string, err error) {
		t.Helper()
		if promo.ReasonOf(err) != promo.ReasonPromotionDeleted || promo.Code(err) != promo.EGone {
			t.Errorf("%s: %v (reason %q), want 410 promotion_deleted", what, err, promo.ReasonOf(err))
		}
	}
	on, name := true, "revived"
	_, err = h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) { u.Active = &on }))
	wantDeleted("PATCH active=true", err)
	_, err = h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) { u.Name = &name }))
	wantDeleted("PATCH name", err)
	_, _, err = h.s.TopUp(h.ctx, topUpReq(p.ID, 5))
	wantDeleted("top-up", err)
	_, err = h.s.CancelPromotion(h.ctx, cancelReq(p.ID))
	wantDeleted("cancel", err)
	_, _, err = h.s.RevokeCode(h.ctx, revokeReq(codes[1], "late"))
	wantDeleted("revoke", err)
	wantRefused(t, "redeem", h.redeem(redeemReq(codes[1], "bob")), promo.ReasonPromotionDeleted)
	wantReserveRefused(t, "reserve", h.reserve(reserveReq(codes[2], "bob", time.Minute)), promo.ReasonPromotionDeleted)
	if out := h.confirm(confirmReq(held.Reservation.ID, "o-1")); out.Refused != promo.ReasonPromotionDeleted {
		t.Errorf("confirm a reservation made before the deletion: %+v, want promotion_deleted", out)
	}
	if st := h.state(codes[1], ""); st.Status(time.Now(), false) != promo.ReasonPromotionDeleted {
		t.Errorf("validation status = %s, want promotion_deleted", st.Status(time.Now(), false))
	}
	// A top-up recorded before the deletion still answers its retry.
	if again, replayed, err := h.s.TopUp(h.ctx, keyed); err != nil || !replayed || again.No != before.No {
		t.Errorf("retried top-up = %+v, %t, %v; want the recorded top-up %d replayed", again, replayed, err, before.No)
	}
	// No chunk commits any more; the worker finds its batch cancelled.
	_, err = h.s.CommitChunk(h.ctx, h.chunk(bs[1], 5, 5))
	wantCode(t, "a chunk after the deletion", err, promo.EMoved)
	if b := h.batch(bs[1].Ref()); b.State != promo.BatchCancelled || b.Done != 5 {
		t.Errorf("batch after the deletion = %+v, want cancelled at 5", b)
	}
	if replayed, err := h.s.RequestDeletion(h.ctx, deletionReq(p.ID)); err != nil || !replayed {
		t.Errorf("second RequestDeletion = %t, %v; want replayed", replayed, err)
	}
	if st := h.status(p.ID); st.Status() != promo.StatusDeleting || st.Active || st.CodeCount != 25 {
		t.Errorf("status = %s, active %t, %d codes; want deleting, inactive, 25 (nothing added)", st.Status(), st.Active,
			st.CodeCount)
	}
	// Finished only once no code is left (a chunk that read the promotion
	// live just before the request may commit just after it).
	finish := promo.AuditEntry{ID: newID(), At: time.Now().UTC().Truncate(time.Microsecond), Actor: "system:deleter",
		Action: promo.ActionPromotionDeleted, PromotionID: p.ID}
	if err := h.s.FinishDeletion(h.ctx, finish); err != nil {
		t.Fatal(err)
	}
	if st := h.status(p.ID); st.Status() != promo.StatusDeleting {
		t.Errorf("status %s after finishing with codes left, want deleting", st.Status())
	}
	h.purgeAll("codes", p.ID)
	finish.ID = newID()
	if err := h.s.FinishDeletion(h.ctx, finish); err != nil {
		t.Fatal(err)
	}
	if st := h.status(p.ID); st.Status() != promo.StatusDeleted {
		t.Errorf("status %s after finishing with no code left, want deleted", st.Status())
	}
}

// A checkout retrying its confirm on a timeout sends the same orderId
// several times at once: every answer is the one redemption. Eight
// reservations, 24 racing confirms each (the losing interleaving, a confirm
// that read the reservation held and then waited for the code's lock, needs
// a few tries to come up).
func testConfirmConcurrentSameOrder(t *testing.T, h *harness) {
	_, codes := h.generatedCodes("confirm-race", 8, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 1, 1
	})
	const n = 24
	for k, code := range codes {
		user := fmt.Sprintf("shopper-%d", k)
		held := h.reserve(reserveReq(code, user, time.Minute))
		outs := make([]promo.ConfirmOutcome, n)
		errs := make([]error, n)
		race(n, func(i int) { outs[i], errs[i] = h.s.Confirm(h.ctx, confirmReq(held.Reservation.ID, "order-1")) })
		first, replays := "", 0
		for i, out := range outs {
			switch {
			case errs[i] != nil:
				t.Errorf("reservation %d, confirm %d: %v", k, i, errs[i])
			case out.Refused != "":
				t.Errorf("reservation %d, confirm %d refused %s; want the redemption", k, i, out.Refused)
			case out.Replayed:
				replays++
			case first != "":
				t.Errorf("reservation %d: two confirms made a redemption: %s and %s", k, first, out.Redemption.ID)
			default:
				first = out.Redemption.ID
			}
		}
		for i, out := range outs {
			if errs[i] == nil && out.Refused == "" && out.Redemption.ID != first {
				t.Errorf("reservation %d, confirm %d answered redemption %s, want %s", k, i, out.Redemption.ID, first)
			}
		}
		if first == "" || replays != n-1 {
			t.Errorf("reservation %d: %d replays and first %q; want 1 redemption and %d replays", k, replays, first, n-1)
		}
		if u := h.used(code); u != 1 {
			t.Errorf("reservation %d: code used %d times, want 1", k, u)
		}
	}
}

// POST /topups with an Idempotency-Key: the same key and request answer the
// first top-up, another request with the key is refused, concurrent retries
// add one top-up, and keys are per promotion.
func testTopUpIdempotency(t *testing.T, h *harness) {
	p, _ := h.generatedCodes("topup-key", 10, nil)
	req := func(n int64, key, hash string) promo.TopUpRequest {
		r := topUpReq(p.ID, n)
		r.IdempotencyKey, r.RequestHash = key, hash
		return r
	}
	first, replayed, err := h.s.TopUp(h.ctx, req(25, "k1", "hash-25"))
	if err != nil || replayed {
		t.Fatalf("TopUp = %+v, %t, %v", first, replayed, err)
	}
	again, replayed, err := h.s.TopUp(h.ctx, req(25, "k1", "hash-25"))
	if err != nil || !replayed || again != first {
		t.Errorf("retried TopUp = %+v, %t, %v; want %+v replayed", again, replayed, err, first)
	}
	_, _, err = h.s.TopUp(h.ctx, req(30, "k1", "hash-30"))
	if promo.ReasonOf(err) != promo.ReasonIdempotencyConflict {
		t.Errorf("the key with another request: %v, want idempotency_conflict", err)
	}
	const n = 12
	outs := make([]promo.TopUp, n)
	replays := make([]bool, n)
	errs := make([]error, n)
	race(n, func(i int) { outs[i], replays[i], errs[i] = h.s.TopUp(h.ctx, req(7, "k2", "hash-7")) })
	made := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("concurrent top-up %d: %v", i, errs[i])
			continue
		}
		if !replays[i] {
			made++
		}
		if outs[i].No != outs[0].No {
			t.Errorf("concurrent top-up %d answered top-up %d, want %d", i, outs[i].No, outs[0].No)
		}
	}
	if made != 1 {
		t.Errorf("%d concurrent retries made %d top-ups, want 1", n, made)
	}
	if st := h.status(p.ID); st.CodeCount != 10+25+7 {
		t.Errorf("code count %d, want 42 (each top-up once)", st.CodeCount)
	}
	other, _ := h.generatedCodes("topup-key-other", 10, nil)
	r := topUpReq(other.ID, 3)
	r.IdempotencyKey, r.RequestHash = "k1", "hash-3"
	if _, replayed, err := h.s.TopUp(h.ctx, r); err != nil || replayed {
		t.Errorf("the same key on another promotion: %t, %v; want a new top-up", replayed, err)
	}
	if list, err := h.s.TopUps(h.ctx, p.ID); err != nil || len(list) != 2 {
		t.Errorf("TopUps = %+v, %v; want 2", list, err)
	}
}

// purge --with-redemptions deletes the redemptions' idempotency records in
// the same statements: a retry with a purged redemption's key is a new
// request (refused code_not_found: the codes are gone), never an error.
func testPurgeRedemptionsTakesTheirKeys(t *testing.T, h *harness) {
	p, codes := h.generatedCodes("purge-keys", 5, func(np *promo.NewPromotion) { np.PerUserLimit = 0 })
	reqs := make([]promo.RedeemRequest, len(codes))
	for i, c := range codes {
		reqs[i] = redeemReq(c, "alice")
		reqs[i].IdempotencyKey, reqs[i].RequestHash = "purge-"+h.tag+c, "h"
		if out := h.redeem(reqs[i]); out.Refused != "" {
			t.Fatalf("redeem %s: %+v", c, out)
		}
	}
	keep := redeemReq(codes[0], "bob") // a refusal's record names no redemption
	keep.IdempotencyKey, keep.RequestHash = "purge-refused-"+h.tag, "h"
	wantRefused(t, "a second use", h.redeem(keep), promo.ReasonCodeExhausted)

	h.purgeAll("codes", p.ID)
	if n := h.purgeAll("redemptions", p.ID); n != 5 {
		t.Fatalf("purged %d redemptions, want 5", n)
	}
	for _, req := range reqs {
		req.ID, req.EventID = newID(), newID()
		out, err := h.s.Redeem(h.ctx, req)
		if err != nil || out.Replayed || out.Refused != promo.ReasonCodeNotFound {
			t.Errorf("retry with a purged redemption's key: %+v, %v; want a new request refused code_not_found", out, err)
		}
	}
	if out, err := h.s.Redeem(h.ctx, keep); err != nil || !out.Replayed || out.Refused != promo.ReasonCodeExhausted {
		t.Errorf("retry of a recorded refusal: %+v, %v; want it replayed", out, err)
	}
}

// An admin's cancel takes effect at once whatever a worker holds: a chunk
// stopped mid-way (its batch row locked, its codes written, not committed)
// does not make the cancel wait, and that chunk is refused when it resumes.
func testCancelOvertakesChunkInFlight(t *testing.T, h *harness) {
	p := h.create(h.generated("frozen", 20, 10))
	bs := h.batches(p.ID)
	h.commit(h.chunk(bs[0], 0, 5))
	// The chunk collides with a vanity code, so it takes the fallback path
	// and calls Replace inside its transaction, after taking its batch row
	// and writing its other codes: Replace freezes there until released.
	c := h.chunk(bs[0], 5, 5)
	h.create(h.vanity(h.code(bs[0].SeqStart+5), 1))
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.Replace = func(dst []byte, seq uint64) []byte {
		once.Do(func() { close(entered); <-release })
		return h.replace(dst, seq)
	}
	chunkErr := make(chan error, 1)
	go func() {
		_, err := h.s.CommitChunk(h.ctx, c)
		chunkErr <- err
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("the chunk never reached Replace")
	}
	if sw, ok := h.s.(SingleWriter); ok && sw.SingleWriter() {
		// One lock for the whole database: the cancel waits for the chunk,
		// which commits first (the flag was not set when it checked).
		go func() { time.Sleep(200 * time.Millisecond); close(release) }()
		if _, err := h.s.CancelPromotion(h.ctx, cancelReq(p.ID)); err != nil {
			t.Fatal(err)
		}
		if err := <-chunkErr; err != nil {
			t.Errorf("the chunk ahead of the cancel: %v", err)
		}
		if st := h.status(p.ID); st.Status() != promo.StatusCancelled || st.GeneratedCount != 10 {
			t.Errorf("status = %s, %d codes; want cancelled with 10", st.Status(), st.GeneratedCount)
		}
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	start := time.Now()
	_, err := h.s.CancelPromotion(ctx, cancelReq(p.ID))
	took := time.Since(start)
	cancel()
	close(release)
	if err != nil {
		t.Fatalf("cancel with a chunk in flight: %v after %v; want it at once", err, took.Round(time.Millisecond))
	}
	if took > 2*time.Second {
		t.Errorf("cancel took %v with a chunk in flight, want well under 2s", took.Round(time.Millisecond))
	}
	if err := <-chunkErr; !promo.Is(err, promo.EMoved) {
		t.Errorf("the frozen chunk after the cancel: %v, want refused (EMoved)", err)
	}
	if b := h.batch(bs[0].Ref()); b.State != promo.BatchCancelled || b.Done != 5 {
		t.Errorf("batch = %+v, want cancelled at 5", b)
	}
	st := h.status(p.ID)
	if st.Status() != promo.StatusCancelled || st.GeneratedCount != 5 || len(h.export(p.ID)) != 5 {
		t.Errorf("status = %s, %d codes (%d exported); want cancelled with the 5 committed before", st.Status(),
			st.GeneratedCount, len(h.export(p.ID)))
	}
	if inc, err := h.s.IncompleteBatches(h.ctx, p.ID); err != nil || len(inc) != 0 {
		t.Errorf("IncompleteBatches = %+v, %v; want none", inc, err)
	}
	// The same for a deletion requested while a chunk is in flight.
	d := h.create(h.generated("frozen", 10, 10)) // same counter: codes disjoint from the first
	db := h.batches(d.ID)[0]
	dc := h.chunk(db, 0, 5)
	h.create(h.vanity(h.code(db.SeqStart), 1))
	entered, release = make(chan struct{}), make(chan struct{})
	once = sync.Once{}
	dc.Replace = func(dst []byte, seq uint64) []byte {
		once.Do(func() { close(entered); <-release })
		return h.replace(dst, seq)
	}
	go func() {
		_, err := h.s.CommitChunk(h.ctx, dc)
		chunkErr <- err
	}()
	<-entered
	ctx, cancel = context.WithTimeout(h.ctx, 5*time.Second)
	_, err = h.s.RequestDeletion(ctx, deletionReq(d.ID))
	cancel()
	close(release)
	if err != nil {
		t.Fatalf("delete with a chunk in flight: %v", err)
	}
	if err := <-chunkErr; !promo.Is(err, promo.EMoved) {
		t.Errorf("the frozen chunk after the deletion: %v, want refused (EMoved)", err)
	}
	if got := h.export(d.ID); len(got) != 0 {
		t.Errorf("%d codes of a deleted promotion committed after the deletion", len(got))
	}
}

// Each conditional statement at its limit, run alone: a mutant that moves a
// limit by one (used <= max) or drops a guard (used > 0) fails here even
// though the algorithm's re-checks would hide it from every other test.
func testConditionsAtTheirLimits(t *testing.T, h *harness) { conditionsAtTheirLimits(t, h) }

// AdversarialSQLConditions is the adversarial suite's case for the
// conditional statements themselves: the contract's test of each one run
// alone at its limit on s (a StatementStore), logged as the suite's one line
// for database db.
func AdversarialSQLConditions(t *testing.T, db string, s Store) {
	outcome := conditionsAtTheirLimits(t, newHarness(t, s))
	if t.Failed() {
		outcome = "FAILED: " + outcome
	}
	t.Logf("adversarial: SQL conditions at their limits [%s]: %s", db, outcome)
}

func conditionsAtTheirLimits(t *testing.T, h *harness) string {
	ss, ok := h.s.(StatementStore)
	if !ok {
		t.Fatal("the store does not implement StatementStore (InStatementTx, in its export_test.go)")
	}
	var seen []string
	inTx := func(what string, fn func(tx sqlstore.StatementTx) error) {
		t.Helper()
		if err := ss.InStatementTx(h.ctx, fn); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	now := time.Now().UTC()
	p, codes := h.generatedCodes("limits", 3, func(np *promo.NewPromotion) { np.MaxUsagePerCode, np.PerUserLimit = 2, 2 })
	for _, u := range []string{"u1", "u2"} {
		if out := h.redeem(redeemReq(codes[0], u)); out.Refused != "" {
			t.Fatal(out)
		}
	}
	if out := h.redeem(redeemReq(codes[1], "u1")); out.Refused != "" { // u1 now at the per-user limit of 2
		t.Fatal(out)
	}

	inTx("UseCode at used = max", func(tx sqlstore.StatementTx) error {
		u, ok, err := tx.UseCode(h.ctx, codes[0], "u1", now)
		if err != nil || ok {
			t.Errorf("UseCode of a code at its max (2/2) = %+v, %t, %v; want no row", u, ok, err)
		}
		seen = append(seen, fmt.Sprintf("UseCode at 2/2 matched %t", ok))
		return nil
	})
	inTx("UseCode at used = max-1", func(tx sqlstore.StatementTx) error {
		u, ok, err := tx.UseCode(h.ctx, codes[1], "u1", now)
		if err != nil || !ok || u.Used != 2 {
			t.Errorf("UseCode of a code at 1/2 = %+v, %t, %v; want it used to 2", u, ok, err)
		}
		seen = append(seen, fmt.Sprintf("at 1/2 matched %t (used %d)", ok, u.Used))
		return nil
	})
	inTx("UseAllowance at used = limit", func(tx sqlstore.StatementTx) error {
		ok, err := tx.UseAllowance(h.ctx, p.ID, "u1", 2)
		if err != nil || ok {
			t.Errorf("UseAllowance of a user at the limit (2/2) = %t, %v; want refused", ok, err)
		}
		seen = append(seen, fmt.Sprintf("UseAllowance at 2/2 matched %t", ok))
		return nil
	})
	inTx("UseAllowance at used = limit-1", func(tx sqlstore.StatementTx) error {
		ok, err := tx.UseAllowance(h.ctx, p.ID, "u2", 2)
		if err != nil || !ok {
			t.Errorf("UseAllowance of a user at 1/2 = %t, %v; want it granted", ok, err)
		}
		again, err := tx.UseAllowance(h.ctx, p.ID, "u2", 2)
		if err != nil || again {
			t.Errorf("UseAllowance again (now 2/2) = %t, %v; want refused", again, err)
		}
		seen = append(seen, fmt.Sprintf("at 1/2 matched %t, then at 2/2 %t", ok, again))
		return nil
	})
	inTx("LockAllowance at used = limit", func(tx sqlstore.StatementTx) error {
		ok, err := tx.LockAllowance(h.ctx, p.ID, "u1", 2)
		if err != nil || ok {
			t.Errorf("LockAllowance of a user at the limit = %t, %v; want refused", ok, err)
		}
		seen = append(seen, fmt.Sprintf("LockAllowance at 2/2 matched %t", ok))
		return nil
	})
	// The guards of the statements that give a use back: never below 0, and
	// only the code row of the redemption's own promotion.
	inTx("ReleaseCode at used = 0", func(tx sqlstore.StatementTx) error {
		used, ok, err := tx.ReleaseCode(h.ctx, p.ID, codes[2])
		if err != nil || ok {
			t.Errorf("ReleaseCode of an unused code = %d, %t, %v; want no row", used, ok, err)
		}
		if err := tx.UnuseCode(h.ctx, codes[2]); err != nil {
			t.Errorf("UnuseCode of an unused code: %v", err)
		}
		st, found, err := tx.CodeState(h.ctx, codes[2], "", now)
		if err != nil || !found || st.Used != 0 {
			t.Errorf("after releasing an unused code: used %d, %t, %v; want 0", st.Used, found, err)
		}
		seen = append(seen, fmt.Sprintf("ReleaseCode at 0 matched %t, ReleaseCode+UnuseCode at 0 leave used %d", ok, st.Used))
		return nil
	})
	inTx("ReleaseCode of another promotion's row", func(tx sqlstore.StatementTx) error {
		_, other, err := tx.ReleaseCode(h.ctx, p.ID+1_000_000, codes[0])
		if err != nil || other {
			t.Errorf("ReleaseCode naming another promotion = %t, %v; want no row", other, err)
		}
		used, own, err := tx.ReleaseCode(h.ctx, p.ID, codes[0])
		if err != nil || !own || used != 1 {
			t.Errorf("ReleaseCode of its own row = %d, %t, %v; want 1 left", used, own, err)
		}
		seen = append(seen, fmt.Sprintf("ReleaseCode naming another promotion matched %t, its own %t", other, own))
		return nil
	})
	inTx("ReleaseAllowance at used = 0", func(tx sqlstore.StatementTx) error {
		if ok, err := tx.LockAllowance(h.ctx, p.ID, "u3", 2); err != nil || !ok { // creates u3's row at 0
			t.Errorf("LockAllowance of a new user = %t, %v", ok, err)
		}
		if err := tx.ReleaseAllowance(h.ctx, p.ID, "u3"); err != nil {
			t.Errorf("ReleaseAllowance at 0: %v", err)
		}
		st, _, err := tx.CodeState(h.ctx, codes[2], "u3", now)
		if err != nil || st.UserUsed != 0 {
			t.Errorf("after releasing an unused allowance: %d, %v; want 0", st.UserUsed, err)
		}
		seen = append(seen, fmt.Sprintf("ReleaseAllowance at 0 leaves %d", st.UserUsed))
		return nil
	})
	// The rolled-back transactions changed nothing.
	if st := h.state(codes[0], "u1"); st.Used != 2 || st.UserUsed != 2 {
		t.Errorf("after the rolled-back statement tests: used %d, user used %d; want 2 and 2", st.Used, st.UserUsed)
	}
	return strings.Join(seen, "; ")
}

// A purge marks each promotion it empties as a deletion does, before it
// deletes anything: once its per-user allowances are going, an admin who
// extended its window and topped it up would let every user who had used
// their allowance redeem a new code. The mark checks the window in the same
// statement, so a promotion extended since the purge listed it is left alone.
func testPurgeIsFinal(t *testing.T, h *harness) {
	p, codes := h.generatedCodes("purged", 4, func(np *promo.NewPromotion) {
		np.MaxUsagePerCode, np.PerUserLimit = 1, 1
	})
	if out := h.redeem(redeemReq(codes[0], "alice")); out.Refused != "" {
		t.Fatalf("alice's one use: %+v", out)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	ended, before := now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	end := func(id int64, at time.Time) {
		t.Helper()
		if _, err := h.s.UpdatePromotion(h.ctx, update(id, func(u *promo.PromotionUpdate) {
			u.SetExpiresAt, u.ExpiresAt = true, &at
		})); err != nil {
			t.Fatalf("end promotion %d: %v", id, err)
		}
	}
	end(p.ID, ended)
	// Another ended promotion, extended after the purge listed it: not
	// marked, and it still takes changes.
	extended, _ := h.generatedCodes("extended", 2, nil)
	end(extended.ID, ended)
	end(extended.ID, now.Add(time.Hour))
	if marked, err := h.s.MarkPurge(h.ctx, extended.ID, before, now); err != nil || marked {
		t.Errorf("MarkPurge of a promotion whose window ends after the date = %t, %v; want false", marked, err)
	}
	if _, _, err := h.s.TopUp(h.ctx, topUpReq(extended.ID, 2)); err != nil {
		t.Errorf("top-up of the promotion the purge left alone: %v", err)
	}

	if marked, err := h.s.MarkPurge(h.ctx, p.ID, before, now); err != nil || !marked {
		t.Fatalf("MarkPurge = %t, %v; want true", marked, err)
	}
	for _, table := range []string{"codes", "reservations", "user_uses"} {
		h.purgeAll(table, p.ID)
	}
	wantDeleted := func(what string, err error) {
		t.Helper()
		if promo.ReasonOf(err) != promo.ReasonPromotionDeleted || promo.Code(err) != promo.EGone {
			t.Errorf("%s: %v (reason %q), want 410 promotion_deleted", what, err, promo.ReasonOf(err))
		}
	}
	later, on := now.Add(48*time.Hour), true
	_, err := h.s.UpdatePromotion(h.ctx, update(p.ID, func(u *promo.PromotionUpdate) {
		u.SetExpiresAt, u.ExpiresAt, u.Active = true, &later, &on
	}))
	wantDeleted("PATCH extending the window of a purged promotion", err)
	_, _, err = h.s.TopUp(h.ctx, topUpReq(p.ID, 4))
	wantDeleted("top-up of a purged promotion", err)
	if marked, err := h.s.MarkPurge(h.ctx, p.ID, before, now.Add(time.Minute)); err != nil || !marked {
		t.Errorf("MarkPurge again (a purge run twice) = %t, %v; want true", marked, err)
	}
	if d, err := h.s.Deletion(h.ctx, p.ID); err != nil || d.RequestedAt == nil || !d.RequestedAt.Equal(now) {
		t.Errorf("deletion after two marks = %+v, %v; want requested at the first (%s)", d, err, now)
	}
	a := promo.AuditEntry{ID: newID(), At: now, Actor: "cli:purge", Action: "promotion.purged", PromotionID: p.ID}
	if err := h.s.RecordPurge(h.ctx, a); err != nil {
		t.Fatal(err)
	}
	if st := h.status(p.ID); st.Status() != promo.StatusDeleted || st.Active {
		t.Errorf("status after the purge = %s (active %t), want deleted", st.Status(), st.Active)
	}
}

// A vanity code reserved, its promotion deleted, its code row gone (the
// reservations go in a later statement of the deletion, or never while the
// deleter is down), the same code created again in a new promotion: the old
// reservation holds nothing of the new code (it does not count against its
// limit) and confirming it takes no use of it (a reservation confirms only on
// the code row it was made on, as a rollback releases only the row it took).
func testReservationAfterRecreate(t *testing.T, h *harness) {
	code := "V" + h.tag + "RESAGAIN"
	old := h.create(h.vanity(code, 1))
	held := h.reserve(reserveReq(code, "alice", time.Hour))
	if held.Refused != "" {
		t.Fatalf("reserve: %+v", held)
	}
	if _, err := h.s.RequestDeletion(h.ctx, deletionReq(old.ID)); err != nil {
		t.Fatal(err)
	}
	if n := h.purgeAll("codes", old.ID); n != 1 {
		t.Fatalf("purged %d codes, want 1", n)
	}
	renewed := h.create(h.vanity(code, 1))
	if st := h.state(code, ""); st.Promotion.ID != renewed.ID || st.Reserved != 0 {
		t.Errorf("the re-created code's state: promotion %d, %d reserved; want promotion %d, none reserved",
			st.Promotion.ID, st.Reserved, renewed.ID)
	}
	out := h.confirm(confirmReq(held.Reservation.ID, "order-old"))
	if out.Refused == "" {
		t.Errorf("confirming the old promotion's reservation redeemed the re-created code: %+v (promotion %d)",
			out.Redemption, out.Redemption.PromotionID)
	}
	if u := h.used(code); u != 0 {
		t.Errorf("the re-created code has %d uses after the old reservation's confirm, want 0", u)
	}
	if out := h.redeem(redeemReq(code, "bob")); out.Refused != "" || out.Redemption.PromotionID != renewed.ID {
		t.Errorf("a shopper of the re-created max-1 code: %+v; want the one use", out)
	}
}
