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
//
// The rebalance timeout is half the session timeout, so that a rebalance
// ends before the session of a live member waiting in it does. A member
// sends no heartbeats between its JoinGroup and its SyncGroup; a broker that
// lets that member's session run meanwhile (the embedded broker, kfake, does;
// Apache Kafka keeps a member waiting in a rebalance alive) drops it when the
// session ends, without answering it. A rebalance waits up to the rebalance
// timeout for the members that have not rejoined (a stopped process's member
// never does), counted from the last member that came or went, and a live
// member rejoins within a heartbeat interval (plus the reader's teardown of
// its generation, milliseconds) of the rebalance's start, when its session
// was last renewed: with rebalanceTimeout + heartbeatInterval well under
// sessionTimeout the rebalance ends first. With both at 10 s it was a race: a
// live member that lost it waited out kafka-go's join deadline (5 s + the
// rebalance timeout), left and rejoined as a new member, one more rebalance
// for everyone, with races of its own (TestAdversarialFrozenGroupLeader).
const (
	sessionTimeout    = 10 * time.Second
	heartbeatInterval = time.Second
	rebalanceTimeout  = 5 * time.Second
	joinGroupBackoff  = 500 * time.Millisecond
	maxWait           = 250 * time.Millisecond
)

// StoppedMemberHandover bounds how long the partitions of a member whose
// process stopped (SIGSTOP, a frozen VM, a dead host: no heartbeats, no
// LeaveGroup) stay away from the live members of its group: from the stop to
// the live members' new assignment (their next fetch takes a further round
// trip). The stopped member is either
//   - out of any rebalance: its session ends (sessionTimeout after its last
//     heartbeat), the group rebalances, the live members learn of it within
//     a heartbeat interval and rejoin, and the rebalance completes; or
//   - in one: it had rejoined, so the rebalance under way completes as soon
//     as the live members have rejoined (a heartbeat interval). As a
//     follower it holds its partitions until its session ends: the first
//     case, counted from the completion, whose answer renewed its session
//     (heartbeatInterval + sessionTimeout + heartbeatInterval). As the
//     group's leader it never sends the assignment: the broker drops it
//     after the rebalance timeout and starts another rebalance, which waits
//     a further rebalance timeout for its sibling in the same process (a
//     member that was waiting for that assignment, and whose session the
//     broker's answer renewed): heartbeatInterval + 2 × rebalanceTimeout.
//
// Join and sync round trips take milliseconds; the bound adds a second for
// them and for the reader's teardown of its generation: 13 s.
const StoppedMemberHandover = heartbeatInterval + max(sessionTimeout+heartbeatInterval, 2*rebalanceTimeout) + time.Second

// NewConsumer joins group for topics. The topics must exist (EnsureTopics)
// before the first consumer joins: a group that finds no partitions waits
// for the partition watch (every 5 s) to see them.
//
// A group with no committed offset for a partition starts at its first
// offset, so nothing published before the first consumer started is missed.
//
// A member whose process stops loses its partitions to the live members
// within StoppedMemberHandover (13 s).
func NewConsumer(cfg Config, group string, topics []string) (*Consumer, error) {
	return newConsumer(cfg, group, topics, nil)
}

// newConsumer is NewConsumer; log, when not nil, gets the reader's log lines
// (group membership, fetches).
func newConsumer(cfg Config, group string, topics []string, log kafkago.Logger) (*Consumer, error) {
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
		Logger:                 log,
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
