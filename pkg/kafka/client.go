package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// Client inspects the cluster and manages group offsets without being a
// member of any group. Safe for concurrent use.
//
// It reads topic metadata from a cache refreshed every second, so a topic
// created by another process may take that long to be visible.
type Client struct {
	c         *kafkago.Client
	transport *kafkago.Transport
	cfg       Config
}

// NewClient returns a client. It connects lazily.
func NewClient(cfg Config) *Client {
	t := newTransport(cfg)
	return &Client{
		c:         &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...), Timeout: 10 * time.Second, Transport: t},
		transport: t,
		cfg:       cfg,
	}
}

// Close releases the client's connections.
func (c *Client) Close() error {
	c.transport.CloseIdleConnections()
	return nil
}

// Ping does one request round trip to a broker (ApiVersions), for health
// checks.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.c.ApiVersions(ctx, &kafkago.ApiVersionsRequest{})
	if err != nil {
		return fmt.Errorf("ping kafka: %w", err)
	}
	if resp.Error != nil {
		return fmt.Errorf("ping kafka: %w", resp.Error)
	}
	return nil
}

// EnsureTopics creates the topics that are missing, with cfg.Partitions
// partitions and cfg.ReplicationFactor replicas, and waits until metadata
// shows all of them. Existing topics are left as they are (their partition
// count is not changed). Idempotent; safe to race with other processes.
func EnsureTopics(ctx context.Context, cfg Config, topics ...string) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c := NewClient(cfg)
	defer c.Close()
	return c.EnsureTopics(ctx, topics...)
}

// EnsureTopics is EnsureTopics with this client's config.
func (c *Client) EnsureTopics(ctx context.Context, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	req := &kafkago.CreateTopicsRequest{}
	for _, t := range topics {
		if err := validTopicName(t); err != nil {
			return fmt.Errorf("ensure topics: %w", err)
		}
		req.Topics = append(req.Topics, kafkago.TopicConfig{
			Topic:             t,
			NumPartitions:     c.cfg.partitions(),
			ReplicationFactor: c.cfg.replicationFactor(),
		})
	}
	resp, err := c.c.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("ensure topics %v: %w", topics, err)
	}
	var errs []error
	for t, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", t, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	return c.waitTopics(ctx, topics)
}

// waitTopics waits until this client's metadata shows every topic with
// partitions that have leaders (newly created topics appear asynchronously).
func (c *Client) waitTopics(ctx context.Context, topics []string) error {
	for {
		missing, err := c.missingTopics(ctx, topics)
		if err != nil {
			return fmt.Errorf("ensure topics: %w", err)
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ensure topics: waiting for %v: %w", missing, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Client) missingTopics(ctx context.Context, topics []string) ([]string, error) {
	md, err := c.c.Metadata(ctx, &kafkago.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	ready := map[string]bool{}
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			continue
		}
		ok := true
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				ok = false
			}
		}
		ready[t.Name] = ok
	}
	var missing []string
	for _, t := range topics {
		if !ready[t] {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

// Partitions returns the topic's partition ids in ascending order.
func (c *Client) Partitions(ctx context.Context, topic string) ([]int, error) {
	md, err := c.c.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("partitions of %s: %w", topic, t.Error)
		}
		ps := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ps = append(ps, p.ID)
		}
		slices.Sort(ps)
		return ps, nil
	}
	return nil, fmt.Errorf("partitions of %s: %w", topic, kafkago.UnknownTopicOrPartition)
}

// Offsets returns, per partition, the first offset still in the log (low)
// and the high-water mark (high: the offset the next message will get).
// A partition holds high-low messages (fewer if compacted).
func (c *Client) Offsets(ctx context.Context, topic string) (low, high map[int]int64, err error) {
	parts, err := c.Partitions(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	// One request per kind: Kafka rejects a ListOffsets naming a partition
	// twice.
	if low, err = c.listOffsets(ctx, topic, parts, kafkago.FirstOffset); err != nil {
		return nil, nil, err
	}
	if high, err = c.listOffsets(ctx, topic, parts, kafkago.LastOffset); err != nil {
		return nil, nil, err
	}
	return low, high, nil
}

func (c *Client) listOffsets(ctx context.Context, topic string, parts []int, which int64) (map[int]int64, error) {
	reqs := make([]kafkago.OffsetRequest, len(parts))
	for i, p := range parts {
		reqs[i] = kafkago.OffsetRequest{Partition: p, Timestamp: which}
	}
	resp, err := c.c.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64, len(parts))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		if which == kafkago.FirstOffset {
			out[po.Partition] = po.FirstOffset
		} else {
			out[po.Partition] = po.LastOffset
		}
	}
	if len(out) != len(parts) {
		return nil, fmt.Errorf("list offsets of %s: answer for %d of %d partitions", topic, len(out), len(parts))
	}
	return out, nil
}

// Position is a group's committed position on one partition: the next
// offset to consume and the metadata string committed with it (a consumer
// may keep a little state there; Kafka bounds it by
// offset.metadata.max.bytes, 4 KiB by default).
type Position struct {
	Offset   int64
	Metadata string
}

