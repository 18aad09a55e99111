package broker_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/broker"
	"github.com/promocodes/promocodes/pkg/kafka"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  broker.Config
		ok   bool
	}{
		{"loopback", broker.Config{Listen: "127.0.0.1:9092"}, true},
		{"any port", broker.Config{Listen: "127.0.0.1:0"}, true},
		{"no port", broker.Config{Listen: "127.0.0.1"}, false},
		{"bad port", broker.Config{Listen: "127.0.0.1:99999"}, false},
		{"wildcard", broker.Config{Listen: "0.0.0.0:9092"}, false},
		{"empty host", broker.Config{Listen: ":9092"}, false},
		{"wildcard advertised", broker.Config{Listen: "0.0.0.0:9092", Advertise: "kafka.local"}, true},
		{"negative partitions", broker.Config{Listen: "127.0.0.1:0", Partitions: -1}, false},
		{"empty topic", broker.Config{Listen: "127.0.0.1:0", Topics: []string{""}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestRestartKeepsTopicsMessagesAndOffsets is the property `promocodes dev`
// relies on: a broker restarted on the same data dir has the same topics,
// messages and committed group offsets.
func TestRestartKeepsTopicsMessagesAndOffsets(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	dir := t.TempDir()
	const topic, group = "restart-topic", "restart-group"
	cfg := broker.Config{DataDir: dir, Listen: "127.0.0.1:0", Partitions: 3, Topics: []string{topic}}

	b, err := broker.Start(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addrs()[0]
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Fatalf("listening on %s, want 127.0.0.1", addr)
	}

	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: topic, Balancer: &kafkago.Hash{},
		RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond}
	var msgs []kafkago.Message
	for i := range 30 {
		msgs = append(msgs, kafkago.Message{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	// Consume and commit the first 10 messages the group sees.
	r := newReader(addr, topic, group)
	committed := map[string]bool{}
	for range 10 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
		committed[string(m.Value)] = true
	}
	r.Close()
	b.Close()

	// Restart on the same address and data dir, with an extra seeded topic.
	cfg.Listen = addr
	cfg.Topics = append(cfg.Topics, "added-later")
	b, err = broker.Start(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	conn, err := kafkago.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic, "added-later")
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 6 {
		t.Fatalf("after restart: %d partitions, want 3 + 3", len(parts))
	}

	// The group resumes after its commits: it sees exactly the other 20
	// (a commit covers everything before it on its partition, and the
	// group fetched each partition in order).
	r = newReader(addr, topic, group)
	defer r.Close()
	seen := map[string]bool{}
	for len(seen) < 20 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("after restart, fetched %d of 20: %v", len(seen), err)
		}
		v := string(m.Value)
		if committed[v] || seen[v] {
			t.Fatalf("after restart, %s redelivered", v)
		}
		seen[v] = true
	}
}

func newReader(addr, topic, group string) *kafkago.Reader {
	return kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: []string{addr}, GroupID: group, Topic: topic,
		StartOffset: kafkago.FirstOffset, MaxWait: 100 * time.Millisecond,
		HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 10 * time.Second, JoinGroupBackoff: 200 * time.Millisecond,
	})
}

func TestInMemory(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(context.Background(), broker.Config{Listen: "127.0.0.1:0", Topics: []string{"t"}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Close() // idempotent
}

// TestWildcardListenAdvertises: listening on all interfaces, the broker
// tells clients the advertised host (kfake would otherwise advertise the
// bound address, 0.0.0.0 or ::, which remote clients cannot dial).
func TestWildcardListenAdvertises(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{Listen: "0.0.0.0:0", Advertise: "127.0.0.1", Topics: []string{"w"}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := b.Addrs()[0]
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Fatalf("Addrs() = %s, want the advertised host", addr)
	}
	conn, err := kafkago.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	brokers, err := conn.Brokers()
	if err != nil || len(brokers) != 1 || brokers[0].Host != "127.0.0.1" {
		t.Fatalf("metadata brokers %+v, %v", brokers, err)
	}
}

// Topics the broker creates carry the settings they are given, so a fresh
// `make run` passes the services' topic check without warnings.
func TestStartCreatesTopicsWithConfigs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := map[string]map[string]string{
		"kept":    {"retention.ms": "-1"},
		"monthly": {"retention.ms": "2592000000"},
	}
	b, err := broker.Start(ctx, broker.Config{Listen: "127.0.0.1:0", Topics: []string{"kept", "monthly", "plain"},
		TopicConfigs: want}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := kafka.NewClient(kafka.Config{Brokers: b.Addrs()})
	defer c.Close()
	var specs []kafka.TopicSpec
	for name, cfg := range want {
		specs = append(specs, kafka.TopicSpec{Name: name, Configs: cfg})
	}
	mismatches, err := c.CheckTopicConfigs(ctx, specs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(mismatches) != 0 {
		t.Fatalf("topics created without their settings: %+v", mismatches)
	}
	// The check itself can fail: a topic created without settings differs.
	mismatches, err = c.CheckTopicConfigs(ctx, kafka.TopicSpec{Name: "plain", Configs: map[string]string{"retention.ms": "-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(mismatches) != 1 {
		t.Fatalf("a topic created with defaults passed the check: %+v", mismatches)
	}
}
