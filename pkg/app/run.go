package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/generator"
	"github.com/promocodes/promocodes/pkg/health"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/redemption"
)

// kafkaConfig converts the configuration for pkg/kafka.
func (c Config) kafkaConfig(clientID string) kafka.Config {
	return kafka.Config{Brokers: c.Kafka.Brokers, ClientID: clientID,
		Partitions: c.Kafka.Partitions, ReplicationFactor: c.Kafka.ReplicationFactor}
}

func (c Config) topics() []string {
	t := c.Kafka.Topics
	return []string{t.Batches, t.Retry, t.Error, t.Dead, t.Redemptions}
}

func (c Config) apiConfig() api.Config {
	return api.Config{
		BatchCodeCount: c.API.BatchCodeCount, MaxCodeCount: c.API.MaxCodeCount, MaxBodyBytes: c.API.MaxBodyBytes,
		MaxDensity: c.Codes.MaxDensity, Secret: []byte(c.Codes.Secret),
		AdminTokens: c.Auth.AdminTokens, RedeemTokens: c.Auth.RedeemTokens,
		Open:             c.IsDev() && len(c.Auth.AdminTokens) == 0,
		MaxMetadataBytes: c.Redeem.MaxMetadataBytes,
	}
}

func (c Config) redemptionConfig() redemption.Config {
	return redemption.Config{GuessLimit: c.Redeem.GuessLimit, GuessWindow: c.Redeem.GuessWindow,
		MaxMetadataBytes: c.Redeem.MaxMetadataBytes, CatalogRefresh: c.Redeem.CatalogRefresh}
}

// newRedemption builds the redemption service and the publisher of its
// events, wired so that a committed redemption wakes the publisher.
func newRedemption(cfg Config, p *parts, log *zap.Logger) (*redemption.Service, *redemption.Publisher, error) {
	svc, err := redemption.New(cfg.redemptionConfig(), p.store, p.reg, log.Named("redemption"))
	if err != nil {
		return nil, nil, err
	}
	p.closers = append(p.closers, svc.Close)
	pub := redemption.NewPublisher(p.store, p.producer, cfg.Kafka.Topics.Redemptions, time.Second,
		log.Named("redemption-events"))
	svc.OnChange(pub.Notify)
	return svc, pub, nil
}

func (c Config) generatorConfig() generator.Config {
	return generator.Config{
		Workers: c.Generator.Workers, ChunkSize: c.Generator.ChunkSize, MaxAttempts: c.Generator.MaxAttempts,
		ErrorTopic: c.Kafka.Topics.Error, DeadTopic: c.Kafka.Topics.Dead, Secret: []byte(c.Codes.Secret),
	}
}

// ensureTopics creates the topics, retrying while the broker is not up yet
// (compose and Kubernetes start services in any order).
func ensureTopics(ctx context.Context, cfg Config, log *zap.Logger) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		return struct{}{}, kafka.EnsureTopics(ctx, cfg.kafkaConfig("promocodes-admin"), cfg.topics()...)
	}, backoff.WithMaxElapsedTime(2*time.Minute), backoff.WithNotify(func(err error, next time.Duration) {
		log.Warn("kafka not ready; retrying", zap.Error(err), zap.Duration("in", next))
	}))
	if err != nil {
		return fmt.Errorf("create topics on %v: %w", cfg.Kafka.Brokers, err)
	}
	return nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// parts is what one process runs; Start* functions fill it and serve wires it.
type parts struct {
	store    Store
	producer *kafka.Producer
	client   *kafka.Client
	reg      *prometheus.Registry
	closers  []func() // in opening order; closed in reverse
}

func (p *parts) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

func openParts(ctx context.Context, cfg Config, clientID string, log *zap.Logger) (*parts, error) {
	p := &parts{reg: newRegistry()}
	st, err := OpenStore(ctx, cfg.DB)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", cfg.DB.Driver, err)
	}
	p.store = st
	p.closers = append(p.closers, st.Close)
	if err := ensureTopics(ctx, cfg, log); err != nil {
		p.close()
		return nil, err
	}
	kc := cfg.kafkaConfig(clientID)
	p.producer = kafka.NewProducer(kc)
	p.closers = append(p.closers, func() {
		if err := p.producer.Close(); err != nil {
			log.Warn("close kafka producer", zap.Error(err))
		}
	})
	p.client = kafka.NewClient(kc)
	p.closers = append(p.closers, func() { _ = p.client.Close() })
	return p, nil
}

