package shovel

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
)

// TestObserveCountsCyclesAndKeepsHistory: Once reports each cycle's moves
// and parks to the metrics and the history, newest first.
func TestObserveCountsCyclesAndKeepsHistory(t *testing.T) {
	r := newRig(t, kafkatest.Brokers(t))
	s, err := New(r.cfg, r.client, r.prod, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	h := NewHistory(2)
	s.Observe(m, h)
	ctx := context.Background()

	r.failAgain(t, kafka.EventMessage("", promo.Event{V: 1, PromotionID: "7", BatchNo: 0, SeqStart: 0, CodeCount: 10}))
	bad := kafka.Message{Topic: r.cfg.ErrorTopic, Key: []byte("x"), Value: []byte("not json")}
	if err := r.prod.Publish(ctx, bad); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.Once(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(m.Moved); got != 1 {
		t.Errorf("moved_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.Parked); got != 1 {
		t.Errorf("parked_total = %v, want 1 (the undecodable event)", got)
	}
	if n := testutil.CollectAndCount(m.CycleSeconds); n != 1 {
		t.Errorf("cycle histogram series = %d", n)
	}
	last := h.Last()
	if len(last) != 2 || !last[0].At.After(last[1].At) && !last[0].At.Equal(last[1].At) {
		t.Fatalf("history = %+v, want the last 2 cycles, newest first", last)
	}
	if last[0].Stats.Moved+last[0].Stats.Parked != 0 {
		t.Errorf("newest cycle %+v, want an empty one", last[0])
	}
}
