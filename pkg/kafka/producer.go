package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Producer publishes messages synchronously. Safe for concurrent use.
type Producer struct {
	w         *kafkago.Writer
	transport *kafkago.Transport
}

// NewProducer returns a producer. It connects lazily, on the first Publish.
//
// Settings: RequiredAcks=all (a message is acknowledged once the in-sync
// replicas have it: on a 3-replica cluster a broker loss cannot lose an
// acknowledged event); batch keys round-robin over the partitions by batch
// number, other keys hashed (either way the same key, the same partition, so
// every move of a batch keeps its key's ordering; see batchBalancer); BatchTimeout 2ms (a single Publish is
// not held back waiting for more messages; a Publish of many messages is sent
// as per-partition batches of up to 1000).
func NewProducer(cfg Config) *Producer {
	t := newTransport(cfg)
	return &Producer{
		transport: t,
		w: &kafkago.Writer{
			Addr:            kafkago.TCP(cfg.Brokers...),
			Balancer:        &batchBalancer{},
			RequiredAcks:    kafkago.RequireAll,
			BatchTimeout:    2 * time.Millisecond,
			BatchSize:       1000,
			MaxAttempts:     5,
			WriteBackoffMin: 100 * time.Millisecond,
			WriteBackoffMax: time.Second,
			ReadTimeout:     10 * time.Second,
			WriteTimeout:    10 * time.Second,
			Transport:       t,
		},
	}
}

// Publish writes msgs and returns once the broker has acknowledged all of
// them, or with an error. On error some messages may have been written
// (errors.As a WriteErrors to see which): retrying the whole call can
// duplicate them, which consumers tolerate (at-least-once). Each message
// must name its Topic; Partition and Offset are ignored.
func (p *Producer) Publish(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	out := make([]kafkago.Message, len(msgs))
	for i, m := range msgs {
		if m.Topic == "" {
			return fmt.Errorf("publish: message %d has no topic", i)
		}
		out[i] = toKafkaGo(m)
	}
	if err := p.w.WriteMessages(ctx, out...); err != nil {
		var werrs kafkago.WriteErrors
		if errors.As(err, &werrs) {
			return fmt.Errorf("publish %d messages to %s: %d failed: %w", len(msgs), msgs[0].Topic, werrs.Count(), firstError(werrs))
		}
		return fmt.Errorf("publish %d messages to %s: %w", len(msgs), msgs[0].Topic, err)
	}
	return nil
}

// WriteErrors is returned (wrapped) by kafka-go for partially failed
// batches; firstError unwraps it to the first cause so errors.Is works on
// the wrapped result.
func firstError(werrs kafkago.WriteErrors) error {
	for _, e := range werrs {
		if e != nil {
			return e
		}
	}
	return werrs
}

// Close flushes nothing (Publish is synchronous) and releases connections.
func (p *Producer) Close() error {
	err := p.w.Close()
	p.transport.CloseIdleConnections()
	return err
}

func toKafkaGo(m Message) kafkago.Message {
	// A zero Time is stamped by kafka-go with this host's clock.
	km := kafkago.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Time: m.Time}
	if len(m.Headers) > 0 {
		km.Headers = make([]kafkago.Header, len(m.Headers))
		for i, h := range m.Headers {
			km.Headers[i] = kafkago.Header{Key: h.Key, Value: h.Value}
		}
	}
	return km
}

func fromKafkaGo(km kafkago.Message) Message {
	m := Message{Topic: km.Topic, Partition: km.Partition, Offset: km.Offset,
		Key: km.Key, Value: km.Value, Time: km.Time}
	if len(km.Headers) > 0 {
		m.Headers = make([]Header, len(km.Headers))
		for i, h := range km.Headers {
			m.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return m
}

func newTransport(cfg Config) *kafkago.Transport {
	return &kafkago.Transport{
		ClientID:    cfg.clientID(),
		DialTimeout: 5 * time.Second,
		IdleTimeout: 30 * time.Second,
		// Short so a topic created by another process, or a broker that came
		// back, is seen within a second (one small request per second).
		MetadataTTL: time.Second,
	}
}
