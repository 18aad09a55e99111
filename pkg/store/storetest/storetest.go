// Package storetest is the contract every promocodes store must pass: the
// behaviour the API, the generator and the shovel rely on, written once and
// run against each dialect (SQLite, PostgreSQL, SQL Server) by that store's
// tests:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Store { return openMigrated(t) })
//	}
//
// The suite uses only the Store methods, never SQL, and renders codes itself
// (no dependency on pkg/codes). Every subtest creates its own promotions and
// counters, and codes carry a random per-subtest tag, so subtests may share
// one database; they run in parallel, each with a store from open.
package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Store is the method set of a store, as the suite drives it.
type Store interface {
	CreatePromotion(ctx context.Context, np promo.NewPromotion) (p promo.Promotion, created bool, err error)
	GetPromotion(ctx context.Context, id int64) (promo.PromotionStatus, error)
	ExportCodes(ctx context.Context, id int64, fn func(code string) error) error
	PendingBatches(ctx context.Context, limit int) ([]promo.Batch, error)
	MarkPublished(ctx context.Context, refs []promo.BatchRef) error
	ClaimPendingBatches(ctx context.Context, limit int, lease time.Duration) ([]promo.Batch, error)
	LoadBatch(ctx context.Context, ref promo.BatchRef) (promo.BatchWork, error)
	CommitChunk(ctx context.Context, c promo.Chunk) (done int64, err error)
	SetBatchState(ctx context.Context, ref promo.BatchRef, state promo.BatchState, lastError string) error
	IncompleteBatches(ctx context.Context, promotionID int64) ([]promo.Batch, error)
	GetCode(ctx context.Context, code string) (promo.CodeInfo, error)
	RedemptionStore
	ListPromotions(ctx context.Context, f promo.ListFilter) ([]promo.PromotionStatus, error)
	OldestUnpublished(ctx context.Context) (time.Time, bool, error)
	Stats(ctx context.Context, q promo.StatsQuery) (promo.PromotionStats, error)
	AddRefusals(ctx context.Context, counts []promo.RefusalCount) error
	RefusalsByReason(ctx context.Context, promotionID int64) ([]promo.ReasonCount, error)
	ReservationStore
	LifecycleStore
	TotalsStore
	InspectStore
	PersonalStore
	// Migrate applies the pending migrations (none: the suite's stores are
	// migrated, so running it again must change nothing).
	Migrate(ctx context.Context) error
}

// Migrated returns the store that a dialect's Open returned (s, err) after
// migrating it, and closes it when tb ends; an error of either fails tb.
func Migrated[S interface {
	Migrate(context.Context) error
	Close()
}](tb testing.TB, s S, err error) S {
	tb.Helper()
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(s.Close)
	if err := s.Migrate(context.Background()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return s
}

// OpenErrorsHideDSN checks that open's error for each DSN (each holding
// secret, each unusable) never shows the password.
func OpenErrorsHideDSN(t *testing.T, secret string, open func(ctx context.Context, dsn string) error, dsns ...string) {
	for _, dsn := range dsns {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := open(ctx, dsn)
		cancel()
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Open error shows the password: %v", err)
		}
		t.Logf("Open error: %v", err)
	}
}

// cases are named contract cases, each run in its own parallel subtest.
type cases []struct {
	name string
	fn   func(t *testing.T, h *harness)
}

// Run runs the contract suite. open returns a migrated store for one subtest
// and arranges (t.Cleanup) to close it; it may return stores on a shared
// database.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := cases{
		{"CreateSplitsIntoBatches", testCreateSplitsIntoBatches},
		{"CreateRoundTripsFields", testCreateRoundTripsFields},
		{"SameCounterDisjointRanges", testSameCounterDisjointRanges},
		{"SeqLimitRefusalWritesNothing", testSeqLimitRefusal},
		{"Idempotency", testIdempotency},
		{"IdempotencyConcurrent", testIdempotencyConcurrent},
		{"Vanity", testVanity},
		{"CommitChunk", testCommitChunk},
		{"CommitChunkRejects", testCommitChunkRejects},
		{"CommitChunkCollisionWithVanity", testCommitChunkCollisionWithVanity},
		{"CommitChunkCollisionInsideChunk", testCommitChunkCollisionInsideChunk},
		{"CommitChunkCollisionAcrossPromotions", testCommitChunkCollisionAcrossPromotions},
		{"CommitChunkReplacementBeyondCodeSpace", testCommitChunkReplacementBeyondSpace},
		{"CommitChunkConcurrentSameChunk", testCommitChunkConcurrent},
		{"CompleteBatches", testCompleteBatches},
		{"SetBatchState", testSetBatchState},
		{"IncompleteBatches", testIncompleteBatches},
		{"ExportCodes", testExportCodes},
		{"Redeem", testRedeem},
		{"RedeemConcurrent", testRedeemConcurrent},
		{"RedeemWindowAndSwitch", testRedeemWindowAndSwitch},
		{"RedeemPerUserLimit", testRedeemPerUserLimit},
		{"RedeemPerUserLimitConcurrent", testRedeemPerUserLimitConcurrent},
		{"RedeemIdempotency", testRedeemIdempotency},
		{"ScopedKeys", testScopedKeys},
		{"RedeemIdempotencyConcurrent", testRedeemIdempotencyConcurrent},
		{"Rollback", testRollback},
		{"RollbackRacingRedemptions", testRollbackRacingRedemptions},
		{"RedemptionAudit", testRedemptionAudit},
		{"EventOutbox", testEventOutbox},
		{"RedemptionEventPayload", testRedemptionEventPayload},
		{"CodeSpaces", testCodeSpaces},
		{"RefusalCounts", testRefusalCounts},
		{"NotFound", testNotFound},
		{"PendingBatchesAndMarkPublished", testPendingBatches},
		{"ClaimPendingBatches", testClaimPendingBatches},
		{"KeyFingerprintRoundTrips", testKeyFingerprint},
		{"ClaimPendingBatchesConcurrent", testClaimPendingBatchesConcurrent},
		{"ListPromotions", testListPromotions},
		{"OldestUnpublished", testOldestUnpublished},
		{"Stats", testStats},
		{"MigrateIsIdempotent", func(t *testing.T, h *harness) {
			if err := h.s.Migrate(h.ctx); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
		}},
	}
	tests = append(tests, reservationTests...)
	tests = append(tests, lifecycleTests...)
	tests = append(tests, totalsTests...)
	tests = append(tests, guardTests...)
	tests = append(tests, inspectTests...)
	tests = append(tests, redeemBatchTests...)
	tests = append(tests, personalTests...)
	tests = append(tests, refusalOrderTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newHarness(t, open(t)))
		})
	}
}

