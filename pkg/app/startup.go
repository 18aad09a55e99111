package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/kafka"
)

// Services wait for what they depend on instead of exiting: compose and
// Kubernetes start them in any order, and a database or broker may be down
// for a while. Until the process is wired, its http.addr answers /healthz
// with 200 (alive: a restart would not help) and /readyz with 503 naming
// what it waits for (not ready: no traffic).

// startupBackoffMax caps the pause between attempts to reach a dependency.
const startupBackoffMax = 30 * time.Second

// startingProbes serves the probes of a process that is still starting on
// addr, until the returned stop is called (before the real server listens
// there). It returns a no-op when addr cannot be listened on: the real
// server will report that.
func startingProbes(addr string, waitingFor *atomic.Value, log *zap.Logger) (stop func()) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return func() {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeProbe(w, http.StatusOK, "starting", waitingFor)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProbe(w, http.StatusServiceUnavailable, "starting", waitingFor)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: zap.NewStdLog(log)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return func() {
		_ = srv.Close()
		<-done
	}
}

func writeProbe(w http.ResponseWriter, status int, state string, waitingFor *atomic.Value) {
	body := map[string]string{"status": state}
	if v, _ := waitingFor.Load().(string); v != "" {
		body["waitingFor"] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// waitFor calls op until it succeeds or ctx ends, backing off up to
// startupBackoffMax and logging each failure with what is awaited.
func waitFor[T any](ctx context.Context, what string, waitingFor *atomic.Value, log *zap.Logger,
	op func(ctx context.Context) (T, error)) (T, error) {
	waitingFor.Store(what)
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 500*time.Millisecond, startupBackoffMax
	started := time.Now()
	v, err := backoff.Retry(ctx, func() (T, error) {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		return op(actx)
	}, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(0), backoff.WithMaxTries(0),
		backoff.WithNotify(func(err error, next time.Duration) {
			log.Warn(what+" not reachable; waiting (the process stays up, not ready)",
				zap.Error(err), zap.Duration("retry_in", next), zap.Duration("waiting_for", time.Since(started).Round(time.Second)))
		}))
	if err != nil {
		if ctx.Err() != nil {
			err = errors.Join(ctx.Err(), err)
		}
		return v, fmt.Errorf("waiting for %s: %w", what, err)
	}
	waitingFor.Store("")
	return v, nil
}

// ensureTopics creates the topics with their settings, waiting while the
// broker is not up yet, and warns about existing topics whose settings
// differ (they are not altered: see docs/kafka.md for the commands).
func ensureTopics(ctx context.Context, cfg Config, waitingFor *atomic.Value, log *zap.Logger) error {
	kc := cfg.kafkaConfig("promocodes-admin")
	c := kafka.NewClient(kc)
	defer c.Close()
	specs := cfg.topicSpecs()
	for _, s := range specs {
		if err := kafka.ValidateTopicName(s.Name); err != nil {
			return fmt.Errorf("kafka.topics: %w", err) // a config error: waiting would not help
		}
	}
	// "kafka", not the addresses: /readyz shows it (the log has the detail).
	_, err := waitFor(ctx, "kafka", waitingFor, log,
		func(ctx context.Context) (struct{}, error) {
			// A plain TCP dial first: an absent broker is "cannot reach
			// host:port" within seconds, not a client error minutes later.
			if err := ReachBrokers(ctx, cfg.Kafka.Brokers); err != nil {
				return struct{}{}, err
			}
			return struct{}{}, c.EnsureTopicSpecs(ctx, specs...)
		})
	if err != nil {
		return fmt.Errorf("create topics on %v: %w", cfg.Kafka.Brokers, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	mismatches, err := c.CheckTopicConfigs(cctx, specs...)
	cancel()
	if err != nil {
		// Not fatal: a cluster may deny DescribeConfigs to the services.
		log.Warn("could not check the topics' settings (retention, min.insync.replicas); check them by hand (docs/kafka.md)",
			zap.Error(err))
	}
	for _, m := range mismatches {
		log.Warn("existing topic setting differs from what promocodes creates topics with; events may be deleted before they are handled (see docs/kafka.md)",
			zap.String("topic", m.Topic), zap.String("config", m.Key), zap.String("have", m.Have), zap.String("want", m.Want),
			zap.String("fix", fmt.Sprintf("kafka-configs.sh --bootstrap-server BROKER --alter --entity-type topics --entity-name %s --add-config %s=%s",
				m.Topic, m.Key, m.Want)))
	}
	return nil
}

// topicConfigs are topicSpecs by topic name, for the embedded broker to
// create its topics with (so a fresh `make run` has the settings
// ensureTopics checks, not the broker's defaults).
func (c Config) topicConfigs() map[string]map[string]string {
	m := map[string]map[string]string{}
	for _, s := range c.topicSpecs() {
		m[s.Name] = s.Configs
	}
	return m
}

// topicSpecs are the settings of every topic the services use: the four of
// the batch pipeline, and any other (events consumed by other services)
// with the batches topic's settings.
func (c Config) topicSpecs() []kafka.TopicSpec {
	kc := c.kafkaConfig("")
	t := c.Kafka.Topics
	specs := kc.PipelineTopics(kafka.Topics{Batches: t.Batches, Retry: t.Retry, Error: t.Error, Dead: t.Dead})
	have := map[string]bool{}
	for _, s := range specs {
		have[s.Name] = true
	}
	for _, name := range c.topics() {
		if !have[name] {
			have[name] = true
			specs = append(specs, kafka.TopicSpec{Name: name, Configs: specs[0].Configs})
		}
	}
	return specs
}
