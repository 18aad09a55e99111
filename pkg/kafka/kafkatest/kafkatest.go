// Package kafkatest gives tests a Kafka-protocol broker: the embedded one
// (pkg/broker, default, no dependencies) or Apache Kafka in Docker via
// testcontainers when PROMOCODES_TEST_KAFKA=docker.
//
// Every helper registers its cleanup with t; tests that share a broker must
// use their own topic names and group ids (see Name).
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/broker"
)

// EnvKafka selects the broker Brokers returns: "docker" for Apache Kafka via
// testcontainers, anything else for the embedded broker.
const EnvKafka = "PROMOCODES_TEST_KAFKA"

// ApacheKafkaImage is the image Docker starts (KRaft, single node).
const ApacheKafkaImage = "confluentinc/confluent-local:7.5.0"

// Broker starts an embedded broker on a free 127.0.0.1 port with a data dir
// in t.TempDir() and returns its bootstrap addresses. It is closed when the
// test ends.
func Broker(t testing.TB) []string {
	t.Helper()
	return StartEmbedded(t).Addrs()
}

// Brokers returns the broker selected by PROMOCODES_TEST_KAFKA: the embedded
// one by default, Apache Kafka in Docker for "docker" (skipping the test
// when no Docker engine is reachable).
func Brokers(t *testing.T) []string {
	t.Helper()
	if strings.EqualFold(os.Getenv(EnvKafka), "docker") {
		return Docker(t)
	}
	return Broker(t)
}

// Docker starts Apache Kafka (ApacheKafkaImage) in a container and returns
// its bootstrap addresses; the container is removed when the test ends. It
// skips the test, saying why, when no Docker engine is available.
func Docker(t *testing.T) []string {
	t.Helper()
	testcontainers.SkipIfProviderIsNotHealthy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := tckafka.Run(ctx, ApacheKafkaImage, tckafka.WithClusterID("promocodes-test"))
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatalf("start Apache Kafka container: %v", err)
	}
	brokers, err := c.Brokers(ctx)
	if err != nil {
		t.Fatalf("Apache Kafka container brokers: %v", err)
	}
	return brokers
}

// Embedded is an embedded broker that a test can stop and restart on the
// same address and data dir, to test recovery from a broker outage.
type Embedded struct {
	t    testing.TB
	cfg  broker.Config
	mu   sync.Mutex
	b    *broker.Broker
	addr string
}

// StartEmbedded starts an embedded broker (127.0.0.1, free port, data dir in
// t.TempDir()). It is closed when the test ends.
//
// opts adjust the broker's config before it starts (e.g. BrokerConfigs).
func StartEmbedded(t testing.TB, opts ...func(*broker.Config)) *Embedded {
	t.Helper()
	e := &Embedded{t: t, cfg: broker.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.Start()
	t.Cleanup(e.Stop)
	return e
}

// Addrs returns the bootstrap addresses; they stay the same across restarts.
func (e *Embedded) Addrs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return []string{e.addr}
}

// DataDir returns the broker's data dir.
func (e *Embedded) DataDir() string { return e.cfg.DataDir }

// Stop closes the broker (state is flushed to the data dir). Clients see
// connection errors until Start. Stopping a stopped broker does nothing.
func (e *Embedded) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.b != nil {
		e.b.Close()
		e.b = nil
	}
}

// Start starts a stopped broker on the same address and data dir. The first
// start picks a free port; later starts reuse it, retrying for a while if
// the port is still held by lingering sockets.
func (e *Embedded) Start() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.b != nil {
		return
	}
	cfg := e.cfg
	if e.addr != "" {
		cfg.Listen = e.addr
	}
	// The address can still be held by the broker just stopped: try again
	// for a while.
	b, err := backoff.Retry(context.Background(), func() (*broker.Broker, error) {
		b, err := broker.Start(context.Background(), cfg, zap.NewNop())
		if err != nil && !isAddrInUse(err) {
			return nil, backoff.Permanent(err)
		}
		return b, err
	}, backoff.WithBackOff(backoff.NewConstantBackOff(50*time.Millisecond)), backoff.WithMaxElapsedTime(10*time.Second))
	e.b = b
	if err != nil {
		e.t.Fatalf("start embedded broker: %v", err)
	}
	e.addr = e.b.Addrs()[0]
}

// Restart stops and starts the broker.
func (e *Embedded) Restart() {
	e.t.Helper()
	e.Stop()
	e.Start()
}

func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE)
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// Name returns a topic or group name unique to this test: the test's name
// (sanitised) plus suffix.
func Name(t testing.TB, suffix string) string {
	n := nonName.ReplaceAllString(t.Name(), "_")
	if len(n) > 180 {
		n = n[len(n)-180:]
	}
	return fmt.Sprintf("%s-%s", n, suffix)
}
