//go:build integration

package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// durableWorld is a migrated store on a new file, a connection of the
// test's own that sees its commits (PRAGMA data_version moves on every
// commit of another connection), and builders of the state the write
// paths need.
type durableWorld struct {
	t    *testing.T
	ctx  context.Context
	st   *sqlite.Store
	path string
	conn *sql.Conn
	n    atomic.Int64 // ids: ops run concurrently (TestAdversarialFlushFails)
}

func newDurableWorld(t *testing.T, group int) *durableWorld {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "promocodes.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path, RedeemGroup: group})
	st = storetest.Migrated(t, st, err)
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &durableWorld{t: t, ctx: ctx, st: st, path: path, conn: conn}
}

// dataVersion is the reader's data_version: it changes once another
// connection has committed.
func (w *durableWorld) dataVersion() int64 {
	w.t.Helper()
	var v int64
	if err := w.conn.QueryRowContext(w.ctx, "PRAGMA data_version").Scan(&v); err != nil {
		w.t.Fatal(err)
	}
	return v
}

func (w *durableWorld) id(prefix string) string {
	return fmt.Sprintf("%s-%s-%06d", prefix, strings.ReplaceAll(w.t.Name(), "/", "-"), w.n.Add(1))
}

func (w *durableWorld) vanity(maxUses int) (promo.Promotion, string) {
	w.t.Helper()
	code := strings.ToUpper(strings.ReplaceAll(w.id("V"), "-", ""))
	code = code[max(0, len(code)-30):]
	return vanity(w.t, w.st, code, maxUses, 1), code
}

func (w *durableWorld) redeem(code, key string) promo.RedeemRequest {
	w.t.Helper()
	req := redeemReq(code, w.id("u"), key)
	out, err := w.st.Redeem(w.ctx, req)
	if err != nil || out.Refused != "" {
		w.t.Fatalf("redeem %s: %+v, %v", code, out, err)
	}
	return req
}

// generated creates a generated promotion of count codes in one batch and
// answers it with its batch.
func (w *durableWorld) generated(count int64) (promo.Promotion, promo.Batch) {
	w.t.Helper()
	p, _, err := w.st.CreatePromotion(w.ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: w.id("gen"),
		Kind: promo.KindGenerated, CodeCount: count, Format: &promo.Format{Charset: "numeric", Length: 15, Prefix: "C"},
		MaxUsagePerCode: 1, PerUserLimit: 1, CounterName: w.id("ctr")}, BatchSize: count, SeqLimit: math.MaxInt64})
	if err != nil {
		w.t.Fatal(err)
	}
	bs, err := w.st.IncompleteBatches(w.ctx, p.ID)
	if err != nil || len(bs) != 1 {
		w.t.Fatalf("batches of %d: %v, %v", p.ID, bs, err)
	}
	return p, bs[0]
}

// chunk is [from, from+n) of b, codes unique to the promotion.
func (w *durableWorld) chunk(b promo.Batch, from int64, n int) promo.Chunk {
	c := promo.Chunk{Batch: b.Ref(), From: from, Count: n, CodeLen: 16, CounterName: w.id("repl"),
		Replace: func(dst []byte, seq uint64) []byte { return fmt.Appendf(dst, "R%015d", seq) }}
	for i := range n {
		c.Codes = fmt.Appendf(c.Codes, "G%05d%010d", b.PromotionID%100000, int64(b.SeqStart)+from+int64(i))
	}
	return c
}

func (w *durableWorld) audit(pid int64) promo.AuditEntry {
	return promo.AuditEntry{ID: w.id("a"), At: time.Now().UTC().Truncate(time.Microsecond), Actor: "adv", PromotionID: pid}
}

// durableCase is one write path: setup builds its state (flushes not
// held) and returns the operation, which must commit.
type durableCase struct {
	name  string
	setup func(w *durableWorld) func() error
}

