package app

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/health"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/shovel"
)

func (c Config) shovelConfig() shovel.Config {
	t := c.Kafka.Topics
	return shovel.Config{ErrorTopic: t.Error, RetryTopic: t.Retry, DeadTopic: t.Dead,
		GroupID: c.Shovel.GroupID, MaxRetries: c.Shovel.MaxRetries, Interval: c.Shovel.Interval,
		RetryBackoff: c.Shovel.RetryBackoff, RetryBackoffMax: c.Shovel.RetryBackoffMax}
}

func newShovel(cfg Config, p *parts, log *zap.Logger) (*shovel.Shovel, error) {
	sc := cfg.shovelConfig()
	if os.Getenv("PROMOCODES_FAULT_SHOVEL") == "kill-after-publish" {
		// Fault injection for the end-to-end tests: die like a SIGKILLed pod
		// in the window between a publish and its offset commit.
		log.Warn("fault injection: the shovel will SIGKILL itself after its first publish")
		sc.AfterPublish = func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	}
	var states shovel.StateStore // nil without a database: parked batches then show only in the topics
	if p.store != nil {
		states = p.store
	}
	s, err := shovel.New(sc, p.client, p.producer, states, log.Named("shovel"))
	if err != nil {
		return nil, err
	}
	s.Observe(shovel.NewMetrics(p.reg), p.shovelHistory)
	return s, nil
}

// StartShovel starts the shovel: a cycle every shovel.interval, with /healthz
// failing while the broker is unreachable.
func StartShovel(ctx context.Context, cfg Config, log *zap.Logger) (*Process, error) {
	p, err := openParts(ctx, cfg, "promocodes-shovel", cfg.DB.DSN != "", DBSession{}, log)
	if err != nil {
		return nil, err
	}
	if p.store == nil {
		log.Info("no db.dsn: the shovel runs without a database; parked batches show in the dead-letter topic, not in promotion status")
	}
	s, err := newShovel(cfg, p, log)
	if err != nil {
		p.close()
		return nil, err
	}
	live := []health.Check{{Name: "kafka", Fn: s.Healthy}}
	proc, err := serve(ctx, cfg, p, health.Handler(live, p.readiness(), p.reg, health.WithLogger(log.Named("health"))), log, s.Run)
	if err == nil {
		log.Info("shovel started", zap.Duration("interval", cfg.Shovel.Interval), zap.Int("max_retries", cfg.Shovel.MaxRetries),
			zap.Duration("retry_backoff", cfg.Shovel.RetryBackoff), zap.Duration("retry_backoff_max", cfg.Shovel.RetryBackoffMax))
	}
	return proc, err
}

// ShovelOnce runs one shovel cycle (for a Kubernetes CronJob). It fails when
// any event could not be moved, so the job shows as failed.
func ShovelOnce(ctx context.Context, cfg Config, log *zap.Logger) (shovel.Stats, error) {
	p, err := openParts(ctx, cfg, "promocodes-shovel", cfg.DB.DSN != "", DBSession{}, log)
	if err != nil {
		return shovel.Stats{}, err
	}
	defer p.close()
	s, err := newShovel(cfg, p, log)
	if err != nil {
		return shovel.Stats{}, err
	}
	return s.Once(ctx)
}

// Tools gives the SRE commands what they need: the Kafka client and
// producer, and (for reconcile) the store. Close it when done.
type Tools struct {
	Client   shovel.Client
	Producer shovel.Publisher
	Store    Store
	Config   Config
	close    func()
}

// Close releases what OpenTools opened.
func (t *Tools) Close() { t.close() }

// OpenTools opens the clients for the SRE commands. withStore opens the
// database too (reconcile).
func OpenTools(ctx context.Context, cfg Config, withStore bool, log *zap.Logger) (*Tools, error) {
	p := &parts{}
	if withStore {
		st, err := OpenStore(ctx, cfg.DB)
		if err != nil {
			return nil, fmt.Errorf("open %s database: %w", cfg.DB.Driver, err)
		}
		p.store = st
		p.closers = append(p.closers, st.Close)
	}
	if err := ReachBrokers(ctx, cfg.Kafka.Brokers); err != nil {
		p.close()
		return nil, fmt.Errorf("kafka: %w", err)
	}
	kc := cfg.kafkaConfig("promocodes-sre")
	client := kafka.NewClient(kc)
	prod := kafka.NewProducer(kc)
	p.closers = append(p.closers, func() { _ = prod.Close() }, func() { _ = client.Close() })
	return &Tools{Client: client, Producer: prod, Store: p.store, Config: cfg, close: p.close}, nil
}
