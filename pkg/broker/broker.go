// Package broker runs an embedded Kafka-protocol broker (franz-go's kfake)
// for development (`promocodes dev`, `promocodes broker`) and tests. It is
// one node with no replication; with a DataDir it keeps topics, records and
// committed group offsets across restarts.
//
// It is not Apache Kafka: production uses a real cluster. Clients must not
// depend on anything but the Kafka protocol (see docs/kafka.md).
//
// Concurrency: Start, Addrs and Close may be called from any goroutine; Close
// is idempotent. The broker serves any number of client connections.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultPartitions is the partition count of seeded and auto-created topics
// when Config.Partitions is zero.
const DefaultPartitions = 8

// Config configures an embedded broker.
type Config struct {
	// DataDir holds the broker's state (topics, segments, group offsets).
	// Empty means in memory only: everything is lost on Close.
	DataDir string
	// Listen is the host:port to accept clients on, e.g. 127.0.0.1:9092.
	// Port 0 picks a free port (see Addrs). The host is also what the
	// broker advertises in metadata, so it must be an address clients can
	// reach: a wildcard host (0.0.0.0, ::, empty) is refused unless
	// Advertise is set.
	Listen string
	// Advertise is the host clients are told to connect to (metadata).
	// Empty means the host of Listen.
	Advertise string
	// Partitions is the partition count of seeded topics and of topics
	// created automatically or with CreateTopics asking for -1 partitions.
	// Zero means DefaultPartitions.
	Partitions int
	// Topics are created at start if missing, with Partitions partitions
	// (existing topics, e.g. from the data dir, are left as they are).
	Topics []string
	// TopicConfigs are the settings (Kafka's names, e.g. retention.ms) a
	// topic of Topics is created with; topics not named here get the
	// broker's defaults. Existing topics are not altered.
	TopicConfigs map[string]map[string]string
	// SyncWrites fsyncs every produced batch and group commit. Without it
	// data is written to the OS page cache at once (it survives the
	// process being killed) and fsynced on segment roll and Close; a host
	// crash may lose the last writes, as with Apache Kafka's defaults.
	SyncWrites bool
	// BrokerConfigs are broker-level settings (Kafka's names), for tests that
	// need, say, a short offsets retention ("offset.retention.ms",
	// "offsets.retention.check.interval.ms").
	BrokerConfigs map[string]string
}

// Validate checks the config.
func (c Config) Validate() error {
	var errs []error
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("listen %q: want host:port: %w", c.Listen, err))
	} else {
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("listen %q: bad port", c.Listen))
		}
		if isWildcard(host) && c.Advertise == "" {
			errs = append(errs, fmt.Errorf("listen %q: a wildcard host needs an advertised host", c.Listen))
		}
	}
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("partitions %d: must not be negative", c.Partitions))
	}
	for _, t := range c.Topics {
		if t == "" {
			errs = append(errs, errors.New("topics: empty topic name"))
		}
	}
	return errors.Join(errs...)
}

func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// Broker is a running embedded broker.
type Broker struct {
	c   *kfake.Cluster
	log *zap.Logger
}

// Start starts a broker and returns once it accepts connections. The ctx
// bounds only the start (loading a data dir); stop the broker with Close.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	host, portStr, _ := net.SplitHostPort(cfg.Listen)
	port, _ := strconv.Atoi(portStr)
	parts := cfg.Partitions
	if parts == 0 {
		parts = DefaultPartitions
	}
	advertise := cfg.Advertise
	opts := []kfake.Opt{
		// Ports also fixes the broker count: one node.
		kfake.Ports(port),
		// kfake always listens on 127.0.0.1; ListenFn substitutes our host.
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, p, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			ln, err := net.Listen(network, net.JoinHostPort(host, p))
			if err != nil {
				return nil, err
			}
			if advertise == "" {
				return ln, nil
			}
			return advertisedListener{ln, advertise}, nil
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(parts),
		kfake.ClusterID("promocodes-dev"),
		kfake.WithLogger(zapLogger{log.Named("kfake")}),
	}
	if len(cfg.BrokerConfigs) > 0 {
		opts = append(opts, kfake.BrokerConfigs(cfg.BrokerConfigs))
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start broker on %s: %w", cfg.Listen, err)
	}
	b := &Broker{c: c, log: log}
	// kfake.SeedTopics applies only to a fresh data dir; CreateTopics also
	// adds topics named later to an existing one.
	if err := b.createTopics(ctx, parts, cfg.Topics, cfg.TopicConfigs); err != nil {
		c.Close()
		return nil, fmt.Errorf("start broker: seed topics: %w", err)
	}
	log.Info("kafka broker listening",
		zap.Strings("addrs", b.Addrs()), zap.String("data_dir", cfg.DataDir),
		zap.Int("default_partitions", parts))
	return b, nil
}

func (b *Broker) createTopics(ctx context.Context, partitions int, topics []string, configs map[string]map[string]string) error {
	if len(topics) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, t := range topics {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = t
		rt.NumPartitions = int32(partitions)
		rt.ReplicationFactor = 1
		for k, v := range configs[t] {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			c.Name, c.Value = k, kmsg.StringPtr(v)
			rt.Configs = append(rt.Configs, c)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("%s: %w", t.Topic, err))
		}
	}
	return errors.Join(errs...)
}

// Addrs returns the host:port clients bootstrap from.
func (b *Broker) Addrs() []string {
	return b.c.ListenAddrs()
}

// Close stops accepting clients, flushes state to the data dir and stops the
// broker. Open client connections are cut. Safe to call more than once.
func (b *Broker) Close() {
	b.c.Close()
}

// advertisedListener reports an advertised address instead of the bound
// one: kfake puts the listener's Addr into metadata responses.
type advertisedListener struct {
	net.Listener
	host string
}

func (l advertisedListener) Addr() net.Addr {
	a := l.Listener.Addr().(*net.TCPAddr)
	return advertisedAddr(net.JoinHostPort(l.host, strconv.Itoa(a.Port)))
}

type advertisedAddr string

func (advertisedAddr) Network() string  { return "tcp" }
func (a advertisedAddr) String() string { return string(a) }

// zapLogger adapts kfake's logger. kfake logs every request at info, so
// info and debug both go to debug.
type zapLogger struct{ l *zap.Logger }

func (z zapLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl zapcore.Level
	switch level {
	case kfake.LogLevelError:
		lvl = zapcore.ErrorLevel
	case kfake.LogLevelWarn:
		lvl = zapcore.WarnLevel
	case kfake.LogLevelNone:
		return
	default:
		lvl = zapcore.DebugLevel
	}
	if ce := z.l.Check(lvl, ""); ce != nil {
		ce.Message = fmt.Sprintf(format, args...)
		ce.Write()
	}
}
