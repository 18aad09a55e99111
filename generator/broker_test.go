package generator

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
)

// A broker restart must not make a worker drop its consumer: fetch errors
// during the outage are retried in place, so the group rebalances once (the
// coordinator came back), not once more for a leave and a rejoin.
func TestBrokerRestartKeepsTheConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e := kafkatest.StartEmbedded(t)
	kc := kafka.Config{Brokers: e.Addrs(), Partitions: 1}
	batches, errTopic, dead := kafkatest.Name(t, "batches"), kafkatest.Name(t, "error"), kafkatest.Name(t, "dead")
	if err := kafka.EnsureTopics(ctx, kc, batches, errTopic, dead); err != nil {
		t.Fatal(err)
	}
	st := newFakeStore(
		promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 0, CodeCount: 500},
		promo.Batch{PromotionID: 7, BatchNo: 1, SeqStart: 500, CodeCount: 500})
	prod := kafka.NewProducer(kc)
	defer prod.Close()
	group := kafkatest.Name(t, "generator")
	metrics := NewMetrics(nil)
	g, err := New(Config{Workers: 1, ChunkSize: 100, ErrorTopic: errTopic, DeadTopic: dead,
		Secret: []byte("0123456789abcdef0123456789abcdef")}, st, prod,
		func(context.Context) (Consumer, error) { return kafka.NewConsumer(kc, group, []string{batches}) },
		zaptest.NewLogger(t), metrics)
	if err != nil {
		t.Fatal(err)
	}
	gctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Run(gctx) }()
	defer func() { stop(); <-done }()

	publish := func(b int) {
		t.Helper()
		for {
			err := prod.Publish(ctx, kafka.EventMessage(batches, promo.Event{V: 1, PromotionID: "7", BatchNo: b,
				SeqStart: uint64(b) * 500, CodeCount: 500}))
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("publish batch %d: %v", b, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitDone := func(b int) {
		t.Helper()
		for {
			st.mu.Lock()
			d := st.batches[b].Done
			st.mu.Unlock()
			if d == 500 {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("batch %d at %d of 500", b, d)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	publish(0)
	waitDone(0)
	e.Stop()
	time.Sleep(3 * time.Second) // long enough for the reader's fetches to fail
	e.Start()
	start := time.Now()
	publish(1)
	waitDone(1)
	t.Logf("batch after the restart done in %s", time.Since(start).Round(time.Millisecond))
	if n := counterValue(t, metrics.ConsumerRestarts); n != 0 {
		t.Fatalf("the worker dropped its consumer %v time(s) over a broker restart; want 0", n)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
