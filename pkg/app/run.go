package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/console"
	"github.com/promocodes/promocodes/generator"
	"github.com/promocodes/promocodes/pkg/buildinfo"
	"github.com/promocodes/promocodes/pkg/dbclock"
	"github.com/promocodes/promocodes/pkg/health"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/listen"
	"github.com/promocodes/promocodes/pkg/shopper"
	"github.com/promocodes/promocodes/promotion"
	"github.com/promocodes/promocodes/redemption"
	"github.com/promocodes/promocodes/relay"
	"github.com/promocodes/promocodes/shovel"
)

// kafkaConfig converts the configuration for pkg/kafka.
func (c Config) kafkaConfig(clientID string) kafka.Config {
	return kafka.Config{Brokers: c.Kafka.Brokers, ClientID: clientID,
		Partitions: c.Kafka.Partitions, ReplicationFactor: c.Kafka.ReplicationFactor, Retention: c.Kafka.Retention}
}

func (c Config) topics() []string {
	t := c.Kafka.Topics
	return []string{t.Batches, t.Retry, t.Error, t.Dead, t.Redemptions}
}

func (c Config) apiConfig() api.Config {
	return api.Config{
		MaxBodyBytes: c.API.MaxBodyBytes,
		AdminTokens:  c.Auth.AdminTokens, RedeemTokens: c.Auth.RedeemTokens,
		Open:             c.IsDev() && len(c.Auth.AdminTokens) == 0,
		MaxMetadataBytes: c.Redeem.MaxMetadataBytes,
		// Exports hold a connection while they stream: at most half the
		// pool, so creates, status reads and the outbox keep the rest.
		MaxExports:     max(1, c.DB.MaxConns/2),
		TrustedProxies: c.HTTP.TrustedProxies, ClientAddressHeaders: c.HTTP.ClientAddressHeaders,
		AdmissionWait: c.admissionWait(),
	}
}

// admissionWait is the shopper requests' longest admission wait (none when
// admission control is off).
func (c Config) admissionWait() time.Duration {
	if c.admissionSlots() < 0 {
		return 0
	}
	if c.Redeem.Admission.MaxWait == 0 {
		return redemption.DefaultAdmissionWait
	}
	return c.Redeem.Admission.MaxWait
}

func (c Config) promotionConfig() promotion.Config {
	return promotion.Config{BatchCodeCount: c.API.BatchCodeCount, MaxCodeCount: c.API.MaxCodeCount,
		MaxDensity: c.Codes.MaxDensity, Secret: []byte(c.Codes.Secret)}
}

func (c Config) redemptionConfig() redemption.Config {
	return redemption.Config{GuessLimit: c.Redeem.GuessLimit, GuessLimitPerToken: c.Redeem.GuessLimitPerToken,
		GuessWindow: c.Redeem.GuessWindow, GuessKeys: c.Redeem.GuessKeys,
		MaxMetadataBytes: c.Redeem.MaxMetadataBytes, CatalogRefresh: c.Redeem.CatalogRefresh,
		ReservationTTL: c.Redeem.ReservationTTL, MaxReservationTTL: c.Redeem.MaxReservationTTL,
		ReservationRetention: c.Redeem.ReservationRetention, IdempotencyRetention: c.Redeem.IdempotencyRetention,
		AdmissionSlots: c.admissionSlots(), AdmissionQueue: c.Redeem.Admission.MaxQueue,
		AdmissionWait: c.Redeem.Admission.MaxWait}
}

// services are the two services behind the API and the loops serve runs
// for them.
type services struct {
	redemption *redemption.Service
	promotions *promotion.Service
	loops      []func(context.Context) error
}

// newServices builds the redemption and promotion services, the relays of
// the two outboxes and the totals roller, and returns them with the loops
// serve runs: the services', the relays' and the roller's. A create or
// top-up wakes the batch relay; every committed redemption or promotion
// change wakes the event relay (events reach Kafka at once). The roller only
// polls (every RollupInterval), so that a flash sale costs a few totals
// transactions a second, not one per redemption (on SQLite they would queue
// for its single write lock); it counts totals whether or not Kafka is up.
func newServices(cfg Config, p *parts, log *zap.Logger) (services, error) {
	rc := cfg.redemptionConfig()
	rc.Clock = p.clock.Now
	svc, err := redemption.New(rc, p.store, p.reg, log.Named("redemption"))
	if err != nil {
		return services{}, err
	}
	p.closers = append(p.closers, svc.Close)
	pc := cfg.promotionConfig()
	pc.Clock = p.clock.Now
	ps, err := promotion.New(pc, p.store, svc, log.Named("promotion"))
	if err != nil {
		return services{}, err
	}
	m := relay.NewMetrics(p.reg)
	batches := relay.New(relay.Batches(p.store, cfg.Kafka.Topics.Batches), p.producer, relay.Config{}, m, log.Named("outbox"))
	events := relay.New(relay.RedemptionEvents(p.store, cfg.Kafka.Topics.Redemptions), p.producer, relay.Config{}, m,
		log.Named("redemption-events"))
	roller := redemption.NewRoller(p.store, 0, p.reg, log.Named("totals"))
	svc.OnChange(events.Notify)
	ps.OnChange(events.Notify)
	ps.OnBatches(batches.Notify)
	return services{redemption: svc, promotions: ps,
		loops: []func(context.Context) error{p.clock.Run, svc.Run, ps.Run, batches.Run, events.Run, roller.Run}}, nil
}

