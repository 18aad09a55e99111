package shovel

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
)

func TestReplayFiltersResetsAndDryRuns(t *testing.T) {
	r := newRig(t, kafkatest.Broker(t))
	ctx := context.Background()
	for _, id := range []string{"1", "2", "1"} {
		m := kafka.EventMessage(r.cfg.DeadTopic, promo.Event{V: 1, PromotionID: id, BatchNo: 0, CodeCount: 5})
		m.SetHeader(promo.HeaderRetryCount, "5")
		m.SetHeader(promo.HeaderDeadReason, "max retries (5) exceeded")
		if err := r.prod.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	opts := ReplayOptions{From: r.cfg.DeadTopic, To: r.cfg.RetryTopic, Filter: Filter{PromotionID: "1"}, ResetRetries: true, DryRun: true}
	moved, err := Replay(ctx, r.client, r.prod, opts, zaptest.NewLogger(t))
	if err != nil || len(moved) != 2 {
		t.Fatalf("dry run: %d entries, %v", len(moved), err)
	}
	if n := len(r.all(t, r.cfg.RetryTopic)); n != 0 {
		t.Fatalf("dry run published %d events", n)
	}
	opts.DryRun = false
	if _, err := Replay(ctx, r.client, r.prod, opts, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	out := r.all(t, r.cfg.RetryTopic)
	if len(out) != 2 {
		t.Fatalf("replayed %d events, want the 2 of promotion 1", len(out))
	}
	for _, m := range out {
		if _, ok := m.Header(promo.HeaderRetryCount); ok {
			t.Error("x-retry-count kept despite --reset-retries")
		}
		if _, ok := m.Header(promo.HeaderDeadReason); ok {
			t.Error("x-dead-reason kept on a replayed event")
		}
		if string(m.Key) != "1/0" {
			t.Errorf("key %q", m.Key)
		}
	}
	if n := len(r.all(t, r.cfg.DeadTopic)); n != 3 {
		t.Errorf("dead topic holds %d events; replay copies, it does not delete", n)
	}
	if _, err := Replay(ctx, r.client, r.prod, ReplayOptions{From: "a", To: "a"}, zaptest.NewLogger(t)); err == nil {
		t.Error("replay onto the same topic was accepted")
	}
}

// Reconcile re-enqueues exactly the incomplete batches with no event in
// flight, and reports in-flight and parked ones.
func TestReconcileReenqueuesOnlyLostBatches(t *testing.T) {
	r := newRig(t, kafkatest.Broker(t))
	ctx := context.Background()
	batches, gen := kafkatest.Name(t, "batches"), kafkatest.Name(t, "generator")
	if err := kafka.EnsureTopics(ctx, r.kc, batches); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "db.sqlite")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := promo.Format{Charset: "alnum", Length: 8}
	p, _, err := st.CreatePromotion(ctx, promo.NewPromotion{
		Promotion: promo.Promotion{Name: "r", Kind: promo.KindGenerated, CodeCount: 40, Format: &f, MaxUsagePerCode: 1, CounterName: t.Name()},
		BatchSize: 10, SeqLimit: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	// Batch 0 complete; batch 1 has an unconsumed event; batch 2 is parked;
	// batch 3 has no event anywhere (lost).
	codes := make([]byte, 0, 10*16)
	for i := 0; i < 10; i++ {
		codes = fmt.Appendf(codes, "C%015d", i)
	}
	if _, err := st.CommitChunk(ctx, promo.Chunk{Batch: promo.BatchRef{PromotionID: p.ID, BatchNo: 0}, Count: 10, Codes: codes, CodeLen: 16}); err != nil {
		t.Fatal(err)
	}
	ev := func(n int) promo.Event {
		return promo.Event{V: 1, PromotionID: p.IDString(), BatchNo: n, SeqStart: p.SeqStart + uint64(10*n), CodeCount: 10}
	}
	if err := r.prod.Publish(ctx, kafka.EventMessage(batches, ev(1)), kafka.EventMessage(r.cfg.DeadTopic, ev(2))); err != nil {
		t.Fatal(err)
	}
	opts := ReconcileOptions{BatchesTopic: batches, RetryTopic: r.cfg.RetryTopic, ErrorTopic: r.cfg.ErrorTopic,
		DeadTopic: r.cfg.DeadTopic, GeneratorGroup: gen, ShovelGroup: r.cfg.GroupID, DryRun: true}
	rep, err := Reconcile(ctx, st, r.client, r.prod, opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Incomplete != 3 || rep.InFlight != 1 || rep.Parked != 1 || len(rep.Enqueued) != 1 || rep.Enqueued[0].BatchNo != 3 {
		t.Fatalf("report %+v", rep)
	}
	if n := len(r.all(t, batches)); n != 1 {
		t.Fatalf("dry run published: batches topic holds %d", n)
	}
	opts.DryRun = false
	if _, err := Reconcile(ctx, st, r.client, r.prod, opts, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, m := range r.all(t, batches) {
		keys[string(m.Key)] = true
	}
	if want := fmt.Sprintf("%d/3", p.ID); len(keys) != 2 || !keys[want] {
		t.Fatalf("batches topic keys %v; want the in-flight one and %s", keys, want)
	}
	// Once the generator group has consumed batch 1's event, it counts as lost too.
	if err := r.client.CommitOffsets(ctx, gen, batches, highs(t, r, batches)); err != nil {
		t.Fatal(err)
	}
	rep, err = Reconcile(ctx, st, r.client, r.prod, opts, zaptest.NewLogger(t))
	if err != nil || len(rep.Enqueued) != 2 {
		t.Fatalf("after consumption: %+v %v; want batches 1 and 3 re-enqueued", rep, err)
	}
}

func highs(t *testing.T, r *rig, topic string) map[int]int64 {
	t.Helper()
	_, high, err := r.client.Offsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return high
}

// A replay confirmed after its dry run moves what the dry run listed, not
// an event parked in between (Filter.Until at the dry run's marks).
func TestReplayUntilTheDryRunsMarks(t *testing.T) {
	r := newRig(t, kafkatest.Broker(t))
	ctx := context.Background()
	park := func(batch int) {
		t.Helper()
		m := kafka.EventMessage(r.cfg.DeadTopic, promo.Event{V: 1, PromotionID: "7", BatchNo: batch, CodeCount: 5})
		m.SetHeader(promo.HeaderDeadReason, "max retries (5) exceeded")
		if err := r.prod.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	park(0)
	park(1)
	marks, err := Marks(ctx, r.client, r.cfg.DeadTopic)
	if err != nil {
		t.Fatal(err)
	}
	opts := ReplayOptions{From: r.cfg.DeadTopic, To: r.cfg.RetryTopic, Filter: Filter{PromotionID: "7", Until: marks}, DryRun: true}
	dry, err := Replay(ctx, r.client, r.prod, opts, zaptest.NewLogger(t))
	if err != nil || len(dry) != 2 {
		t.Fatalf("dry run: %d entries, %v; want 2", len(dry), err)
	}
	park(2) // parked between the dry run and its confirmation
	opts.DryRun = false
	moved, err := Replay(ctx, r.client, r.prod, opts, zaptest.NewLogger(t))
	if err != nil || len(moved) != 2 {
		t.Fatalf("confirmed replay moved %d, %v; want the dry run's 2", len(moved), err)
	}
	for _, m := range r.all(t, r.cfg.RetryTopic) {
		if ev, _ := promo.DecodeEvent(m.Value); ev.BatchNo == 2 {
			t.Error("the event parked after the dry run was replayed")
		}
	}
	if all, err := Inspect(ctx, r.client, r.cfg.DeadTopic, Filter{}); err != nil || len(all) != 3 {
		t.Errorf("without Until, Inspect sees %d, %v; want 3", len(all), err)
	}
}
