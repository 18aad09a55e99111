package shovel

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Entry is one event as SREs see it: where it is, what it says, and its
// decoded headers.
type Entry struct {
	Topic      string       `json:"topic"`
	Partition  int          `json:"partition"`
	Offset     int64        `json:"offset"`
	Key        string       `json:"key"`
	Event      *promo.Event `json:"event,omitempty"`
	DecodeErr  string       `json:"decodeError,omitempty"`
	RetryCount int          `json:"retryCount"`
	Error      string       `json:"error,omitempty"`
	FailedAt   string       `json:"failedAt,omitempty"`
	Origin     string       `json:"origin,omitempty"` // topic/partition@offset
	DeadReason string       `json:"deadReason,omitempty"`
	msg        kafka.Message
}

// Filter selects events.
type Filter struct {
	PromotionID string // "" = all
	Limit       int    // 0 = no limit
	// Until, when set, bounds each partition to the offsets below its entry
	// (a partition without one is not read): the high-water marks an earlier
	// Inspect saw (Marks), so that a confirmed replay moves exactly what its
	// dry run listed, not what arrived since.
	Until map[int]int64
}

func (f Filter) match(m kafka.Message) bool {
	if f.PromotionID == "" {
		return true
	}
	if ev, err := promo.DecodeEvent(m.Value); err == nil {
		return ev.PromotionID == f.PromotionID
	}
	return strings.HasPrefix(string(m.Key), f.PromotionID+"/")
}

func entryOf(m kafka.Message) Entry {
	e := Entry{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: string(m.Key), RetryCount: RetryCount(m), msg: m}
	if ev, err := promo.DecodeEvent(m.Value); err == nil {
		e.Event = &ev
	} else {
		e.DecodeErr = err.Error()
	}
	e.Error, _ = m.Header(promo.HeaderError)
	e.FailedAt, _ = m.Header(promo.HeaderFailedAt)
	e.DeadReason, _ = m.Header(promo.HeaderDeadReason)
	if t, ok := m.Header(promo.HeaderOriginTopic); ok {
		p, _ := m.Header(promo.HeaderOriginPartition)
		o, _ := m.Header(promo.HeaderOriginOffset)
		e.Origin = fmt.Sprintf("%s/%s@%s", t, p, o)
	}
	return e
}

// Inspect lists the events of topic that match f, oldest first per
// partition, as they are at the moment of the call. It commits nothing and
// joins no group.
func Inspect(ctx context.Context, client Client, topic string, f Filter) ([]Entry, error) {
	low, high, err := client.Offsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("read offsets of %s: %w", topic, err)
	}
	if f.Until != nil {
		for p, h := range high {
			high[p] = min(h, f.Until[p]) // absent: 0, nothing read
		}
	}
	parts := make([]int, 0, len(high))
	for p := range high {
		parts = append(parts, p)
	}
	sort.Ints(parts)
	var out []Entry
	stop := fmt.Errorf("limit reached")
	for _, p := range parts {
		err := client.ReadRange(ctx, topic, p, low[p], high[p], func(m kafka.Message) error {
			if !f.match(m) {
				return nil
			}
			out = append(out, entryOf(m))
			if f.Limit > 0 && len(out) >= f.Limit {
				return stop
			}
			return nil
		})
		if err == stop {
			break
		}
		if err != nil {
			return out, fmt.Errorf("read %s/%d: %w", topic, p, err)
		}
	}
	return out, nil
}

// Marks returns topic's high-water marks: the Filter.Until of a later
// Inspect or Replay that must see nothing newer.
func Marks(ctx context.Context, client Client, topic string) (map[int]int64, error) {
	_, high, err := client.Offsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("read offsets of %s: %w", topic, err)
	}
	return high, nil
}

// ReplayOptions selects and shapes a replay.
type ReplayOptions struct {
	From, To     string
	Filter       Filter
	ResetRetries bool // drop x-retry-count, so the events get the full retry budget again
	DryRun       bool
}

// Replay copies the selected events of From (as it is at the start) to To:
// same key and value, headers kept except x-dead-reason (and x-retry-count
// with ResetRetries). Kafka topics are logs, so the events also stay in From;
// replaying twice is harmless because generation is idempotent. Each event
// is logged. It returns what it moved (or would move, on a dry run).
func Replay(ctx context.Context, client Client, pub Publisher, o ReplayOptions, log *zap.Logger) ([]Entry, error) {
	if o.From == "" || o.To == "" || o.From == o.To {
		return nil, fmt.Errorf("replay needs two different topics, got --from %q --to %q", o.From, o.To)
	}
	entries, err := Inspect(ctx, client, o.From, o.Filter)
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		return entries, nil
	}
	const chunk = 100
	for i := 0; i < len(entries); i += chunk {
		batch := entries[i:min(i+chunk, len(entries))]
		msgs := make([]kafka.Message, len(batch))
		for j, e := range batch {
			m := kafka.Message{Topic: o.To, Key: e.msg.Key, Value: e.msg.Value, Headers: append([]kafka.Header(nil), e.msg.Headers...)}
			m.DelHeader(promo.HeaderDeadReason)
			if o.ResetRetries {
				m.DelHeader(promo.HeaderRetryCount)
			}
			msgs[j] = m
		}
		if err := pub.Publish(ctx, msgs...); err != nil {
			return entries[:i], fmt.Errorf("publish to %s: %w (%d of %d events were replayed)", o.To, err, i, len(entries))
		}
		for _, e := range batch {
			log.Info("replayed", zap.String("from", fmt.Sprintf("%s/%d@%d", e.Topic, e.Partition, e.Offset)),
				zap.String("to", o.To), zap.String("key", e.Key), zap.Bool("reset_retries", o.ResetRetries))
		}
	}
	return entries, nil
}