// CommittedOffsets returns the group's committed offsets for topic: for each
// partition, the next offset the group will consume. Partitions without a
// commit are absent.
func (c *Client) CommittedOffsets(ctx context.Context, group, topic string) (map[int]int64, error) {
	pos, err := c.CommittedPositions(ctx, group, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64, len(pos))
	for p, o := range pos {
		out[p] = o.Offset
	}
	return out, nil
}

// CommittedPositions is CommittedOffsets with the metadata committed with
// each offset.
func (c *Client) CommittedPositions(ctx context.Context, group, topic string) (map[int]Position, error) {
	parts, err := c.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	resp, err := c.c.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s on %s: %w", group, topic, err)
	}
	if errors.Is(resp.Error, kafkago.GroupIdNotFound) {
		// A group that never committed: kfake says so, Apache Kafka answers -1s.
		return map[int]Position{}, nil
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("committed offsets of group %s on %s: %w", group, topic, resp.Error)
	}
	out := make(map[int]Position, len(parts))
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("committed offsets of group %s on %s/%d: %w", group, topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = Position{Offset: p.CommittedOffset, Metadata: p.Metadata}
		}
	}
	return out, nil
}

// CommitOffsets stores offsets (partition → next offset to consume, i.e.
// last processed + 1) for group without joining it (a "simple" commit,
// generation -1). This is how a periodic job such as the shovel commits.
//
// The broker accepts it only while the group has no active members: give
// such jobs a group id of their own, never shared with a Consumer. A group
// with live members answers UNKNOWN_MEMBER_ID (Apache Kafka and kfake alike).
func (c *Client) CommitOffsets(ctx context.Context, group, topic string, offsets map[int]int64) error {
	pos := make(map[int]Position, len(offsets))
	for p, o := range offsets {
		pos[p] = Position{Offset: o}
	}
	return c.CommitPositions(ctx, group, topic, pos)
}

// CommitPositions is CommitOffsets with metadata: each commit replaces the
// partition's offset and its metadata together. Metadata is advisory: when
// the broker refuses it as too large (offset.metadata.max.bytes), the
// offsets are committed without it.
func (c *Client) CommitPositions(ctx context.Context, group, topic string, positions map[int]Position) error {
	err := c.commitPositions(ctx, group, topic, positions)
	if !errors.Is(err, kafkago.OffsetMetadataTooLarge) {
		return err
	}
	bare := make(map[int]Position, len(positions))
	for p, o := range positions {
		bare[p] = Position{Offset: o.Offset}
	}
	return c.commitPositions(ctx, group, topic, bare)
}

func (c *Client) commitPositions(ctx context.Context, group, topic string, positions map[int]Position) error {
	if len(positions) == 0 {
		return nil
	}
	commits := make([]kafkago.OffsetCommit, 0, len(positions))
	for p, o := range positions {
		commits = append(commits, kafkago.OffsetCommit{Partition: p, Offset: o.Offset, Metadata: o.Metadata})
	}
	resp, err := c.c.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{
		GroupID:      group,
		GenerationID: -1,
		Topics:       map[string][]kafkago.OffsetCommit{topic: commits},
	})
	if err != nil {
		return fmt.Errorf("commit offsets of group %s on %s: %w", group, topic, err)
	}
	var errs []error
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", p.Partition, p.Error))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("commit offsets of group %s on %s: %w", group, topic, err)
	}
	return nil
}

// ReadRange calls fn for each message of topic/partition with offset in
// [from, to), in order, without a group and without committing. It returns
// fn's first error, or nil once offset to-1 has been passed. Records removed
// by retention or compaction are skipped. Choose to from Offsets' high-water
// marks: a to beyond the high-water mark waits (until ctx is done) for
// messages that may never come.
func (c *Client) ReadRange(ctx context.Context, topic string, partition int, from, to int64, fn func(Message) error) error {
	next := from
	for next < to {
		resp, err := c.c.Fetch(ctx, &kafkago.FetchRequest{
			Topic: topic, Partition: partition, Offset: next,
			MinBytes: 1, MaxBytes: 4 << 20, MaxWait: maxWait,
		})
		if err != nil {
			return fmt.Errorf("read %s/%d@%d: %w", topic, partition, next, err)
		}
		if resp.Error != nil {
			return fmt.Errorf("read %s/%d@%d: %w", topic, partition, next, resp.Error)
		}
		if resp.LogStartOffset > next {
			next = resp.LogStartOffset
		}
		n, err := readRecords(resp.Records, topic, partition, &next, to, fn)
		if err != nil {
			return err
		}
		if n == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			// Nothing left below the high-water mark (the log was truncated
			// or the tail holds only control records): the range is done,
			// rather than fetching the same empty tail forever.
			if resp.HighWatermark <= next {
				return nil
			}
		}
	}
	return nil
}