// harness holds one subtest's store and its code renderers.
type harness struct {
	t   *testing.T
	s   Store
	ctx context.Context
	tag string // random, keeps this subtest's codes apart from others'
}

func newHarness(t *testing.T, s Store) *harness {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	const letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	var b [6]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return &harness{t: t, s: s, ctx: ctx, tag: string(b[:])}
}

// codeLen is the length of every code the suite renders: "C" or "R", the
// 6-letter tag, 15 digits.
const codeLen = 22

// code renders the chunk code for seq.
func (h *harness) code(seq uint64) string { return fmt.Sprintf("C%s%015d", h.tag, seq) }

// replace is the chunks' Replace: a different prefix, so a replacement is
// recognisable.
func (h *harness) replace(dst []byte, seq uint64) []byte {
	return fmt.Appendf(dst, "R%s%015d", h.tag, seq)
}

// counter names a counter unique to the subtest.
func (h *harness) counter(suffix string) string { return h.t.Name() + "/" + h.tag + "/" + suffix }

// generated builds a create request for count codes in batches of size.
func (h *harness) generated(counter string, count, size int64) promo.NewPromotion {
	return promo.NewPromotion{
		Promotion: promo.Promotion{Name: "gen " + h.t.Name(), Kind: promo.KindGenerated, CodeCount: count,
			Format:          &promo.Format{Charset: "numeric", Length: 15, Prefix: "C"},
			MaxUsagePerCode: 1, PerUserLimit: 1, CounterName: h.counter(counter)},
		BatchSize: size,
		SeqLimit:  math.MaxInt64,
	}
}

// vanity builds a create request for one vanity code.
func (h *harness) vanity(code string, maxUsage int) promo.NewPromotion {
	return promo.NewPromotion{Promotion: promo.Promotion{Name: "vanity " + h.t.Name(), Kind: promo.KindVanity,
		CodeCount: 1, VanityCode: code, MaxUsagePerCode: maxUsage, PerUserLimit: 1}}
}

func (h *harness) create(np promo.NewPromotion) promo.Promotion {
	h.t.Helper()
	p, created, err := h.s.CreatePromotion(h.ctx, np)
	if err != nil {
		h.t.Fatalf("CreatePromotion(%s, %d codes): %v", np.Kind, np.CodeCount, err)
	}
	if !created {
		h.t.Fatalf("CreatePromotion(%s): created = false for a new promotion", np.Kind)
	}
	if p.ID <= 0 {
		h.t.Fatalf("CreatePromotion: id %d", p.ID)
	}
	return p
}

// chunk builds the chunk [from, from+count) of batch b, codes rendered from
// the batch's sequence numbers.
func (h *harness) chunk(b promo.Batch, from int64, count int) promo.Chunk {
	c := promo.Chunk{Batch: b.Ref(), From: from, Count: count, CodeLen: codeLen,
		CounterName: h.counter("replacements"), Replace: h.replace}
	c.Codes = make([]byte, 0, count*codeLen)
	for i := range count {
		c.Codes = append(c.Codes, h.code(b.SeqStart+uint64(from)+uint64(i))...)
	}
	return c
}

func (h *harness) commit(c promo.Chunk) int64 {
	h.t.Helper()
	done, err := h.s.CommitChunk(h.ctx, c)
	if err != nil {
		h.t.Fatalf("CommitChunk(%d/%d from %d, %d codes): %v", c.Batch.PromotionID, c.Batch.BatchNo, c.From, c.Count, err)
	}
	return done
}

func (h *harness) batches(id int64) []promo.Batch {
	h.t.Helper()
	bs, err := h.s.IncompleteBatches(h.ctx, id)
	if err != nil {
		h.t.Fatalf("IncompleteBatches(%d): %v", id, err)
	}
	return bs
}

func (h *harness) batch(ref promo.BatchRef) promo.Batch {
	h.t.Helper()
	w, err := h.s.LoadBatch(h.ctx, ref)
	if err != nil {
		h.t.Fatalf("LoadBatch(%v): %v", ref, err)
	}
	return w.Batch
}

func (h *harness) status(id int64) promo.PromotionStatus {
	h.t.Helper()
	st, err := h.s.GetPromotion(h.ctx, id)
	if err != nil {
		h.t.Fatalf("GetPromotion(%d): %v", id, err)
	}
	return st
}

// export returns the promotion's codes, sorted.
func (h *harness) export(id int64) []string {
	h.t.Helper()
	var codes []string
	if err := h.s.ExportCodes(h.ctx, id, func(code string) error {
		codes = append(codes, code)
		return nil
	}); err != nil {
		h.t.Fatalf("ExportCodes(%d): %v", id, err)
	}
	slices.Sort(codes)
	return codes
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, what string, err error, code promo.ErrorCode) {
	t.Helper()
	if !promo.Is(err, code) {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, promo.Code(err), code)
	}
}

// wantField fails unless err is a *promo.Error naming field.
func wantField(t *testing.T, what string, err error, field string) {
	t.Helper()
	var e *promo.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: %v is not a *promo.Error", what, err)
	}
	for _, f := range e.Fields {
		if f.Field == field {
			return
		}
	}
	t.Fatalf("%s: error %v does not name field %q", what, err, field)
}

// checkSplit checks that bs are the batches of p: consecutive, disjoint,
// covering [p.SeqStart, p.SeqStart+p.CodeCount), size each but the last.
func checkSplit(t *testing.T, p promo.Promotion, bs []promo.Batch, size int64) {
	t.Helper()
	want := int((p.CodeCount + size - 1) / size)
	if len(bs) != want {
		t.Fatalf("promotion of %d codes in batches of %d: %d batches, want %d", p.CodeCount, size, len(bs), want)
	}
	next := p.SeqStart
	for i, b := range bs {
		wantCount := min(size, p.CodeCount-int64(i)*size)
		if b.PromotionID != p.ID || b.BatchNo != i || b.SeqStart != next || b.CodeCount != wantCount ||
			b.Done != 0 || b.State != promo.BatchPending {
			t.Fatalf("batch %d = %+v, want promotion %d, batchNo %d, seqStart %d, codeCount %d, done 0, pending",
				i, b, p.ID, i, next, wantCount)
		}
		next += uint64(b.CodeCount)
	}
	if next != p.SeqStart+uint64(p.CodeCount) {
		t.Fatalf("batches end at %d, want %d", next, p.SeqStart+uint64(p.CodeCount))
	}
}