func durableCases() []durableCase {
	now := func() time.Time { return time.Now().UTC() }
	return []durableCase{
		{"Redeem", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			return func() error {
				out, err := w.st.Redeem(w.ctx, redeemReq(code, w.id("u"), w.id("k")))
				if err == nil && out.Refused != "" {
					err = fmt.Errorf("refused %s", out.Refused)
				}
				return err
			}
		}},
		{"RedeemRefused", func(w *durableWorld) func() error {
			_, code := w.vanity(1)
			w.redeem(code, "")
			return func() error { // exhausted: the refusal's key record commits
				out, err := w.st.Redeem(w.ctx, redeemReq(code, w.id("u"), w.id("k")))
				if err == nil && out.Refused == "" {
					err = errors.New("not refused")
				}
				return err
			}
		}},
		{"RedeemBatch", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			return func() error {
				reqs := []promo.RedeemRequest{redeemReq(code, w.id("u"), w.id("k")), redeemReq(code, w.id("u"), ""),
					redeemReq(code, w.id("u"), w.id("k"))}
				res, err := w.st.RedeemBatch(w.ctx, reqs)
				for _, r := range res {
					if err == nil && (r.Err != nil || r.Outcome.Refused != "") {
						err = fmt.Errorf("member: %+v", r)
					}
				}
				return err
			}
		}},
		{"Reserve", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			return func() error {
				_, err := w.st.Reserve(w.ctx, promo.ReserveRequest{ID: w.id("r"), Code: code, UserID: w.id("u"),
					Now: now(), TTL: time.Minute, IdempotencyKey: w.id("k"), RequestHash: "h"})
				return err
			}
		}},
		{"Confirm", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			id := w.id("r")
			if _, err := w.st.Reserve(w.ctx, promo.ReserveRequest{ID: id, Code: code, UserID: w.id("u"), Now: now(),
				TTL: time.Minute}); err != nil {
				w.t.Fatal(err)
			}
			return func() error {
				_, err := w.st.Confirm(w.ctx, promo.ConfirmRequest{ReservationID: id, RedemptionID: w.id("d"),
					EventID: w.id("e"), OrderID: "o", Now: now()})
				return err
			}
		}},
		{"Release", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			id := w.id("r")
			if _, err := w.st.Reserve(w.ctx, promo.ReserveRequest{ID: id, Code: code, UserID: w.id("u"), Now: now(),
				TTL: time.Minute}); err != nil {
				w.t.Fatal(err)
			}
			return func() error { _, _, err := w.st.Release(w.ctx, id, now()); return err }
		}},
		{"Rollback", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			req := w.redeem(code, "")
			return func() error {
				_, _, err := w.st.Rollback(w.ctx, promo.RollbackRequest{RedemptionID: req.ID, EventID: w.id("e"),
					Reason: "adv", Now: now()})
				return err
			}
		}},
		{"CreatePromotion", func(w *durableWorld) func() error {
			code := strings.ToUpper(strings.ReplaceAll(w.id("CP"), "-", ""))
			code = code[max(0, len(code)-30):]
			return func() error {
				_, _, err := w.st.CreatePromotion(w.ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: code,
					Kind: promo.KindVanity, VanityCode: code, MaxUsagePerCode: 1, PerUserLimit: 1}, IdempotencyKey: w.id("k")})
				return err
			}
		}},
		{"TopUp", func(w *durableWorld) func() error {
			p, _ := w.generated(10)
			return func() error {
				_, _, err := w.st.TopUp(w.ctx, promo.TopUpRequest{PromotionID: p.ID, CodeCount: 10, BatchSize: 10,
					SeqLimit: math.MaxInt64, Actor: "adv", Now: now(), AuditID: w.id("a")})
				return err
			}
		}},
		{"UpdatePromotion", func(w *durableWorld) func() error {
			p, _ := w.vanity(10)
			name := "renamed"
			return func() error {
				_, err := w.st.UpdatePromotion(w.ctx, promo.PromotionUpdate{ID: p.ID, Name: &name, Actor: "adv",
					Now: now(), AuditID: w.id("a")})
				return err
			}
		}},
		{"SetPromotionActive", func(w *durableWorld) func() error {
			p, _ := w.vanity(10)
			return func() error { return w.st.SetPromotionActive(w.ctx, p.ID, false) }
		}},
		{"CancelPromotion", func(w *durableWorld) func() error {
			p, _ := w.generated(10)
			return func() error {
				_, err := w.st.CancelPromotion(w.ctx, promo.CancelRequest{PromotionID: p.ID, Actor: "adv", Now: now(),
					AuditID: w.id("a")})
				return err
			}
		}},
		{"RevokeCode", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			return func() error {
				_, _, err := w.st.RevokeCode(w.ctx, promo.RevokeRequest{Code: code, Reason: "adv", Actor: "adv",
					Now: now(), AuditID: w.id("a")})
				return err
			}
		}},
		{"RequestDeletion", func(w *durableWorld) func() error {
			p, _ := w.vanity(10)
			return func() error { _, err := w.st.RequestDeletion(w.ctx, w.audit(p.ID)); return err }
		}},
		{"PurgeRowsCodes", func(w *durableWorld) func() error {
			p, _ := w.vanity(10)
			if _, err := w.st.RequestDeletion(w.ctx, w.audit(p.ID)); err != nil {
				w.t.Fatal(err)
			}
			return func() error { _, err := w.st.PurgeRows(w.ctx, "codes", p.ID, 10); return err }
		}},
		{"PurgeRowsRedemptions", func(w *durableWorld) func() error {
			p, code := w.vanity(10)
			w.redeem(code, w.id("k"))
			if _, err := w.st.RequestDeletion(w.ctx, w.audit(p.ID)); err != nil {
				w.t.Fatal(err)
			}
			return func() error { _, err := w.st.PurgeRows(w.ctx, "redemptions", p.ID, 10); return err }
		}},
		{"FinishDeletion", func(w *durableWorld) func() error {
			p, _ := w.vanity(10)
			if _, err := w.st.RequestDeletion(w.ctx, w.audit(p.ID)); err != nil {
				w.t.Fatal(err)
			}
			if _, err := w.st.PurgeRows(w.ctx, "codes", p.ID, 10); err != nil {
				w.t.Fatal(err)
			}
			return func() error { return w.st.FinishDeletion(w.ctx, w.audit(p.ID)) }
		}},
		{"CommitChunk", func(w *durableWorld) func() error {
			_, b := w.generated(10)
			return func() error { _, err := w.st.CommitChunk(w.ctx, w.chunk(b, 0, 10)); return err }
		}},
		{"Issue", func(w *durableWorld) func() error {
			p, b := w.generated(10)
			if _, err := w.st.CommitChunk(w.ctx, w.chunk(b, 0, 10)); err != nil {
				w.t.Fatal(err)
			}
			return func() error {
				_, err := w.st.Issue(w.ctx, promo.IssueRequest{ID: w.id("i"), EventID: w.id("e"), PromotionID: p.ID,
					UserID: w.id("u"), Count: 2, Actor: "adv", Now: now(), IdempotencyKey: w.id("k"), RequestHash: "h"})
				return err
			}
		}},
		{"ClaimEvents", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			w.redeem(code, "")
			return func() error {
				evs, err := w.st.ClaimEvents(w.ctx, 1000, time.Minute)
				if err == nil && len(evs) == 0 {
					err = errors.New("no event claimed")
				}
				return err
			}
		}},
		{"MarkEventsPublished", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			w.redeem(code, "")
			evs, err := w.st.ClaimEvents(w.ctx, 1000, time.Minute)
			if err != nil || len(evs) == 0 {
				w.t.Fatalf("claim: %d, %v", len(evs), err)
			}
			var seqs []int64
			for _, ev := range evs {
				seqs = append(seqs, ev.Seq)
			}
			return func() error { return w.st.MarkEventsPublished(w.ctx, seqs) }
		}},
		{"PruneEvents", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			w.redeem(code, "")
			evs, err := w.st.ClaimEvents(w.ctx, 1000, time.Minute)
			if err != nil {
				w.t.Fatal(err)
			}
			var seqs []int64
			for _, ev := range evs {
				seqs = append(seqs, ev.Seq)
			}
			if err := w.st.MarkEventsPublished(w.ctx, seqs); err != nil {
				w.t.Fatal(err)
			}
			if _, err := w.st.RollUp(w.ctx, 1000); err != nil { // only counted events are pruned
				w.t.Fatal(err)
			}
			return func() error {
				n, err := w.st.PruneEvents(w.ctx, now().Add(time.Hour), 1000)
				if err == nil && n == 0 {
					err = errors.New("nothing pruned")
				}
				return err
			}
		}},
		{"ClaimPendingBatches", func(w *durableWorld) func() error {
			w.generated(10)
			return func() error {
				bs, err := w.st.ClaimPendingBatches(w.ctx, 100, time.Minute)
				if err == nil && len(bs) == 0 {
					err = errors.New("no batch claimed")
				}
				return err
			}
		}},
		{"MarkPublished", func(w *durableWorld) func() error {
			_, b := w.generated(10)
			return func() error { return w.st.MarkPublished(w.ctx, []promo.BatchRef{b.Ref()}) }
		}},
		{"SetBatchState", func(w *durableWorld) func() error {
			_, b := w.generated(10)
			return func() error { return w.st.SetBatchState(w.ctx, b.Ref(), promo.BatchRetrying, "adv") }
		}},
		{"RollUp", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			w.redeem(code, "")
			return func() error { _, err := w.st.RollUp(w.ctx, 1000); return err }
		}},
		{"AddRefusals", func(w *durableWorld) func() error {
			p, _ := w.vanity(10)
			return func() error {
				return w.st.AddRefusals(w.ctx, []promo.RefusalCount{{PromotionID: p.ID, Reason: promo.Reason("code_exhausted"),
					Hour: now().Truncate(time.Hour), N: 3}})
			}
		}},
		{"SweepReservations", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			if _, err := w.st.Reserve(w.ctx, promo.ReserveRequest{ID: w.id("r"), Code: code, UserID: w.id("u"),
				Now: now(), TTL: time.Second}); err != nil {
				w.t.Fatal(err)
			}
			return func() error {
				n, err := w.st.SweepReservations(w.ctx, now().Add(time.Hour), 100)
				if err == nil && n == 0 {
					err = errors.New("nothing swept")
				}
				return err
			}
		}},
		{"SweepIdempotencyKeys", func(w *durableWorld) func() error {
			_, code := w.vanity(10)
			w.redeem(code, w.id("k"))
			return func() error {
				n, err := w.st.SweepIdempotencyKeys(w.ctx, now().Add(time.Hour), 100)
				if err == nil && n == 0 {
					err = errors.New("nothing swept")
				}
				return err
			}
		}},
	}
}