func (p *parts) readiness() []health.Check {
	return []health.Check{
		{Name: "database", Fn: p.store.Ping},
		{Name: "kafka", Fn: p.client.Ping},
	}
}

// Process is a started deployable: Wait blocks until it stopped (after its
// context ended or a part failed) and everything it opened is closed.
type Process struct {
	// HTTPAddr is where its HTTP endpoints listen (the API, or the probes).
	HTTPAddr string
	// Brokers is the Kafka bootstrap list it uses (the embedded broker's in dev).
	Brokers []string
	wait    func() error
}

// Wait blocks until the process stopped and returns its error, if any.
func (p *Process) Wait() error { return p.wait() }

// serve listens on http.addr and runs h there together with the loops, all
// under one errgroup: the first to fail stops the others. The Process closes
// p once everything has stopped. On error p is closed at once.
func serve(ctx context.Context, cfg Config, p *parts, h http.Handler, log *zap.Logger,
	loops ...func(context.Context) error) (*Process, error) {
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("http.addr: listen on %s: %w", cfg.HTTP.Addr, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, loop := range loops {
		g.Go(func() error { return loop(gctx) })
	}
	g.Go(func() error { return httpServer(gctx, ln, h, log) })
	return &Process{HTTPAddr: ln.Addr().String(), Brokers: cfg.Kafka.Brokers, wait: func() error {
		defer p.close()
		return g.Wait()
	}}, nil
}

// StartAPI starts the Promotion API and the outbox publisher.
func StartAPI(ctx context.Context, cfg Config, log *zap.Logger) (*Process, error) {
	p, err := openParts(ctx, cfg, "promocodes-api", log)
	if err != nil {
		return nil, err
	}
	outbox := api.NewOutbox(p.store, p.producer, cfg.Kafka.Topics.Batches, time.Second, log.Named("outbox"))
	svc, pub, err := newRedemption(cfg, p, log)
	if err != nil {
		p.close()
		return nil, err
	}
	srv, err := api.New(cfg.apiConfig(), p.store, outbox, health.Handler(nil, p.readiness(), p.reg), log.Named("api"),
		api.WithRedemption(svc))
	if err != nil {
		p.close()
		return nil, err
	}
	proc, err := serve(ctx, cfg, p, srv, log, outbox.Run, svc.Run, pub.Run)
	if err == nil {
		log.Info("api listening", zap.String("addr", proc.HTTPAddr))
	}
	return proc, err
}

// StartGenerator starts the generator workers and their probe endpoints.
func StartGenerator(ctx context.Context, cfg Config, log *zap.Logger) (*Process, error) {
	p, err := openParts(ctx, cfg, "promocodes-generator", log)
	if err != nil {
		return nil, err
	}
	gen, err := newGenerator(cfg, p, log)
	if err != nil {
		p.close()
		return nil, err
	}
	proc, err := serve(ctx, cfg, p, health.Handler(nil, p.readiness(), p.reg), log, gen.Run)
	if err == nil {
		log.Info("generator started", zap.Int("workers", cfg.Generator.Workers), zap.String("probes", proc.HTTPAddr))
	}
	return proc, err
}

func newGenerator(cfg Config, p *parts, log *zap.Logger) (*generator.Generator, error) {
	kc := cfg.kafkaConfig("promocodes-generator")
	topics := []string{cfg.Kafka.Topics.Batches, cfg.Kafka.Topics.Retry}
	newConsumer := func(ctx context.Context) (generator.Consumer, error) {
		return kafka.NewConsumer(kc, cfg.Generator.GroupID, topics)
	}
	return generator.New(cfg.generatorConfig(), p.store, p.producer, newConsumer,
		log.Named("generator"), generator.NewMetrics(p.reg))
}

// Run starts a deployable with start and waits for it.
func Run(ctx context.Context, cfg Config, log *zap.Logger,
	start func(context.Context, Config, *zap.Logger) (*Process, error)) error {
	p, err := start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return p.Wait()
}