func testCreateSplitsIntoBatches(t *testing.T, h *harness) {
	start := time.Now()
	big := h.create(h.generated("big", 10_000_000, 50_000))
	t.Logf("create 10,000,000 codes / 200 batches: %v", time.Since(start))
	if big.SeqStart != 0 {
		t.Errorf("first promotion on a new counter: SeqStart %d, want 0", big.SeqStart)
	}
	checkSplit(t, big, h.batches(big.ID), 50_000)

	odd := h.create(h.generated("odd", 120_001, 50_000))
	bs := h.batches(odd.ID)
	checkSplit(t, odd, bs, 50_000)
	if bs[2].CodeCount != 20_001 {
		t.Errorf("last batch has %d codes, want 20001", bs[2].CodeCount)
	}

	small := h.create(h.generated("small", 7, 50_000))
	checkSplit(t, small, h.batches(small.ID), 50_000)

	st := h.status(big.ID)
	if st.Batches.Total != 200 || st.GeneratedCount != 0 || st.Batches.Completed != 0 || st.Status() != promo.StatusPending {
		t.Errorf("new promotion progress = %+v, status %s; want 200 batches, nothing generated, pending", st.Progress, st.Status())
	}
}

func testCreateRoundTripsFields(t *testing.T, h *harness) {
	starts := time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.FixedZone("X", 3600))
	expires := starts.Add(48 * time.Hour)
	np := h.generated("rt", 1000, 300)
	np.Name = "winter ünïcode"
	np.MaxUsagePerCode, np.PerUserLimit = 3, 2
	np.StartsAt, np.ExpiresAt = &starts, &expires
	no := false
	np.Format = &promo.Format{Charset: "alnum", Length: 10, Prefix: "WNTR-", Separator: "-", GroupSize: 4, CheckChar: &no}
	before := time.Now().Add(-time.Minute)
	p := h.create(np)
	if p.CreatedAt.Before(before) || p.CreatedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("CreatedAt %v is not now", p.CreatedAt)
	}
	st := h.status(p.ID)
	got := st.Promotion
	if got.Name != np.Name || got.Kind != promo.KindGenerated || got.CodeCount != 1000 || got.MaxUsagePerCode != 3 ||
		got.PerUserLimit != 2 || got.CounterName != np.CounterName || got.SeqStart != p.SeqStart || got.VanityCode != "" {
		t.Errorf("GetPromotion = %+v, want the fields of %+v", got, np.Promotion)
	}
	if got.Format == nil || got.Format.Prefix != "WNTR-" || got.Format.GroupSize != 4 || got.Format.HasCheckChar() {
		t.Errorf("Format = %+v, want %+v", got.Format, np.Format)
	}
	if got.StartsAt == nil || !got.StartsAt.Equal(starts) || got.ExpiresAt == nil || !got.ExpiresAt.Equal(expires) {
		t.Errorf("StartsAt, ExpiresAt = %v, %v; want %v, %v", got.StartsAt, got.ExpiresAt, starts, expires)
	}
	if got.StartsAt != nil && got.StartsAt.Location() != time.UTC {
		t.Errorf("StartsAt in %v, want UTC", got.StartsAt.Location())
	}
	if !got.CreatedAt.Equal(p.CreatedAt) {
		t.Errorf("CreatedAt stored %v, returned at create %v", got.CreatedAt, p.CreatedAt)
	}
	w, err := h.s.LoadBatch(h.ctx, promo.BatchRef{PromotionID: p.ID, BatchNo: 3})
	if err != nil {
		t.Fatalf("LoadBatch: %v", err)
	}
	if w.Promotion.ID != p.ID || w.Promotion.CounterName != np.CounterName || w.Promotion.Format == nil ||
		w.Batch.BatchNo != 3 || w.Batch.CodeCount != 100 || w.Batch.SeqStart != p.SeqStart+900 {
		t.Errorf("LoadBatch = %+v", w)
	}
	// No expiry: NULLs round-trip as nil.
	q := h.create(h.generated("rt2", 1, 1))
	if st := h.status(q.ID); st.StartsAt != nil || st.ExpiresAt != nil {
		t.Errorf("StartsAt, ExpiresAt = %v, %v; want nil", st.StartsAt, st.ExpiresAt)
	}
}

func testSameCounterDisjointRanges(t *testing.T, h *harness) {
	a := h.create(h.generated("shared", 120_001, 50_000))
	b := h.create(h.generated("shared", 1_000, 50_000))
	c := h.create(h.generated("other", 5, 50_000))
	if b.SeqStart != a.SeqStart+uint64(a.CodeCount) {
		t.Errorf("second range starts at %d, want %d (right after the first)", b.SeqStart, a.SeqStart+uint64(a.CodeCount))
	}
	if c.SeqStart != 0 {
		t.Errorf("another counter starts at %d, want 0", c.SeqStart)
	}

	// Concurrent creates on one counter get disjoint ranges too.
	const n = 8
	ps := make([]promo.Promotion, n)
	var wg sync.WaitGroup
	for i := range ps {
		wg.Go(func() {
			p, _, err := h.s.CreatePromotion(h.ctx, h.generated("concurrent", 1000, 300))
			if err != nil {
				t.Errorf("concurrent CreatePromotion: %v", err)
			}
			ps[i] = p
		})
	}
	wg.Wait()
	slices.SortFunc(ps, func(x, y promo.Promotion) int { return int(x.SeqStart) - int(y.SeqStart) })
	for i, p := range ps {
		if p.SeqStart != uint64(i)*1000 {
			t.Fatalf("concurrent ranges start at %v, want 0, 1000, 2000, ...", func() []uint64 {
				var s []uint64
				for _, p := range ps {
					s = append(s, p.SeqStart)
				}
				return s
			}())
		}
	}
}