func (c Config) generatorConfig() generator.Config {
	var previous [][]byte
	for _, k := range c.Codes.PreviousSecrets {
		previous = append(previous, []byte(k))
	}
	return generator.Config{
		Workers: c.Generator.Workers, ChunkSize: c.Generator.ChunkSize, MaxAttempts: c.Generator.MaxAttempts,
		ErrorTopic: c.Kafka.Topics.Error, DeadTopic: c.Kafka.Topics.Dead, Secret: []byte(c.Codes.Secret),
		PreviousSecrets: previous, Clock: c.Clock,
	}
}

// brokerDialTimeout bounds each reachability dial.
const brokerDialTimeout = 3 * time.Second

// ReachBrokers dials each bootstrap broker over TCP and succeeds as soon as
// one answers; otherwise the error says "cannot reach host:port" for each.
func ReachBrokers(ctx context.Context, brokers []string) error {
	var errs []string
	for _, b := range brokers {
		d := net.Dialer{Timeout: brokerDialTimeout}
		c, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			c.Close()
			return nil
		}
		reason := err.Error()
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			reason = oe.Err.Error() // "connect: connection refused", without the repeated address
		}
		errs = append(errs, fmt.Sprintf("cannot reach %s (%s)", b, reason))
	}
	if len(errs) == 0 {
		return errors.New("kafka.brokers is empty")
	}
	return errors.New(strings.Join(errs, "; "))
}

// NewRegistry is the Prometheus registry of one process: Go and process
// collectors and promocodes_build_info; each part adds its own instruments.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bi := buildinfo.Read()
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "promocodes_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": bi.Short(), "revision": bi.Revision, "goversion": bi.GoVersion}})
	build.Set(1)
	reg.MustRegister(build)
	return reg
}

// parts is what one process runs; Start* functions fill it and serve wires it.
type parts struct {
	store Store
	// clock is the database's clock (nil without a store): what the times
	// compared across processes are taken from.
	clock    *dbclock.Clock
	producer *kafka.Producer
	client   *kafka.Client
	reg      *prometheus.Registry
	// shovelHistory keeps the shovel's last cycles when it runs in this
	// process (dev), for the console's operations page; nil elsewhere.
	shovelHistory *shovel.History
	closers       []func() // in opening order; closed in reverse
}

func (p *parts) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

