package generator

import (
	"context"
	"math"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
)

// cancelAfter is the real SQLite store; after its n-th committed chunk it
// cancels the promotion, the way an admin's request lands between two chunks.
type cancelAfter struct {
	*sqlite.Store
	n, chunks atomic.Int64
	cancelled chan error
}

func (s *cancelAfter) CommitChunk(ctx context.Context, c promo.Chunk) (int64, error) {
	done, err := s.Store.CommitChunk(ctx, c)
	if err == nil && s.chunks.Add(1) == s.n.Load() {
		_, cerr := s.CancelPromotion(ctx, promo.CancelRequest{PromotionID: c.Batch.PromotionID, Actor: "admin:test",
			Now: time.Now(), AuditID: "cancel-1"})
		s.cancelled <- cerr
	}
	return done, err
}

// cancelFixture is a migrated SQLite store and a numeric format to create
// promotions in.
func cancelFixture(t *testing.T) (*sqlite.Store, promo.Format, *codes.Layout) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "p.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := promo.Format{Charset: "numeric", Length: 10}
	l, err := codes.NewLayout(f)
	if err != nil {
		t.Fatal(err)
	}
	return st, f, l
}

func TestCancelMidGenerationStopsAtTheNextChunkExactly(t *testing.T) {
	ctx := context.Background()
	st, f, l := cancelFixture(t)
	p, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "cancel", Kind: promo.KindGenerated,
		CodeCount: 3000, Format: &f, MaxUsagePerCode: 1, CounterName: l.CounterName()}, BatchSize: 3000, SeqLimit: math.MaxInt64})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := st.IncompleteBatches(ctx, p.ID)
	if err != nil || len(bs) != 1 {
		t.Fatalf("IncompleteBatches = %v, %v", bs, err)
	}
	cs := &cancelAfter{Store: st, cancelled: make(chan error, 1)}
	cs.n.Store(2)
	pub := &fakePub{}
	g := newTestGenerator(t, cs, pub) // 300-code chunks: 10 for the batch
	c := &fakeConsumer{msgs: []kafka.Message{eventMsg(1, promo.EventFor(bs[0]))}}
	if err := runUntilCommitted(t, g, c, 1); err != nil {
		t.Fatal(err)
	}
	if err := <-cs.cancelled; err != nil {
		t.Fatalf("CancelPromotion: %v", err)
	}
	status, err := st.GetPromotion(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var exported int64
	if err := st.ExportCodes(ctx, p.ID, func(string) error { exported++; return nil }); err != nil {
		t.Fatal(err)
	}
	if status.Status() != promo.StatusCancelled || status.GeneratedCount != 600 || exported != 600 {
		t.Errorf("after a cancel between chunks 2 and 3: status %s, %d generated, %d codes exist; want cancelled, 600, 600",
			status.Status(), status.GeneratedCount, exported)
	}
	if cs.chunks.Load() != 2 {
		t.Errorf("%d chunks committed, want 2 (the worker stops at the next chunk)", cs.chunks.Load())
	}
	if len(pub.msgs) != 0 {
		t.Errorf("%d messages published (retry or dead-letter) for a cancelled promotion, want none", len(pub.msgs))
	}
}

// TestCancelLogsOneLine: the events of a cancelled promotion's 12 batches
// (and of a second cancelled promotion) each leave their batch alone; the
// log says so once per promotion at info level, not once per batch.
func TestCancelLogsOneLine(t *testing.T) {
	ctx := context.Background()
	st, f, l := cancelFixture(t)
	var msgs []kafka.Message
	for _, n := range []int64{1200, 300} {
		p, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "cancel", Kind: promo.KindGenerated,
			CodeCount: n, Format: &f, MaxUsagePerCode: 1, CounterName: l.CounterName()}, BatchSize: 100, SeqLimit: math.MaxInt64})
		if err != nil {
			t.Fatal(err)
		}
		bs, err := st.IncompleteBatches(ctx, p.ID) // the events the API's outbox sent
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CancelPromotion(ctx, promo.CancelRequest{PromotionID: p.ID, Actor: "admin:test", Now: time.Now(),
			AuditID: "cancel-" + p.IDString()}); err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			msgs = append(msgs, eventMsg(int64(len(msgs)+1), promo.EventFor(b)))
		}
	}
	if len(msgs) != 15 {
		t.Fatalf("%d batch events, want 15", len(msgs))
	}
	core, logs := observer.New(zap.DebugLevel)
	g := newTestGenerator(t, st, &fakePub{})
	if err := runUntilCommittedLog(t, g, &fakeConsumer{msgs: msgs}, len(msgs), zap.New(core)); err != nil {
		t.Fatal(err)
	}
	info, debug := 0, 0
	for _, e := range logs.FilterMessageSnippet("cancelled").All() {
		switch e.Level {
		case zap.InfoLevel:
			info++
		case zap.DebugLevel:
			debug++
		}
	}
	if info != 2 || debug != 13 {
		t.Errorf("15 batch events of 2 cancelled promotions logged %d info and %d debug lines about the cancel; want 2 and 13",
			info, debug)
	}
}
