package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/broker"
	"github.com/promocodes/promocodes/pkg/health"
	"github.com/promocodes/promocodes/shovel"
)

// StartDev starts the whole system in one process on embedded defaults: the
// Kafka-protocol broker (listening on kafka.brokers' first address, so kcat
// and the SRE commands work against it), SQLite under dev.dataDir (unless
// db.* says otherwise), migrations, the API with its outbox relays, the
// generator workers and the shovel.
func StartDev(ctx context.Context, cfg Config, log *zap.Logger) (*Process, error) {
	dataDir := cfg.Dev.DataDir
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("dev.dataDir: create %s: %w", dataDir, err)
	}
	if cfg.DB.Driver == "sqlite" && cfg.DB.DSN == "" {
		cfg.DB.DSN = filepath.Join(dataDir, "promocodes.db")
	}
	b, err := broker.Start(ctx, broker.Config{DataDir: filepath.Join(dataDir, "kafka"), Listen: cfg.Kafka.Brokers[0],
		Partitions: cfg.Kafka.Partitions, Topics: cfg.topics(), TopicConfigs: cfg.topicConfigs()}, log.Named("broker"))
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on %s: %w", cfg.Kafka.Brokers[0], err)
	}
	cfg.Kafka.Brokers = b.Addrs()

	if _, err := Migrate(ctx, cfg, log); err != nil {
		b.Close()
		return nil, err
	}
	// One store serves the API and the generators: per limit the looser.
	p, err := openParts(ctx, cfg, "promocodes-dev", true, cfg.API.DB.loosest(cfg.Generator.DB), log)
	if err != nil {
		b.Close()
		return nil, err
	}
	p.closers = append([]func(){b.Close}, p.closers...) // the broker closes last

	apiCfg := cfg.apiConfig()
	if apiCfg.Open {
		log.Warn("auth disabled: dev mode without auth.adminTokens serves the API to anyone who can reach it")
	}
	apiCfg.Metrics = api.NewMetrics(p.reg)
	apiCfg.Clock = p.clock.Now
	p.reg.MustRegister(NewBacklogCollector(p.store, log.Named("metrics")))
	gen, err := newGenerator(cfg, p, log)
	if err != nil {
		p.close()
		return nil, err
	}
	p.shovelHistory = shovel.NewHistory(20)
	sh, err := newShovel(cfg, p, log)
	if err != nil {
		p.close()
		return nil, err
	}
	svcs, err := newServices(cfg, p, log)
	if err != nil {
		p.close()
		return nil, err
	}
	live := []health.Check{{Name: "shovel", Fn: sh.Healthy}}
	opts, err := shopperOptions(ctx, cfg, p, log)
	if err != nil {
		p.close()
		return nil, err
	}
	srv, err := api.New(apiCfg, p.store, svcs.promotions, health.Handler(live, p.readiness(), p.reg, health.WithLogger(log.Named("health"))), log.Named("api"),
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
	proc, err := serve(ctx, cfg, p, h, log, append([]func(context.Context) error{gen.Run, sh.Run}, svcs.loops...)...)
	if err != nil {
		return nil, err
	}
	url := "http://" + proc.HTTPAddr
	log.Info("promocodes dev is serving",
		zap.String("api", url), zap.Strings("kafka", cfg.Kafka.Brokers), zap.String("data_dir", dataDir))
	// With admin tokens set the hints carry the header, never the secret.
	auth, authNote := "", ""
	if !apiCfg.Open {
		auth = ` -H "Authorization: Bearer $TOKEN"`
		authNote = "  (TOKEN: one of auth.adminTokens)\n"
	}
	fmt.Fprintf(os.Stderr, "\npromocodes dev is up.\n  Console: %s/console/\n  API docs: %s/docs\n  API:    %s\n  Kafka:  %v (kcat -b %s -L)\n  Data:   %s\n\nTry:\n%s"+
		"  curl -s%s -XPOST %s/v1/promotions -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"name\":\"winter\",\"codeCount\":1000000,\"format\":{\"charset\":\"alnum\",\"length\":10,\"prefix\":\"WNTR-\"}}'\n"+
		"  curl -s%s %s/v1/promotions/1\n  curl -s%s %s/v1/promotions/1/codes | head\n\n",
		url, url, url, cfg.Kafka.Brokers, cfg.Kafka.Brokers[0], dataDir, authNote, auth, url, auth, url, auth, url)
	return proc, nil
}