// TestAdversarialNothingAcknowledgedBeforeFlush drives every write path of
// the store with its WAL flushes held: each must commit (a reader of its own
// sees data_version move) and must not return until the flushes are
// released. On a store with group commit and one without.
func TestAdversarialNothingAcknowledgedBeforeFlush(t *testing.T) {
	for _, group := range []int{0, -1} {
		t.Run(fmt.Sprintf("group=%d", group), func(t *testing.T) {
			w := newDurableWorld(t, group)
			for _, c := range durableCases() {
				t.Run(c.name, func(t *testing.T) {
					w.t = t
					op := c.setup(w)
					outcome := heldOutcome(w, op)
					t.Logf("adversarial: %s group=%d [sqlite]: %s", c.name, group, outcome)
				})
			}
		})
	}
}

// heldOutcome runs op with the flushes held and says what happened; a
// failure of the promise fails the test.
func heldOutcome(w *durableWorld, op func() error) string {
	t := w.t
	t.Helper()
	v0 := w.dataVersion()
	flushes0 := w.st.Flushes()
	_, release := w.st.HoldFlushes()
	var once sync.Once
	rel := func() { once.Do(release) }
	defer rel()
	done := make(chan error, 1)
	go func() { done <- op() }()
	deadline := time.Now().Add(10 * time.Second)
	committed := false
	for !committed && time.Now().Before(deadline) {
		select {
		case err := <-done:
			if w.dataVersion() != v0 && err == nil {
				t.Errorf("returned success with its commit visible and no flush completed (flushes %d -> %d)",
					flushes0, w.st.Flushes())
				return "DEFECT: acknowledged before its flush"
			}
			t.Errorf("returned (%v) with flushes held, nothing committed", err)
			return "returned without committing (test setup?)"
		default:
		}
		committed = w.dataVersion() != v0
		if !committed {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if !committed {
		t.Fatal("no commit seen in 10s")
	}
	select {
	case err := <-done:
		t.Errorf("returned (%v) after its commit, before any flush was released", err)
		return "DEFECT: acknowledged before its flush"
	case <-time.After(150 * time.Millisecond):
	}
	if f := w.st.Flushes(); f != flushes0 {
		t.Errorf("flushes completed while held: %d -> %d", flushes0, f)
	}
	rel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after the flush: %v", err)
			return fmt.Sprintf("error after the flush: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not returned 10s after the flushes were released")
	}
	return fmt.Sprintf("held (committed, not returned until released; %d flush(es) after)", w.st.Flushes()-flushes0)
}

// replayCase is a write whose repeat (its idempotency key, or the same
// change again) is answered from what the first committed: the repeat must
// not be answered before the first's flush either.
type replayCase struct {
	name  string
	setup func(w *durableWorld) (first, again func() error)
}

func replayCases() []replayCase {
	now := func() time.Time { return time.Now().UTC() }
	ok := func(out promo.RedeemOutcome, err error) error {
		if err == nil && out.Refused != "" {
			err = fmt.Errorf("refused %s", out.Refused)
		}
		return err
	}
	return []replayCase{
		{"RedeemKey", func(w *durableWorld) (func() error, func() error) {
			_, code := w.vanity(10)
			req := redeemReq(code, w.id("u"), w.id("k"))
			f := func() error { return ok(w.st.Redeem(w.ctx, req)) }
			return f, f
		}},
		{"RedeemBatchKey", func(w *durableWorld) (func() error, func() error) {
			_, code := w.vanity(10)
			req := redeemReq(code, w.id("u"), w.id("k"))
			return func() error { return ok(w.st.Redeem(w.ctx, req)) }, func() error {
				res, err := w.st.RedeemBatch(w.ctx, []promo.RedeemRequest{req})
				if err == nil {
					err = ok(res[0].Outcome, res[0].Err)
				}
				return err
			}
		}},
		{"ReserveKey", func(w *durableWorld) (func() error, func() error) {
			_, code := w.vanity(10)
			req := promo.ReserveRequest{ID: w.id("r"), Code: code, UserID: w.id("u"), Now: now(), TTL: time.Minute,
				IdempotencyKey: w.id("k"), RequestHash: "h"}
			f := func() error { _, err := w.st.Reserve(w.ctx, req); return err }
			return f, f
		}},
		{"CreatePromotionKey", func(w *durableWorld) (func() error, func() error) {
			code := strings.ToUpper(strings.ReplaceAll(w.id("CK"), "-", ""))
			np := promo.NewPromotion{Promotion: promo.Promotion{Name: code, Kind: promo.KindVanity, VanityCode: code,
				MaxUsagePerCode: 1, PerUserLimit: 1}, IdempotencyKey: w.id("k")}
			f := func() error { _, _, err := w.st.CreatePromotion(w.ctx, np); return err }
			return f, f
		}},
		{"TopUpKey", func(w *durableWorld) (func() error, func() error) {
			p, _ := w.generated(10)
			req := promo.TopUpRequest{PromotionID: p.ID, CodeCount: 10, BatchSize: 10, SeqLimit: math.MaxInt64,
				Actor: "adv", Now: now(), AuditID: w.id("a"), IdempotencyKey: w.id("k"), RequestHash: "h"}
			f := func() error { _, _, err := w.st.TopUp(w.ctx, req); return err }
			return f, f
		}},
		{"IssueKey", func(w *durableWorld) (func() error, func() error) {
			p, b := w.generated(10)
			if _, err := w.st.CommitChunk(w.ctx, w.chunk(b, 0, 10)); err != nil {
				w.t.Fatal(err)
			}
			req := promo.IssueRequest{ID: w.id("i"), EventID: w.id("e"), PromotionID: p.ID, UserID: w.id("u"), Count: 2,
				Actor: "adv", Now: now(), IdempotencyKey: w.id("k"), RequestHash: "h"}
			f := func() error { _, err := w.st.Issue(w.ctx, req); return err }
			return f, f
		}},
		{"RollbackAgain", func(w *durableWorld) (func() error, func() error) {
			_, code := w.vanity(10)
			req := w.redeem(code, "")
			rb := promo.RollbackRequest{RedemptionID: req.ID, EventID: w.id("e"), Reason: "adv", Now: now()}
			f := func() error { _, _, err := w.st.Rollback(w.ctx, rb); return err }
			return f, f
		}},
		{"ConfirmAgain", func(w *durableWorld) (func() error, func() error) {
			_, code := w.vanity(10)
			id := w.id("r")
			if _, err := w.st.Reserve(w.ctx, promo.ReserveRequest{ID: id, Code: code, UserID: w.id("u"), Now: now(),
				TTL: time.Minute}); err != nil {
				w.t.Fatal(err)
			}
			req := promo.ConfirmRequest{ReservationID: id, RedemptionID: w.id("d"), EventID: w.id("e"), OrderID: "o", Now: now()}
			f := func() error { _, err := w.st.Confirm(w.ctx, req); return err }
			return f, f
		}},
		{"ReleaseAgain", func(w *durableWorld) (func() error, func() error) {
			_, code := w.vanity(10)
			id := w.id("r")
			if _, err := w.st.Reserve(w.ctx, promo.ReserveRequest{ID: id, Code: code, UserID: w.id("u"), Now: now(),
				TTL: time.Minute}); err != nil {
				w.t.Fatal(err)
			}
			f := func() error { _, _, err := w.st.Release(w.ctx, id, now()); return err }
			return f, f
		}},
		{"RevokeAgain", func(w *durableWorld) (func() error, func() error) {
			_, code := w.vanity(10)
			f := func() error {
				_, _, err := w.st.RevokeCode(w.ctx, promo.RevokeRequest{Code: code, Reason: "adv", Actor: "adv",
					Now: now(), AuditID: w.id("a")})
				return err
			}
			return f, f
		}},
		{"CancelAgain", func(w *durableWorld) (func() error, func() error) {
			p, _ := w.generated(10)
			f := func() error {
				_, err := w.st.CancelPromotion(w.ctx, promo.CancelRequest{PromotionID: p.ID, Actor: "adv", Now: now(),
					AuditID: w.id("a")})
				return err
			}
			return f, f
		}},
		{"RequestDeletionAgain", func(w *durableWorld) (func() error, func() error) {
			p, _ := w.vanity(10)
			f := func() error { _, err := w.st.RequestDeletion(w.ctx, w.audit(p.ID)); return err }
			return f, f
		}},
		{"SetInactiveAgain", func(w *durableWorld) (func() error, func() error) {
			p, _ := w.vanity(10)
			f := func() error { return w.st.SetPromotionActive(w.ctx, p.ID, false) }
			return f, f
		}},
	}
}

// TestAdversarialReplayNotBeforeFlush: with the flushes held, a write
// commits and waits; its repeat (same key, same change) must not be
// answered (success, replayed) before the first's flush either: it is read
// on the writer, and its own wait covers the first's commit.
func TestAdversarialReplayNotBeforeFlush(t *testing.T) {
	for _, group := range []int{0, -1} {
		t.Run(fmt.Sprintf("group=%d", group), func(t *testing.T) {
			w := newDurableWorld(t, group)
			for _, c := range replayCases() {
				t.Run(c.name, func(t *testing.T) {
					w.t = t
					first, again := c.setup(w)
					t.Logf("adversarial: replay %s group=%d [sqlite]: %s", c.name, group, replayOutcome(w, first, again))
				})
			}
		})
	}
}

func replayOutcome(w *durableWorld, first, again func() error) string {
	t := w.t
	t.Helper()
	v0 := w.dataVersion()
	_, release := w.st.HoldFlushes()
	var once sync.Once
	rel := func() { once.Do(release) }
	defer rel()
	done1, done2 := make(chan error, 1), make(chan error, 1)
	go func() { done1 <- first() }()
	for deadline := time.Now().Add(10 * time.Second); w.dataVersion() == v0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first write did not commit in 10s")
		}
	}
	go func() { done2 <- again() }()
	select {
	case err := <-done2:
		if err == nil {
			t.Errorf("the repeat was answered success before the first's flush")
			return "DEFECT: repeat acknowledged before the first's flush"
		}
		t.Errorf("the repeat failed before the first's flush: %v", err)
		return fmt.Sprintf("repeat answered an error at once: %v", err)
	case err := <-done1:
		t.Errorf("the first returned (%v) before its flush", err)
		return "DEFECT: first acknowledged before its flush"
	case <-time.After(200 * time.Millisecond):
	}
	rel()
	for i, ch := range []chan error{done1, done2} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("call %d after the flush: %v", i+1, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d not answered after the flushes were released", i+1)
		}
	}
	return "held (neither answered before the flush)"
}