// openParts opens the store (unless withStore is false) with the session
// limits of the deployable, makes sure the topics exist, and opens the Kafka
// producer and client. A database or broker that is down is waited for (with
// backoff, logging why) until ctx ends, with /healthz up and /readyz 503 on
// http.addr meanwhile (startingProbes).
func openParts(ctx context.Context, cfg Config, clientID string, withStore bool, session DBSession, log *zap.Logger) (*parts, error) {
	p := &parts{reg: NewRegistry()}
	var waiting atomic.Value
	stopProbes := startingProbes(cfg.HTTP.Addr, &waiting, log)
	defer stopProbes()
	if withStore {
		open := func(ctx context.Context) (Store, error) {
			return openStore(ctx, cfg.DB, session, clientID, cfg.Clock)
		}
		var (
			st  Store
			err error
		)
		if cfg.DB.Driver == "sqlite" {
			st, err = open(ctx) // a local file: nothing to wait for
		} else {
			st, err = waitFor(ctx, cfg.DB.Driver+" database", &waiting, log, open)
		}
		if err != nil {
			return nil, fmt.Errorf("open %s database: %w", cfg.DB.Driver, err)
		}
		p.store = st
		p.closers = append(p.closers, st.Close)
		p.clock = dbclock.New(st, cfg.Clock, log.Named("dbclock"))
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := p.clock.Sync(sctx); err != nil {
			log.Warn("could not read the database clock yet; this host's clock stands in until it can", zap.Error(err))
		}
		cancel()
		p.reg.MustRegister(NewPoolCollector(st))
	}
	if err := ensureTopics(ctx, cfg, &waiting, log); err != nil {
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
	checks := []health.Check{{Name: "kafka", Fn: p.client.Ping}}
	if p.store != nil {
		checks = append(checks,
			health.Check{Name: "database", Fn: p.store.Ping},
			health.Check{Name: "schema", Fn: func(ctx context.Context) error { return schemaCurrent(ctx, p.store) }})
	}
	return checks
}

// schemaCurrent fails while the database lacks migrations this binary needs:
// serving against it would answer 500s (relation "counters" does not exist).
func schemaCurrent(ctx context.Context, st Store) error {
	pending, err := st.SchemaPending(ctx)
	if err != nil || pending {
		return &health.StatusError{Status: "schema not migrated: run promocodes migrate", Err: err}
	}
	return nil
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
	lns, err := listen.Listen(cfg.HTTP.Addr)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("http.addr: listen on %s: %w", cfg.HTTP.Addr, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, loop := range loops {
		g.Go(func() error { return loop(gctx) })
	}
	g.Go(func() error { return httpServer(gctx, lns, h, cfg.HTTP, log) })
	return &Process{HTTPAddr: lns[0].Addr().String(), Brokers: cfg.Kafka.Brokers, wait: func() error {
		defer p.close()
		return g.Wait()
	}}, nil
}

// StartAPI starts the Promotion API and the relays of its outboxes.
func StartAPI(ctx context.Context, cfg Config, log *zap.Logger) (*Process, error) {
	p, err := openParts(ctx, cfg, "promocodes-api", true, cfg.API.DB, log)
	if err != nil {
		return nil, err
	}
	svcs, err := newServices(cfg, p, log)
	if err != nil {
		p.close()
		return nil, err
	}
	apiCfg := cfg.apiConfig()
	apiCfg.Metrics = api.NewMetrics(p.reg)
	apiCfg.Clock = p.clock.Now
	p.reg.MustRegister(NewBacklogCollector(p.store, log.Named("metrics")))
	opts, err := shopperOptions(ctx, cfg, p, log)
	if err != nil {
		p.close()
		return nil, err
	}
	srv, err := api.New(apiCfg, p.store, svcs.promotions, health.Handler(nil, p.readiness(), p.reg, health.WithLogger(log.Named("health"))), log.Named("api"),
		append(opts, api.WithRedemption(svcs.redemption))...)
	if err != nil {
		p.close()
		return nil, err
	}
	h, err := withConsole(cfg, apiCfg, srv, p, log)
	if err != nil {
		p.close()
		return nil, err
	}
	proc, err := serve(ctx, cfg, p, h, log, svcs.loops...)
	if err == nil {
		log.Info("api listening", zap.String("addr", proc.HTTPAddr))
	}
	return proc, err
}

// shopperOptions builds the shopper token verifier when auth.shopperJWT is
// set, closed with p, and returns the API options that use it (none when it
// is not set).
func shopperOptions(ctx context.Context, cfg Config, p *parts, log *zap.Logger) ([]api.Option, error) {
	sc := cfg.Auth.ShopperJWT.verifierConfig()
	if !sc.Enabled() {
		return nil, nil
	}
	v, err := shopper.New(ctx, sc)
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() {
		if err := v.Close(); err != nil {
			log.Warn("stop the shopper key refresh", zap.Error(err))
		}
	})
	log.Info("shopper tokens: the shopper endpoints take the user from the Shopper-Token header",
		zap.String("issuer", sc.Issuer), zap.String("audience", sc.Audience), zap.Bool("jwks", sc.JWKSURL != ""))
	return []api.Option{api.WithShopperTokens(v)}, nil
}

// StartGenerator starts the generator workers and their probe endpoints.
func StartGenerator(ctx context.Context, cfg Config, log *zap.Logger) (*Process, error) {
	p, err := openParts(ctx, cfg, "promocodes-generator", true, cfg.Generator.DB, log)
	if err != nil {
		return nil, err
	}
	gen, err := newGenerator(cfg, p, log)
	if err != nil {
		p.close()
		return nil, err
	}
	proc, err := serve(ctx, cfg, p, health.Handler(nil, p.readiness(), p.reg, health.WithLogger(log.Named("health"))), log, gen.Run)
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
	return generator.New(cfg.generatorConfig(), generatorFaults(p.store, log), p.producer, newConsumer,
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

// withConsole mounts the admin console (/console, and / leading there)
// beside the API.
func withConsole(cfg Config, apiCfg api.Config, srv *api.Server, p *parts, log *zap.Logger) (http.Handler, error) {
	c, err := console.New(console.Config{AdminTokens: apiCfg.AdminTokens, Open: apiCfg.Open,
		InsecureCookies: cfg.IsDev(), MaxDensity: cfg.Codes.MaxDensity, Version: buildinfo.Read().Short(),
		ClientAddr: srv.ClientAddr},
		srv, p.store, console.Ops{Client: p.client, Publisher: p.producer, DeadTopic: cfg.Kafka.Topics.Dead,
			BatchesTopic: cfg.Kafka.Topics.Batches, RetryTopic: cfg.Kafka.Topics.Retry, ErrorTopic: cfg.Kafka.Topics.Error,
			RedemptionsTopic: cfg.Kafka.Topics.Redemptions, GeneratorGroup: cfg.Generator.GroupID,
			ShovelGroup: cfg.Shovel.GroupID, ShovelHistory: p.shovelHistory}, log.Named("console"))
	if err != nil {
		return nil, err
	}
	return console.Mount(srv, c), nil
}
