package generator

import (
	"context"
	"math"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

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

func TestCancelMidGenerationStopsAtTheNextChunkExactly(t *testing.T) {
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