func testSeqLimitRefusal(t *testing.T, h *harness) {
	np := h.generated("limit", 600, 250)
	np.SeqLimit = 1000
	p := h.create(np)

	over := h.generated("limit", 401, 250)
	over.SeqLimit = 1000
	over.IdempotencyKey, over.RequestHash = "key-"+h.tag, "h1"
	_, _, err := h.s.CreatePromotion(h.ctx, over)
	wantCode(t, "create past SeqLimit", err, promo.ECapacity)
	wantField(t, "create past SeqLimit", err, "codeCount")
	if !strings.Contains(err.Error(), "400") {
		t.Errorf("capacity error %q does not say that 400 codes are left", err)
	}

	// Nothing written: the idempotency key is free (a different hash is not a
	// conflict) and the counter did not move (an exact fit still fits).
	fit := h.generated("limit", 400, 250)
	fit.SeqLimit = 1000
	fit.IdempotencyKey, fit.RequestHash = "key-"+h.tag, "h2"
	q := h.create(fit)
	if q.SeqStart != p.SeqStart+600 {
		t.Errorf("after a refusal the next range starts at %d, want %d", q.SeqStart, p.SeqStart+600)
	}
	one := h.generated("limit", 1, 250)
	one.SeqLimit = 1000
	_, _, err = h.s.CreatePromotion(h.ctx, one)
	wantCode(t, "create on a full counter", err, promo.ECapacity)
}

func testIdempotency(t *testing.T, h *harness) {
	np := h.generated("idem", 1000, 300)
	np.IdempotencyKey, np.RequestHash = "idem-"+h.tag, "hash-1"
	p := h.create(np)

	again, created, err := h.s.CreatePromotion(h.ctx, np)
	if err != nil || created {
		t.Fatalf("repeat create: created %v, err %v; want the stored promotion", created, err)
	}
	if again.ID != p.ID || again.SeqStart != p.SeqStart || again.CodeCount != p.CodeCount {
		t.Errorf("repeat create returned %+v, want %+v", again, p)
	}

	other := np
	other.RequestHash = "hash-2"
	_, _, err = h.s.CreatePromotion(h.ctx, other)
	wantCode(t, "same key, other request", err, promo.EConflict)
	wantField(t, "same key, other request", err, "Idempotency-Key")

	// Only one range was reserved.
	next := h.create(h.generated("idem", 1, 1))
	if next.SeqStart != p.SeqStart+1000 {
		t.Errorf("counter after idempotent repeats is at %d, want %d", next.SeqStart, p.SeqStart+1000)
	}

	// Vanity creates are idempotent too.
	v := h.vanity("V"+h.tag+"IDEM", 1)
	v.IdempotencyKey, v.RequestHash = "idem-v-"+h.tag, "hv"
	vp := h.create(v)
	vp2, created, err := h.s.CreatePromotion(h.ctx, v)
	if err != nil || created || vp2.ID != vp.ID {
		t.Errorf("repeat vanity create: %+v created %v err %v; want promotion %d, not created", vp2, created, err, vp.ID)
	}
}

