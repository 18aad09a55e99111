package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// ErrClosed is returned by Fetch and Commit after Close.
var ErrClosed = errors.New("kafka: consumer closed")

// Consumer reads a consumer group's share of several topics. It never
// commits on its own: Fetch, process, then Commit. One goroutine per
// Consumer (Close may come from another).
type Consumer struct {
	r      *kafkago.Reader
	closed atomic.Bool
	group  string
	topics []string
}

// Consumer group timings. The broker's minimum session timeout is 6 s
// (Apache Kafka's and kfake's default group.min.session.timeout.ms), so 10 s
// with a 1 s heartbeat: a killed member is replaced within about 10 s and a
// member learns of a rebalance within a second.
const (
	sessionTimeout    = 10 * time.Second
	heartbeatInterval = time.Second
	rebalanceTimeout  = 10 * time.Second
	joinGroupBackoff  = 500 * time.Millisecond
	maxWait           = 250 * time.Millisecond
)

// NewConsumer joins group for topics. The topics must exist (EnsureTopics)
// before the first consumer joins: a group that finds no partitions waits
// for the partition watch (every 5 s) to see them.
//
// A group with no committed offset for a partition starts at its first
// offset, so nothing published before the first consumer started is missed.
func NewConsumer(cfg Config, group string, topics []string) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if group == "" {
		return nil, errors.New("kafka: consumer: empty group id")
	}
	if len(topics) == 0 {
		return nil, errors.New("kafka: consumer: no topics")
	}
	for _, t := range topics {
		if err := validTopicName(t); err != nil {
			return nil, fmt.Errorf("kafka: consumer: %w", err)
		}
	}
	rc := kafkago.ReaderConfig{
		Brokers:     cfg.Brokers,
		GroupID:     group,
		GroupTopics: topics,
		Dialer: &kafkago.Dialer{
			ClientID:  cfg.clientID(),
			Timeout:   5 * time.Second,
			DualStack: true,
		},
		MinBytes:               1,
		MaxBytes:               10 << 20,
		MaxWait:                maxWait,
		ReadBatchTimeout:       10 * time.Second,
		CommitInterval:         0, // synchronous: Commit returns when the broker has it
		StartOffset:            kafkago.FirstOffset,
		HeartbeatInterval:      heartbeatInterval,
		SessionTimeout:         sessionTimeout,
		RebalanceTimeout:       rebalanceTimeout,
		JoinGroupBackoff:       joinGroupBackoff,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		ReadBackoffMin:         50 * time.Millisecond,
		ReadBackoffMax:         time.Second,
		MaxAttempts:            3,
	}
	if err := rc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: consumer %s: %w", group, err)
	}
	return &Consumer{r: kafkago.NewReader(rc), group: group, topics: topics}, nil
}

// Fetch blocks until a message is available for this member, ctx is done or
// the consumer is closed. It never commits. Within a partition messages come
// in offset order; after a rebalance or restart, messages fetched but not
// committed are delivered again (here or to another member).
//
// While the broker is unreachable Fetch returns the reader's connection
// errors (IsTransient reports true); the Consumer stays usable: log, back
// off, and call Fetch again. It does not need to be recreated. After a
// broker restart the group may take up to the session timeout (10 s) to
// rebalance before messages flow again.
func (c *Consumer) Fetch(ctx context.Context) (Message, error) {
	// The reader may still hold prefetched messages after Close.
	if c.closed.Load() {
		return Message{}, ErrClosed
	}
	km, err := c.r.FetchMessage(ctx)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Message{}, ErrClosed
		}
		return Message{}, fmt.Errorf("fetch (group %s): %w", c.group, err)
	}
	return fromKafkaGo(km), nil
}

// MaxCommitWait bounds one Commit, whatever the caller's ctx allows.
const MaxCommitWait = 30 * time.Second

// Commit marks msgs done for the group: for each partition, the next fetch
// after a restart starts after the highest offset given. Committing offset N
// commits everything before it on that partition, so commit only once every
// earlier message of the partition is done. Synchronous: when Commit returns
// nil the broker has stored the offsets.
//
// Commit fails when the broker is unreachable; the work is then done again by
// whoever fetches the message next. A member that lost the partition in a
// rebalance may still see its late Commit succeed (kafka-go applies it under
// the new generation), which can move the committed offset back and cause a
// redelivery. Both are absorbed by the caller's idempotent processing.
// Retrying a failed Commit is safe.
func (c *Consumer) Commit(ctx context.Context, msgs ...Message) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if len(msgs) == 0 {
		return nil
	}
	out := make([]kafkago.Message, len(msgs))
	for i, m := range msgs {
		out[i] = kafkago.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	}
	// A commit waits for the reader's commit loop and the coordinator's
	// answer: bound it, so a lost coordinator cannot hold the caller forever.
	ctx, cancel := context.WithTimeout(ctx, MaxCommitWait)
	defer cancel()
	if err := c.r.CommitMessages(ctx, out...); err != nil {
		if errors.Is(err, io.ErrClosedPipe) {
			return ErrClosed
		}
		return fmt.Errorf("commit %s (group %s): %w", msgs[len(msgs)-1], c.group, err)
	}
	return nil
}

// Close leaves the group (its partitions move to the other members at once)
// and releases connections. Uncommitted messages will be redelivered.
func (c *Consumer) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if err := c.r.Close(); err != nil {
		return fmt.Errorf("close consumer (group %s): %w", c.group, err)
	}
	return nil
}
