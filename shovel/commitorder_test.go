package shovel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// memTopic is the error topic in memory: a Client whose commits and reads
// are recorded in one journal together with the publisher's calls, so a
// test can see in which order the shovel did them.
type memTopic struct {
	mu        sync.Mutex
	parts     map[int][]kafka.Message
	committed map[int]int64
	meta      map[int]string
	journal   []string
}

func newMemTopic(topic string, perPartition map[int]int) *memTopic {
	m := &memTopic{parts: map[int][]kafka.Message{}, committed: map[int]int64{}, meta: map[int]string{}}
	t0 := time.Now().Add(-time.Hour)
	for p, n := range perPartition {
		for i := 0; i < n; i++ {
			msg := kafka.EventMessage(topic, promo.Event{V: 1, PromotionID: "7", BatchNo: 100*p + i, CodeCount: 10})
			msg.Partition, msg.Offset, msg.Time = p, int64(i), t0
			m.parts[p] = append(m.parts[p], msg)
		}
	}
	return m
}

func (m *memTopic) note(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.journal = append(m.journal, fmt.Sprintf(format, args...))
}

func (m *memTopic) Offsets(context.Context, string) (map[int]int64, map[int]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	low, high := map[int]int64{}, map[int]int64{}
	for p, msgs := range m.parts {
		low[p], high[p] = 0, int64(len(msgs))
	}
	return low, high, nil
}

func (m *memTopic) CommittedPositions(context.Context, string, string) (map[int]kafka.Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int]kafka.Position{}
	for p, o := range m.committed {
		out[p] = kafka.Position{Offset: o, Metadata: m.meta[p]}
	}
	return out, nil
}

func (m *memTopic) CommitPositions(_ context.Context, _, _ string, pos map[int]kafka.Position) error {
	for p, o := range pos {
		m.note("commit %d@%d", p, o.Offset)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, o := range pos {
		m.committed[p], m.meta[p] = o.Offset, o.Metadata
	}
	return nil
}

func (m *memTopic) ReadRange(ctx context.Context, _ string, p int, from, to int64, fn func(kafka.Message) error) error {
	m.mu.Lock()
	msgs := append([]kafka.Message(nil), m.parts[p]...)
	m.mu.Unlock()
	for _, msg := range msgs {
		if msg.Offset < from || msg.Offset >= to {
			continue
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
	return nil
}

func (m *memTopic) Ping(context.Context) error { return nil }

// publishFunc is a Publisher made of a function.
type publishFunc func(ctx context.Context, msgs ...kafka.Message) error

func (f publishFunc) Publish(ctx context.Context, msgs ...kafka.Message) error {
	return f(ctx, msgs...)
}

// The offset of an error-topic event is committed only after its move was
// published: with a publisher that always fails, no commit may pass any
// event; with one that fails from the second publish on, commits stop at
// what the first publish carried. Every commit in the journal must cover
// only offsets already published.
func TestCommitNeverPassesAnUnpublishedMove(t *testing.T) {
	cfg := Config{ErrorTopic: "e", RetryTopic: "r", DeadTopic: "d", GroupID: "g", MaxRetries: 5, Interval: time.Hour}
	for _, tc := range []struct {
		name     string
		okFirst  int // publishes that succeed before every later one fails
		per      map[int]int
		wantMove int
	}{
		{"publisher always fails", 0, map[int]int{0: 3, 1: 250}, 0},
		{"publisher fails after one batch", 1, map[int]int{0: 250}, batchSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := newMemTopic(cfg.ErrorTopic, tc.per)
			published := map[int]int64{} // partition → highest offset published + 1
			calls := 0
			pub := publishFunc(func(_ context.Context, msgs ...kafka.Message) error {
				calls++
				if calls > tc.okFirst {
					topic.note("publish failed")
					return errors.New("broker unreachable")
				}
				for _, msg := range msgs {
					// The shovel publishes copies; find the source by key.
					src := topic.source(t, msg.Key)
					published[src.Partition] = max(published[src.Partition], src.Offset+1)
					topic.note("published %d@%d", src.Partition, src.Offset)
				}
				return nil
			})
			s, err := New(cfg, topic, pub, nil, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.Cycle(context.Background())
			if err == nil {
				t.Fatalf("cycle with a failing publisher succeeded: %+v", st)
			}
			if st.Moved != tc.wantMove {
				t.Errorf("moved %d, want %d", st.Moved, tc.wantMove)
			}
			// Replay the journal: a commit may only cover published offsets.
			seen := map[int]int64{}
			for _, line := range topic.journal {
				var p int
				var o int64
				if n, _ := fmt.Sscanf(line, "published %d@%d", &p, &o); n == 2 {
					seen[p] = max(seen[p], o+1)
					continue
				}
				if n, _ := fmt.Sscanf(line, "commit %d@%d", &p, &o); n == 2 && o > seen[p] {
					t.Fatalf("commit of %d@%d before the move of offsets %d..%d was published; journal:\n%v",
						p, o, seen[p], o-1, topic.journal)
				}
			}
			for p, o := range topic.committed {
				if o > published[p] {
					t.Errorf("partition %d committed at %d, published only to %d", p, o, published[p])
				}
			}
		})
	}
}

// source finds the error-topic message a moved copy was made from.
func (m *memTopic) source(t *testing.T, key []byte) kafka.Message {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msgs := range m.parts {
		for _, msg := range msgs {
			if string(msg.Key) == string(key) {
				return msg
			}
		}
	}
	t.Fatalf("published a message with unknown key %q", key)
	return kafka.Message{}
}
