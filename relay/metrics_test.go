package relay

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/kafka"
)

// memoryOutbox is an outbox in memory whose oldest pending row was written
// at written.
type memoryOutbox struct {
	pending []int
	written time.Time
}

func (o *memoryOutbox) source(name string, withLag bool) Source[int] {
	s := Source[int]{Name: name,
		Claim: func(_ context.Context, limit int, _ time.Duration) ([]int, error) {
			return o.pending[:min(limit, len(o.pending))], nil
		},
		Encode: func(r int) (kafka.Message, error) { return kafka.Message{Topic: name, Value: []byte{byte(r)}}, nil },
		Mark: func(_ context.Context, rows []int) error {
			o.pending = o.pending[len(rows):]
			return nil
		}}
	if withLag {
		s.Oldest = func(context.Context) (time.Time, bool, error) { return o.written, len(o.pending) > 0, nil }
	}
	return s
}

// publisher acknowledges everything, or refuses everything with fail.
type publisher struct{ fail error }

func (p *publisher) Publish(context.Context, ...kafka.Message) error { return p.fail }

// The metrics: events published per outbox (once the broker acknowledged
// them), and the lag of an outbox that can tell it: 0 once drained, the
// oldest row's age while one waits. An outbox that cannot tell its lag has
// no lag series, rather than one stuck at 0.
func TestMetrics(t *testing.T) {
	m := NewMetrics(nil)
	pub := &publisher{}
	batches := &memoryOutbox{pending: []int{1, 2, 3}, written: time.Now().Add(-time.Minute)}
	events := &memoryOutbox{pending: []int{1, 2}}
	rb := New(batches.source("batches", true), pub, Config{}, m, zaptest.NewLogger(t))
	re := New(events.source("redemptions", false), pub, Config{}, m, zaptest.NewLogger(t))
	ctx := context.Background()
	if n, err := rb.Drain(ctx); n != 3 || err != nil {
		t.Fatalf("batches Drain = %d, %v", n, err)
	}
	if n, err := re.Drain(ctx); n != 2 || err != nil {
		t.Fatalf("redemptions Drain = %d, %v", n, err)
	}
	if v := testutil.ToFloat64(m.published.WithLabelValues("batches")); v != 3 {
		t.Errorf("published{outbox=batches} = %v, want 3", v)
	}
	if v := testutil.ToFloat64(m.published.WithLabelValues("redemptions")); v != 2 {
		t.Errorf("published{outbox=redemptions} = %v, want 2", v)
	}
	if v := testutil.ToFloat64(m.lag.WithLabelValues("batches")); v != 0 {
		t.Errorf("lag{outbox=batches} after a full drain = %v, want 0", v)
	}
	batches.pending = []int{4}
	pub.fail = errors.New("broker down")
	if _, err := rb.Drain(ctx); err == nil {
		t.Fatal("Drain with the broker down succeeded")
	}
	if v := testutil.ToFloat64(m.lag.WithLabelValues("batches")); v < 59 {
		t.Errorf("lag{outbox=batches} with a row a minute old waiting = %v, want about 60", v)
	}
	if v := testutil.ToFloat64(m.published.WithLabelValues("batches")); v != 3 {
		t.Errorf("published{outbox=batches} after a failed publish = %v, want still 3", v)
	}
	if n := testutil.CollectAndCount(m.lag); n != 1 {
		t.Errorf("%d lag series, want 1 (batches only)", n)
	}
}