func readRecords(rr kafkago.RecordReader, topic string, partition int, next *int64, to int64, fn func(Message) error) (int, error) {
	n := 0
	for {
		r, err := rr.ReadRecord()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, fmt.Errorf("read %s/%d@%d: %w", topic, partition, *next, err)
		}
		// A fetch answers whole batches, which may begin before the offset
		// asked for; a batch may also run past to.
		if r.Offset < *next {
			continue
		}
		if r.Offset >= to {
			*next = to
			return n, nil
		}
		m := Message{Topic: topic, Partition: partition, Offset: r.Offset, Time: r.Time}
		if m.Key, err = protocol.ReadAll(r.Key); err == nil {
			m.Value, err = protocol.ReadAll(r.Value)
		}
		if err != nil {
			return n, fmt.Errorf("read %s/%d@%d: %w", topic, partition, r.Offset, err)
		}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, Header{Key: h.Key, Value: h.Value})
		}
		*next = r.Offset + 1
		n++
		if err := fn(m); err != nil {
			return n, err
		}
	}
}

// PartitionLag is a group's position on one partition.
type PartitionLag struct {
	Topic     string
	Partition int
	// Low is the first offset still in the log, High the high-water mark
	// (the offset the next message will get).
	Low, High int64
	// Committed is the group's committed offset (the next it will read), -1
	// when it has none.
	Committed int64
	// Lag is the messages not yet committed: High minus Committed (minus Low
	// without a commit, or when the commit fell behind retention).
	Lag int64
}

// GroupLag returns group's position on every partition of topics, in topic
// and partition order.
func (c *Client) GroupLag(ctx context.Context, group string, topics ...string) ([]PartitionLag, error) {
	var out []PartitionLag
	for _, t := range topics {
		low, high, err := c.Offsets(ctx, t)
		if err != nil {
			return nil, err
		}
		committed, err := c.CommittedOffsets(ctx, group, t)
		if err != nil {
			return nil, err
		}
		parts := make([]int, 0, len(high))
		for p := range high {
			parts = append(parts, p)
		}
		slices.Sort(parts)
		for _, p := range parts {
			pl := PartitionLag{Topic: t, Partition: p, Low: low[p], High: high[p], Committed: -1}
			from := low[p]
			if o, ok := committed[p]; ok {
				pl.Committed = o
				from = max(o, low[p])
			}
			pl.Lag = max(high[p]-from, 0)
			out = append(out, pl)
		}
	}
	return out, nil
}

// Lag is the number of messages in topics not yet committed by group: the
// sum of GroupLag's partitions.
func (c *Client) Lag(ctx context.Context, group string, topics ...string) (int64, error) {
	parts, err := c.GroupLag(ctx, group, topics...)
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, p := range parts {
		lag += p.Lag
	}
	return lag, nil
}

// Latest returns up to n of the newest messages of each partition of
// topic, as they are at the call, newest first across partitions (by
// broker time, then partition and offset). It joins no group and commits
// nothing.
func (c *Client) Latest(ctx context.Context, topic string, n int) ([]Message, error) {
	low, high, err := c.Offsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	var out []Message
	for p, h := range high {
		from := max(low[p], h-int64(n))
		if from >= h {
			continue
		}
		err := c.ReadRange(ctx, topic, p, from, h, func(m Message) error {
			out = append(out, m)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b Message) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		return int(b.Offset - a.Offset)
	})
	return out, nil
}

// IsTransient reports whether err is worth retrying after a backoff: the
// broker is unreachable or restarting, a leader or coordinator moved, a
// request timed out. Cancellation of the caller's own ctx is not transient.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var kerr kafkago.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var nerr net.Error
	return errors.As(err, &nerr)
}

// Group describes a consumer group.
type Group struct {
	ID      string
	State   string // Empty, PreparingRebalance, CompletingRebalance, Stable, Dead
	Members []GroupMember
}

// GroupMember is a live member and the partitions it holds.
type GroupMember struct {
	ID         string
	ClientID   string
	ClientHost string
	Partitions map[string][]int // topic -> partitions
}

// DescribeGroup returns the group's state and members (for status pages and
// tests that wait for an assignment to settle).
func (c *Client) DescribeGroup(ctx context.Context, group string) (Group, error) {
	resp, err := c.c.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return Group{}, fmt.Errorf("describe group %s: %w", group, err)
	}
	for _, g := range resp.Groups {
		if g.GroupID != group {
			continue
		}
		if g.Error != nil {
			return Group{}, fmt.Errorf("describe group %s: %w", group, g.Error)
		}
		out := Group{ID: g.GroupID, State: g.GroupState}
		for _, m := range g.Members {
			gm := GroupMember{ID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost, Partitions: map[string][]int{}}
			for _, t := range m.MemberAssignments.Topics {
				gm.Partitions[t.Topic] = append(gm.Partitions[t.Topic], t.Partitions...)
			}
			out.Members = append(out.Members, gm)
		}
		return out, nil
	}
	return Group{}, fmt.Errorf("describe group %s: not in answer", group)
}
