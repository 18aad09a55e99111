// Package kafka is the only package that talks to Kafka: it creates the
// segmentio/kafka-go readers and writers, commits offsets and creates topics.
// The rest of the system sees Message, Producer, Consumer and Client.
//
// Delivery is at-least-once. A Consumer never commits on its own: the caller
// fetches, does the work, makes it durable, and only then commits. Anything
// fetched and not committed is delivered again after a restart or a
// rebalance, so processing must be idempotent.
//
// Concurrency:
//   - Producer and Client are safe for concurrent use by many goroutines.
//   - A Consumer belongs to one goroutine: Fetch and Commit must not be called
//     concurrently. Close may be called from another goroutine to stop it;
//     a blocked Fetch then returns an error.
//   - Every blocking call takes a ctx and returns when it is cancelled.
//
// Errors: calls return errors after the library's own retries (Publish
// rides out an outage of about 2 s by itself). A broker that is down or
// restarting surfaces as a transient error (IsTransient): callers back off
// and call again with the same Producer, Consumer or Client, which reconnect
// by themselves. A failed Commit means the messages may be delivered again;
// retrying it is safe. See docs/kafka.md.
package kafka

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Defaults for Config.
const (
	DefaultPartitions        = 8
	DefaultReplicationFactor = 1
)

// Config says how to reach the cluster.
type Config struct {
	// Brokers are bootstrap host:port addresses.
	Brokers []string
	// ClientID names this process in broker logs and quotas.
	ClientID string
	// Partitions is the partition count EnsureTopics gives new topics
	// (default 8). More partitions than generator workers leaves none idle.
	Partitions int
	// ReplicationFactor is EnsureTopics' replication factor (default 1; use
	// 3 on a production cluster).
	ReplicationFactor int
	// Retention is retention.ms of the batches, retry and error topics when
	// PipelineTopics creates them (zero: DefaultRetention, 30 days;
	// negative: unlimited). The dead-letter topic keeps events forever.
	Retention time.Duration
}

// Validate checks the config, naming each field by its key: "brokers",
// "partitions", "replicationFactor", "retention".
func (c Config) Validate() error {
	var errs configkey.List
	if len(c.Brokers) == 0 {
		errs.Add("brokers", "must list at least one broker (host:port)")
	}
	for _, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			errs.Add("brokers", "%q is not host:port", b)
		}
	}
	if c.Partitions < 0 {
		errs.Add("partitions", "must not be negative (0: %d), got %d", DefaultPartitions, c.Partitions)
	}
	if c.ReplicationFactor < 0 {
		errs.Add("replicationFactor", "must not be negative (0: %d), got %d", DefaultReplicationFactor, c.ReplicationFactor)
	}
	if c.Retention > 0 && c.Retention < time.Hour {
		errs.Add("retention", "must be at least 1h (0: the default, negative: unlimited), got %s: events must outlive outages",
			c.Retention)
	}
	return errs.Err()
}

func (c Config) partitions() int {
	if c.Partitions > 0 {
		return c.Partitions
	}
	return DefaultPartitions
}

func (c Config) replicationFactor() int {
	if c.ReplicationFactor > 0 {
		return c.ReplicationFactor
	}
	return DefaultReplicationFactor
}

func (c Config) clientID() string {
	if c.ClientID != "" {
		return c.ClientID
	}
	return "promocodes"
}

// Topics names the four topics of the batch pipeline (docs/kafka.md).
type Topics struct {
	Batches string
	Retry   string
	Error   string
	Dead    string
}

// DefaultTopics returns the default topic names.
func DefaultTopics() Topics {
	return Topics{
		Batches: "promotion-code-batches",
		Retry:   "promotion-code-batches-retry",
		Error:   "promotion-code-batches-error",
		Dead:    "promotion-code-batches-dead",
	}
}

// WithPrefix returns the topics with p prepended to each name, which gives
// tests their own topics on a shared broker.
func (t Topics) WithPrefix(p string) Topics {
	return Topics{Batches: p + t.Batches, Retry: p + t.Retry, Error: p + t.Error, Dead: p + t.Dead}
}

// Validate checks that all four names are set, distinct and legal.
func (t Topics) Validate() error {
	return ValidateTopics(map[string]string{"batches": t.Batches, "retry": t.Retry, "error": t.Error, "dead": t.Dead})
}

// ValidateTopics checks topic names by their keys: each set, legal and
// different from the others.
func ValidateTopics(names map[string]string) error {
	var errs configkey.List
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seen := map[string]string{}
	for _, key := range keys {
		name := names[key]
		if name == "" {
			errs.Add(key, "must be set")
			continue
		}
		if err := validTopicName(name); err != nil {
			errs.Add(key, "%v", err)
			continue
		}
		if other, dup := seen[name]; dup {
			errs.Add(key, "%q is also %s", name, other)
		}
		seen[name] = key
	}
	return errs.Err()
}

// All returns the four names: batches, retry, error, dead.
func (t Topics) All() []string { return []string{t.Batches, t.Retry, t.Error, t.Dead} }

// ValidateTopicName reports why name cannot be a Kafka topic, if it cannot.
func ValidateTopicName(name string) error { return validTopicName(name) }

func validTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("empty topic name")
	case name == "." || name == "..":
		return fmt.Errorf("illegal topic name %q", name)
	case len(name) > 249:
		return fmt.Errorf("topic name %q longer than 249 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q: only [a-zA-Z0-9._-] allowed", name)
		}
	}
	return nil
}

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Message is a record, as fetched or to publish. Topic, Key, Value and
// Headers are set by the publisher; Partition and Offset by the broker
// (Publish ignores them). Time is the record's timestamp: the producer's
// clock (CreateTime; Publish stamps a zero Time with this host's clock), so
// it is no more trustworthy than the producer's clock.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Time      time.Time
}

// Header returns the value of the last header named key.
func (m Message) Header(key string) (string, bool) {
	for i := len(m.Headers) - 1; i >= 0; i-- {
		if m.Headers[i].Key == key {
			return string(m.Headers[i].Value), true
		}
	}
	return "", false
}

// SetHeader replaces every header named key with one of the given value, or
// adds it. It does not modify the slice m.Headers shared with other copies
// of the message.
func (m *Message) SetHeader(key, value string) {
	hs := make([]Header, 0, len(m.Headers)+1)
	for _, h := range m.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	m.Headers = append(hs, Header{Key: key, Value: []byte(value)})
}

// DelHeader removes every header named key (copy-on-write like SetHeader).
func (m *Message) DelHeader(key string) {
	hs := make([]Header, 0, len(m.Headers))
	for _, h := range m.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	m.Headers = hs
}

// String identifies the message for logs: topic/partition@offset.
func (m Message) String() string {
	return fmt.Sprintf("%s/%d@%d", m.Topic, m.Partition, m.Offset)
}

// EventMessage builds the record for a batch event: key "<promotionId>/<batchNo>"
// (so every move of a batch keeps its partition affinity), JSON value, no headers.
func EventMessage(topic string, e promo.Event) Message {
	return Message{Topic: topic, Key: []byte(e.Key()), Value: e.Marshal()}
}