func testIdempotencyConcurrent(t *testing.T, h *harness) {
	np := h.generated("idem", 1000, 300)
	np.IdempotencyKey, np.RequestHash = "conc-"+h.tag, "hash"
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ids     = map[int64]int{}
		created int
	)
	for range n {
		wg.Go(func() {
			p, c, err := h.s.CreatePromotion(h.ctx, np)
			if err != nil {
				t.Errorf("concurrent create with one key: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ids[p.ID]++
			if c {
				created++
			}
		})
	}
	wg.Wait()
	if len(ids) != 1 || created != 1 {
		t.Fatalf("%d concurrent creates with one key: promotions %v, %d created; want one promotion, created once", n, ids, created)
	}
	next := h.create(h.generated("idem", 1, 1))
	if next.SeqStart != 1000 {
		t.Errorf("counter after concurrent idempotent creates is at %d, want 1000 (one reservation)", next.SeqStart)
	}
}

func testVanity(t *testing.T, h *harness) {
	code := "V" + h.tag + "MEGADETH21"
	p := h.create(h.vanity(code, 1000))
	st := h.status(p.ID)
	if st.Kind != promo.KindVanity || st.VanityCode != code || st.CodeCount != 1 || st.GeneratedCount != 1 ||
		st.Batches.Total != 0 || st.Status() != promo.StatusCompleted || st.Format != nil {
		t.Errorf("vanity promotion status = %+v (%s)", st, st.Status())
	}
	ci, err := h.s.GetCode(h.ctx, code)
	if err != nil || ci.PromotionID != p.ID || ci.MaxUsage != 1000 || ci.Used != 0 || ci.Code != code {
		t.Errorf("GetCode(vanity) = %+v, %v", ci, err)
	}
	if got := h.export(p.ID); !slices.Equal(got, []string{code}) {
		t.Errorf("export of vanity promotion = %v", got)
	}
	if bs := h.batches(p.ID); len(bs) != 0 {
		t.Errorf("vanity promotion has batches %v", bs)
	}

	dup := h.vanity(code, 5)
	dup.IdempotencyKey, dup.RequestHash = "dup-"+h.tag, "h1"
	_, _, err = h.s.CreatePromotion(h.ctx, dup)
	wantCode(t, "duplicate vanity code", err, promo.EConflict)
	wantField(t, "duplicate vanity code", err, "code")
	// Nothing written: the code keeps its promotion, and the key is free.
	if ci, err := h.s.GetCode(h.ctx, code); err != nil || ci.PromotionID != p.ID || ci.MaxUsage != 1000 {
		t.Errorf("after a duplicate, GetCode = %+v, %v; want promotion %d", ci, err, p.ID)
	}
	free := h.vanity("V"+h.tag+"OTHER", 5)
	free.IdempotencyKey, free.RequestHash = "dup-"+h.tag, "h2"
	h.create(free)
}

func testCommitChunk(t *testing.T, h *harness) {
	p := h.create(h.generated("chunk", 2500, 1000))
	b := h.batches(p.ID)[1]
	if done := h.commit(h.chunk(b, 0, 400)); done != 400 {
		t.Errorf("done after first chunk = %d, want 400", done)
	}
	if done := h.commit(h.chunk(b, 400, 350)); done != 750 {
		t.Errorf("done after second chunk = %d, want 750", done)
	}
	got := h.export(p.ID)
	var want []string
	for i := range 750 {
		want = append(want, h.code(b.SeqStart+uint64(i)))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("export after two chunks: %d codes, want %d (the chunks' codes exactly)", len(got), len(want))
	}
	lb := h.batch(b.Ref())
	if lb.Done != 750 || lb.State != promo.BatchPending {
		t.Errorf("batch after two chunks: done %d, state %s; want 750, pending", lb.Done, lb.State)
	}
	st := h.status(p.ID)
	if st.GeneratedCount != 750 || st.Status() != promo.StatusGenerating {
		t.Errorf("progress %+v, status %s; want 750 generated, generating", st.Progress, st.Status())
	}
	ci, err := h.s.GetCode(h.ctx, h.code(b.SeqStart+10))
	if err != nil || ci.PromotionID != p.ID || ci.Used != 0 || ci.MaxUsage != 1 {
		t.Errorf("GetCode of a committed code = %+v, %v", ci, err)
	}
}

func testCommitChunkRejects(t *testing.T, h *harness) {
	p := h.create(h.generated("rej", 1000, 1000))
	b := h.batches(p.ID)[0]
	h.commit(h.chunk(b, 0, 300))

	// Replay of a committed chunk: EMoved, nothing added.
	_, err := h.s.CommitChunk(h.ctx, h.chunk(b, 0, 300))
	wantCode(t, "replayed chunk", err, promo.EMoved)
	// Stale or future From: EMoved, nothing added (its codes are new ones).
	_, err = h.s.CommitChunk(h.ctx, h.chunk(b, 100, 300))
	wantCode(t, "stale From", err, promo.EMoved)
	_, err = h.s.CommitChunk(h.ctx, h.chunk(b, 500, 100))
	wantCode(t, "From ahead of done", err, promo.EMoved)
	// Past the batch's end: EInvalid.
	_, err = h.s.CommitChunk(h.ctx, h.chunk(b, 300, 701))
	wantCode(t, "chunk past the batch end", err, promo.EInvalid)
	// Unknown batch or promotion: ENotFound.
	bad := h.chunk(b, 300, 10)
	bad.Batch.BatchNo = 1
	_, err = h.s.CommitChunk(h.ctx, bad)
	wantCode(t, "unknown batch", err, promo.ENotFound)
	bad.Batch = promo.BatchRef{PromotionID: p.ID + 1_000_000, BatchNo: 0}
	_, err = h.s.CommitChunk(h.ctx, bad)
	wantCode(t, "unknown promotion", err, promo.ENotFound)
	// Malformed chunk: EInvalid.
	short := h.chunk(b, 300, 10)
	short.Codes = short.Codes[:5*codeLen]
	_, err = h.s.CommitChunk(h.ctx, short)
	wantCode(t, "chunk shorter than Count codes", err, promo.EInvalid)

	if got := h.export(p.ID); len(got) != 300 {
		t.Errorf("after rejected chunks the promotion has %d codes, want 300", len(got))
	}
	if lb := h.batch(b.Ref()); lb.Done != 300 {
		t.Errorf("after rejected chunks done = %d, want 300", lb.Done)
	}
	// The batch carries on from where it is.
	if done := h.commit(h.chunk(b, 300, 700)); done != 1000 {
		t.Errorf("done = %d, want 1000", done)
	}
	if got := h.export(p.ID); len(got) != 1000 {
		t.Errorf("promotion has %d codes, want 1000", len(got))
	}
}

func testCommitChunkCollisionWithVanity(t *testing.T, h *harness) {
	p := h.create(h.generated("coll", 1000, 1000))
	b := h.batches(p.ID)[0]
	c := h.chunk(b, 0, 500)
	taken := string(c.Code(123))
	v := h.create(h.vanity(taken, 7))

	if done := h.commit(c); done != 500 {
		t.Errorf("done = %d, want 500", done)
	}
	got := h.export(p.ID)
	if len(got) != 500 {
		t.Fatalf("chunk of 500 with one collision added %d codes to the promotion, want 500", len(got))
	}
	if slices.Contains(got, taken) {
		t.Errorf("the colliding code %s was exported for the generated promotion", taken)
	}
	var replacements int
	for _, code := range got {
		if strings.HasPrefix(code, "R") {
			replacements++
		}
	}
	if replacements != 1 {
		t.Errorf("%d replacement codes, want 1", replacements)
	}
	if ci, err := h.s.GetCode(h.ctx, taken); err != nil || ci.PromotionID != v.ID || ci.MaxUsage != 7 {
		t.Errorf("vanity code after the collision: %+v, %v; want promotion %d", ci, err, v.ID)
	}
	if got := h.export(v.ID); !slices.Equal(got, []string{taken}) {
		t.Errorf("vanity export = %v", got)
	}
	// The next chunk (no collision) goes on as usual.
	if done := h.commit(h.chunk(b, 500, 500)); done != 1000 {
		t.Errorf("done = %d, want 1000", done)
	}
	if got := h.export(p.ID); len(got) != 1000 {
		t.Errorf("promotion has %d codes, want 1000", len(got))
	}
}

// A collision whose replacement would need a sequence number beyond the code
// space (ReplaceLimit) is ECapacity and writes nothing, rather than calling
// Replace with a number it cannot render (the code engine panics on it).
func testCommitChunkReplacementBeyondSpace(t *testing.T, h *harness) {
	p := h.create(h.generated("full", 100, 100))
	b := h.batches(p.ID)[0]
	c := h.chunk(b, 0, 100)
	h.create(h.vanity(string(c.Code(10)), 1))
	h.create(h.vanity(string(c.Code(20)), 1))
	c.ReplaceLimit = 1 // room for one replacement, two are needed
	c.Replace = func(dst []byte, seq uint64) []byte {
		if seq >= c.ReplaceLimit {
			panic(fmt.Sprintf("Replace(%d) called beyond the code space of %d", seq, c.ReplaceLimit))
		}
		return h.replace(dst, seq)
	}
	_, err := h.s.CommitChunk(h.ctx, c)
	wantCode(t, "CommitChunk needing replacements beyond the code space", err, promo.ECapacity)
	if got := h.batch(b.Ref()); got.Done != 0 {
		t.Errorf("done = %d after a refused chunk, want 0", got.Done)
	}
	if got := h.export(p.ID); len(got) != 0 {
		t.Errorf("a refused chunk wrote %d codes", len(got))
	}
	c.ReplaceLimit = 0 // no limit: the same chunk goes through with two replacements
	c.Replace = h.replace
	if done := h.commit(c); done != 100 {
		t.Errorf("done = %d, want 100", done)
	}
}

func testCommitChunkCollisionInsideChunk(t *testing.T, h *harness) {
	p := h.create(h.generated("dupe", 100, 100))
	b := h.batches(p.ID)[0]
	c := h.chunk(b, 0, 100)
	copy(c.Code(7), c.Code(3)) // the same code twice in one chunk
	copy(c.Code(8), c.Code(3))
	if done := h.commit(c); done != 100 {
		t.Errorf("done = %d, want 100", done)
	}
	got := h.export(p.ID)
	if len(got) != 100 || len(slices.Compact(slices.Clone(got))) != 100 {
		t.Errorf("chunk of 100 with a code thrice: promotion has %d codes (%d distinct), want 100",
			len(got), len(slices.Compact(slices.Clone(got))))
	}
}

func testCommitChunkCollisionAcrossPromotions(t *testing.T, h *harness) {
	// Two promotions whose codes overlap completely (as if two formats
	// rendered the same strings): the second gets replacements for all.
	a := h.create(h.generated("overlap-a", 200, 200))
	b := h.create(h.generated("overlap-b", 200, 200))
	ba, bb := h.batches(a.ID)[0], h.batches(b.ID)[0]
	if ba.SeqStart != bb.SeqStart {
		t.Fatalf("separate counters should both start at 0: %d, %d", ba.SeqStart, bb.SeqStart)
	}
	h.commit(h.chunk(ba, 0, 200))
	h.commit(h.chunk(bb, 0, 200))
	ga, gb := h.export(a.ID), h.export(b.ID)
	if len(ga) != 200 || len(gb) != 200 {
		t.Fatalf("promotions have %d and %d codes, want 200 each", len(ga), len(gb))
	}
	for _, code := range gb {
		if !strings.HasPrefix(code, "R") {
			t.Fatalf("second promotion kept colliding code %s", code)
		}
	}
	if st := h.status(b.ID); st.GeneratedCount != 200 || st.Status() != promo.StatusCompleted {
		t.Errorf("second promotion progress %+v (%s), want completed", st.Progress, st.Status())
	}
}

func testCommitChunkConcurrent(t *testing.T, h *harness) {
	p := h.create(h.generated("race", 5000, 5000))
	b := h.batches(p.ID)[0]
	const rounds = 5
	for r := range rounds {
		c := h.chunk(b, int64(r)*1000, 1000)
		var (
			wg   sync.WaitGroup
			errs [2]error
		)
		for i := range errs {
			wg.Go(func() { _, errs[i] = h.s.CommitChunk(h.ctx, c) })
		}
		wg.Wait()
		var won int
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !promo.Is(err, promo.EMoved):
				t.Fatalf("round %d: concurrent commit error %v, want nil or EMoved", r, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d of 2 concurrent commits of one chunk succeeded, want 1 (errors %v)", r, won, errs)
		}
	}
	if got := h.export(p.ID); len(got) != 5000 {
		t.Errorf("promotion has %d codes, want 5000", len(got))
	}
	if lb := h.batch(b.Ref()); lb.Done != 5000 || lb.State != promo.BatchDone {
		t.Errorf("batch done %d state %s, want 5000 done", lb.Done, lb.State)
	}
}

func testCompleteBatches(t *testing.T, h *harness) {
	p := h.create(h.generated("complete", 2500, 1000))
	bs := h.batches(p.ID)
	for _, b := range bs[:2] {
		for from := int64(0); from < b.CodeCount; from += 400 {
			h.commit(h.chunk(b, from, int(min(400, b.CodeCount-from))))
		}
		if lb := h.batch(b.Ref()); lb.Done != b.CodeCount || lb.State != promo.BatchDone {
			t.Errorf("batch %d after all chunks: done %d state %s, want %d done", b.BatchNo, lb.Done, lb.State, b.CodeCount)
		}
	}
	st := h.status(p.ID)
	if st.GeneratedCount != 2000 || st.Batches.Total != 3 || st.Batches.Completed != 2 || st.Status() != promo.StatusGenerating {
		t.Errorf("progress %+v (%s), want 2000 generated, 2 of 3 batches completed", st.Progress, st.Status())
	}
	if inc := h.batches(p.ID); len(inc) != 1 || inc[0].BatchNo != 2 {
		t.Errorf("incomplete batches %+v, want only batch 2", inc)
	}
	h.commit(h.chunk(bs[2], 0, 500))
	st = h.status(p.ID)
	if st.GeneratedCount != 2500 || st.Batches.Completed != 3 || st.Status() != promo.StatusCompleted {
		t.Errorf("progress %+v (%s), want 2500 generated, 3 completed, completed", st.Progress, st.Status())
	}
	if got := h.export(p.ID); len(got) != 2500 {
		t.Errorf("completed promotion has %d codes, want 2500", len(got))
	}
}

func testSetBatchState(t *testing.T, h *harness) {
	p := h.create(h.generated("state", 400, 100))
	bs := h.batches(p.ID)
	long := strings.Repeat("é", 1000) // 2,000 bytes
	if err := h.s.SetBatchState(h.ctx, bs[0].Ref(), promo.BatchRetrying, long); err != nil {
		t.Fatalf("SetBatchState retrying: %v", err)
	}
	if err := h.s.SetBatchState(h.ctx, bs[1].Ref(), promo.BatchParked, "max retries"); err != nil {
		t.Fatalf("SetBatchState parked: %v", err)
	}
	st := h.status(p.ID)
	if st.Batches.Retrying != 1 || st.Batches.Parked != 1 || st.Status() != promo.StatusFailed {
		t.Errorf("progress %+v (%s), want 1 retrying, 1 parked, failed", st.Progress, st.Status())
	}
	lb := h.batch(bs[0].Ref())
	if lb.State != promo.BatchRetrying || len(lb.LastError) > promo.MaxErrorHeader || len(lb.LastError) < promo.MaxErrorHeader-4 ||
		!strings.HasPrefix(long, lb.LastError) {
		t.Errorf("batch 0: state %s, last error of %d bytes; want retrying, cut to <= %d bytes on a rune boundary",
			lb.State, len(lb.LastError), promo.MaxErrorHeader)
	}

	// A retried batch that completes is done, not retrying.
	h.commit(h.chunk(bs[0], 0, 100))
	if lb := h.batch(bs[0].Ref()); lb.State != promo.BatchDone {
		t.Errorf("completed retrying batch is %s, want done", lb.State)
	}
	// And stays done whatever is set later.
	for _, s := range []promo.BatchState{promo.BatchParked, promo.BatchRetrying, promo.BatchPending} {
		if err := h.s.SetBatchState(h.ctx, bs[0].Ref(), s, "late"); err != nil {
			t.Fatalf("SetBatchState %s on a done batch: %v", s, err)
		}
	}
	if lb := h.batch(bs[0].Ref()); lb.State != promo.BatchDone || lb.Done != 100 {
		t.Errorf("done batch after SetBatchState: %s, done %d; want done, 100", lb.State, lb.Done)
	}
	// Parked goes back to pending (replay).
	if err := h.s.SetBatchState(h.ctx, bs[1].Ref(), promo.BatchPending, ""); err != nil {
		t.Fatalf("SetBatchState pending: %v", err)
	}
	st = h.status(p.ID)
	if st.Batches.Retrying != 0 || st.Batches.Parked != 0 || st.Batches.Completed != 1 {
		t.Errorf("progress %+v, want nothing retrying or parked, 1 completed", st.Progress)
	}
	err := h.s.SetBatchState(h.ctx, promo.BatchRef{PromotionID: p.ID, BatchNo: 99}, promo.BatchParked, "x")
	wantCode(t, "SetBatchState on an unknown batch", err, promo.ENotFound)
	err = h.s.SetBatchState(h.ctx, bs[2].Ref(), promo.BatchDone, "")
	wantCode(t, "SetBatchState done", err, promo.EInvalid)
}

func testIncompleteBatches(t *testing.T, h *harness) {
	a := h.create(h.generated("inc-a", 300, 100))
	b := h.create(h.generated("inc-b", 200, 100))
	ab := h.batches(a.ID)
	h.commit(h.chunk(ab[0], 0, 100)) // done
	h.commit(h.chunk(ab[1], 0, 50))  // half
	got := h.batches(a.ID)
	if len(got) != 2 || got[0].BatchNo != 1 || got[0].Done != 50 || got[1].BatchNo != 2 {
		t.Errorf("IncompleteBatches(a) = %+v, want batches 1 (done 50) and 2", got)
	}
	all := h.batches(0)
	var mine []promo.BatchRef
	for _, x := range all {
		if x.PromotionID == a.ID || x.PromotionID == b.ID {
			mine = append(mine, x.Ref())
		}
	}
	want := []promo.BatchRef{ref(a.ID, 1), ref(a.ID, 2), ref(b.ID, 0), ref(b.ID, 1)}
	if !slices.Equal(mine, want) {
		t.Errorf("IncompleteBatches(0) has %v of ours, want %v", mine, want)
	}
	if got := h.batches(a.ID + 1_000_000); len(got) != 0 {
		t.Errorf("IncompleteBatches(unknown) = %v, want none", got)
	}
}

func testExportCodes(t *testing.T, h *harness) {
	a := h.create(h.generated("exp-a", 1200, 1200))
	b := h.create(h.generated("exp-b", 300, 300))
	ba, bb := h.batches(a.ID)[0], h.batches(b.ID)[0]
	h.commit(h.chunk(ba, 0, 1200))
	cb := h.chunk(bb, 0, 300)
	for i := range 300 { // other codes than a's
		copy(cb.Code(i), h.code(1_000_000+uint64(i)))
	}
	h.commit(cb)
	var want []string
	for i := range 1200 {
		want = append(want, h.code(uint64(i)))
	}
	if got := h.export(a.ID); !slices.Equal(got, want) {
		t.Errorf("export of a: %d codes, want exactly its 1200", len(got))
	}
	if got := h.export(b.ID); len(got) != 300 || got[0] != h.code(1_000_000) {
		t.Errorf("export of b: %d codes, want exactly its 300", len(got))
	}

	stop := errors.New("client went away")
	var calls int
	err := h.s.ExportCodes(h.ctx, a.ID, func(string) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 10 {
		t.Errorf("export stopped by the callback: err %v after %d calls; want the callback's error after 10", err, calls)
	}
	empty := h.create(h.generated("exp-empty", 10, 10))
	if got := h.export(empty.ID); len(got) != 0 {
		t.Errorf("export of a promotion without codes = %v", got)
	}
	err = h.s.ExportCodes(h.ctx, b.ID+1_000_000, func(string) error { return nil })
	wantCode(t, "ExportCodes(unknown)", err, promo.ENotFound)
}

func testNotFound(t *testing.T, h *harness) {
	p := h.create(h.generated("nf", 10, 10))
	unknown := p.ID + 1_000_000
	_, err := h.s.GetPromotion(h.ctx, unknown)
	wantCode(t, "GetPromotion(unknown)", err, promo.ENotFound)
	_, err = h.s.LoadBatch(h.ctx, promo.BatchRef{PromotionID: unknown})
	wantCode(t, "LoadBatch(unknown promotion)", err, promo.ENotFound)
	_, err = h.s.LoadBatch(h.ctx, promo.BatchRef{PromotionID: p.ID, BatchNo: 1})
	wantCode(t, "LoadBatch(unknown batch)", err, promo.ENotFound)
	_, err = h.s.GetCode(h.ctx, "N"+h.tag+"NOSUCHCODE")
	wantCode(t, "GetCode(unknown)", err, promo.ENotFound)
	_, err = h.s.CodeState(h.ctx, "N"+h.tag+"NOSUCHCODE", "")
	wantCode(t, "CodeState(unknown)", err, promo.ENotFound)
	// A chunk's code is not there before its chunk is committed.
	_, err = h.s.GetCode(h.ctx, h.code(h.batches(p.ID)[0].SeqStart))
	wantCode(t, "GetCode(uncommitted)", err, promo.ENotFound)
}

func testPendingBatches(t *testing.T, h *harness) {
	a := h.create(h.generated("pend-a", 300, 100))
	b := h.create(h.generated("pend-b", 100, 100))
	v := h.create(h.vanity("V"+h.tag+"PEND", 1))
	h.commit(h.chunk(h.batches(a.ID)[1], 0, 40))

	mine := func() []promo.Batch {
		t.Helper()
		bs, err := h.s.PendingBatches(h.ctx, 100_000)
		if err != nil {
			t.Fatalf("PendingBatches: %v", err)
		}
		var out []promo.Batch
		for _, x := range bs {
			switch x.PromotionID {
			case a.ID, b.ID:
				out = append(out, x)
			case v.ID:
				t.Errorf("vanity promotion has a pending batch %+v", x)
			}
		}
		return out
	}
	got := mine()
	var refs []promo.BatchRef
	for _, x := range got {
		refs = append(refs, x.Ref())
	}
	want := []promo.BatchRef{ref(a.ID, 0), ref(a.ID, 1), ref(a.ID, 2), ref(b.ID, 0)}
	if !slices.Equal(refs, want) {
		t.Fatalf("pending batches %v, want %v (oldest first)", refs, want)
	}
	if got[1].Done != 40 || got[1].SeqStart != a.SeqStart+100 || got[1].CodeCount != 100 {
		t.Errorf("pending batch %+v, want its current done 40", got[1])
	}
	if bs, err := h.s.PendingBatches(h.ctx, 2); err != nil || len(bs) != 2 {
		t.Errorf("PendingBatches(limit 2) = %d batches, %v", len(bs), err)
	}

	if err := h.s.MarkPublished(h.ctx, []promo.BatchRef{ref(a.ID, 0), ref(a.ID, 2), ref(a.ID, 99)}); err != nil {
		t.Fatalf("MarkPublished: %v", err)
	}
	refs = refs[:0]
	for _, x := range mine() {
		refs = append(refs, x.Ref())
	}
	if want := []promo.BatchRef{ref(a.ID, 1), ref(b.ID, 0)}; !slices.Equal(refs, want) {
		t.Errorf("pending after MarkPublished %v, want %v", refs, want)
	}
	if err := h.s.MarkPublished(h.ctx, []promo.BatchRef{ref(a.ID, 0), ref(a.ID, 1), ref(b.ID, 0)}); err != nil {
		t.Fatalf("MarkPublished again: %v", err)
	}
	if err := h.s.MarkPublished(h.ctx, nil); err != nil {
		t.Fatalf("MarkPublished(nil): %v", err)
	}
	if left := mine(); len(left) != 0 {
		t.Errorf("pending after publishing all: %v", left)
	}
	// Publishing is not progress: the batches are still to be generated.
	if inc := h.batches(a.ID); len(inc) != 3 {
		t.Errorf("published batches: %d incomplete, want 3", len(inc))
	}
}

func ref(promotionID int64, batchNo int) promo.BatchRef {
	return promo.BatchRef{PromotionID: promotionID, BatchNo: batchNo}
}

// claimedOf keeps the claimed batches of promotion id (other subtests share
// the database and claim their own).
func claimedOf(bs []promo.Batch, id int64) []int {
	var nos []int
	for _, b := range bs {
		if b.PromotionID == id {
			nos = append(nos, b.BatchNo)
		}
	}
	return nos
}

func testClaimPendingBatches(t *testing.T, h *harness) {
	p := h.create(h.generated("claim", 50, 10)) // 5 batches
	claim := func(limit int, lease time.Duration) []int {
		t.Helper()
		var nos []int
		// Other subtests' rows may come first in the order: claim until
		// this promotion's show up or nothing is left.
		for range 1000 {
			bs, err := h.s.ClaimPendingBatches(h.ctx, limit, lease)
			if err != nil {
				t.Fatalf("ClaimPendingBatches: %v", err)
			}
			nos = append(nos, claimedOf(bs, p.ID)...)
			if len(bs) == 0 || len(nos) > 0 {
				return nos
			}
		}
		return nos
	}
	first := claim(100_000, time.Hour)
	if !slices.Equal(first, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("first claim = %v, want batches 0..4 in order", first)
	}
	if again := claim(100_000, time.Hour); len(again) != 0 {
		t.Fatalf("claimed leased batches %v again", again)
	}
	if err := h.s.MarkPublished(h.ctx, []promo.BatchRef{{PromotionID: p.ID, BatchNo: 0}, {PromotionID: p.ID, BatchNo: 1}}); err != nil {
		t.Fatal(err)
	}
	// A lease that ended (the publisher died): the rows are claimable again,
	// but not the published ones.
	q := h.create(h.generated("claim-expired", 20, 10))
	bs, err := h.s.ClaimPendingBatches(h.ctx, 100_000, -time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := claimedOf(bs, q.ID); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("claim with an already ended lease = %v, want [0 1]", got)
	}
	bs, err = h.s.ClaimPendingBatches(h.ctx, 100_000, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := claimedOf(bs, q.ID); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("claim after the lease ended = %v, want [0 1] again", got)
	}
	if got := claimedOf(bs, p.ID); len(got) != 0 {
		t.Fatalf("claimed %v of a promotion whose leases still run", got)
	}
}

// Concurrent claimers (API replicas) never get the same batch.
func testClaimPendingBatchesConcurrent(t *testing.T, h *harness) {
	p := h.create(h.generated("claim-race", 400, 10)) // 40 batches
	var (
		mu   sync.Mutex
		seen = map[int]int{}
		wg   sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				bs, err := h.s.ClaimPendingBatches(h.ctx, 3, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, no := range claimedOf(bs, p.ID) {
					seen[no]++
				}
				n := len(seen)
				mu.Unlock()
				if n == 40 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != 40 {
		t.Fatalf("claimed %d of 40 batches", len(seen))
	}
	for no, n := range seen {
		if n != 1 {
			t.Errorf("batch %d claimed %d times", no, n)
		}
	}
}

// The promotion's key fingerprint comes back with every batch a generator
// loads (it refuses the batch under another key).
func testKeyFingerprint(t *testing.T, h *harness) {
	np := h.generated("fp", 20, 10)
	np.KeyFingerprint = "0f1e2d3c4b5a6978"
	p := h.create(np)
	w, err := h.s.LoadBatch(h.ctx, promo.BatchRef{PromotionID: p.ID, BatchNo: 1})
	if err != nil {
		t.Fatal(err)
	}
	if w.Promotion.KeyFingerprint != np.KeyFingerprint {
		t.Fatalf("LoadBatch: key fingerprint %q, want %q", w.Promotion.KeyFingerprint, np.KeyFingerprint)
	}
	legacy := h.create(h.generated("fp-none", 10, 10))
	if w, err := h.s.LoadBatch(h.ctx, promo.BatchRef{PromotionID: legacy.ID}); err != nil || w.Promotion.KeyFingerprint != "" {
		t.Fatalf("LoadBatch without a fingerprint: %q, %v", w.Promotion.KeyFingerprint, err)
	}
}