// TestAdversarialChunkSeenBeforeFlush: what a second worker (a duplicate
// delivery of a batch's event, or the same event after its partition moved
// to another consumer of this process) is told while the first's last chunk
// waits for its flush. The generator takes EMoved, then LoadBatch's done ==
// count, as the batch complete and commits the event's offset: neither may
// be answered before the first's flush, or a power cut in that window loses
// the chunk with its event's offset committed (the first never returns).
func TestAdversarialChunkSeenBeforeFlush(t *testing.T) {
	w := newDurableWorld(t, 0)
	_, b := w.generated(10)
	v0 := w.dataVersion()
	_, release := w.st.HoldFlushes()
	var once sync.Once
	defer once.Do(release)
	first := make(chan error, 1)
	go func() { _, err := w.st.CommitChunk(w.ctx, w.chunk(b, 0, 10)); first <- err }()
	for deadline := time.Now().Add(10 * time.Second); w.dataVersion() == v0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no commit")
		}
	}
	again := make(chan error, 1)
	go func() { _, err := w.st.CommitChunk(w.ctx, w.chunk(b, 0, 10)); again <- err }()
	type loaded struct {
		b   promo.BatchWork
		err error
	}
	load := make(chan loaded, 1)
	go func() { lb, err := w.st.LoadBatch(w.ctx, b.Ref()); load <- loaded{lb, err} }()
	dup, lbs := "not answered before the flush", "not answered before the flush"
	failed := false
	for _, wait := range []time.Duration{200 * time.Millisecond, 0} {
		select {
		case err := <-again:
			dup, failed = fmt.Sprintf("answered before the flush: %v", err), true
		case <-time.After(wait):
		}
		select {
		case l := <-load:
			lbs, failed = fmt.Sprintf("answered before the flush: done %d of %d (%v)", l.b.Batch.Done, l.b.Batch.CodeCount, l.err), true
		case <-time.After(wait):
		}
	}
	select {
	case err := <-first:
		t.Fatalf("the first chunk returned (%v) before its flush", err)
	default:
	}
	once.Do(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if !failed {
		if err := <-again; !promo.Is(err, promo.EMoved) {
			t.Errorf("the duplicate chunk after the flush: %v, want EMoved", err)
		}
		if l := <-load; l.err != nil || l.b.Batch.Done != 10 {
			t.Errorf("LoadBatch after the flush: done %d, %v", l.b.Batch.Done, l.err)
		}
	}
	t.Logf("adversarial: duplicate chunk while the first waits for its flush [sqlite]: its CommitChunk %s; LoadBatch %s", dup, lbs)
	if failed {
		t.Error("a duplicate worker was told the batch's progress before its flush")
	}
}
