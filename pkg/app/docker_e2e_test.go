//go:build integration

package app

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/store/sqlserver/sqlservertest"
)

// TestDockerEndToEndOnSQLServerAndApacheKafka runs the production pipeline in
// this process against the production servers: the API (with its outbox
// publisher), two generators and the shovel, on Apache Kafka and SQL Server in
// containers. A 200,000-code promotion created over HTTP must complete with
// exactly 200,000 distinct codes in its CSV export.
//
// It needs a Docker engine (both servers are started by testcontainers;
// PROMOCODES_TEST_SQLSERVER_DSN may name a SQL Server instead). Run it with
//
//	go test -tags integration -run Docker ./pkg/app/
func TestDockerEndToEndOnSQLServerAndApacheKafka(t *testing.T) {
	const how = "go test -tags integration -run Docker ./pkg/app/ where a Docker engine is reachable"
	// Each helper skips with its reason when it cannot provide its server.
	dsn := sqlservertest.Database(t)
	brokers := kafkatest.Docker(t)
	t.Logf("SQL Server and Apache Kafka are up (%s)", how)

	cfg := Defaults()
	cfg.Env = "dev" // the API runs open (no tokens), as createAndWait expects
	cfg.Log.Format = "console"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.DB = DBConfig{Driver: "sqlserver", DSN: dsn, MaxConns: 8}
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.Partitions = 4
	cfg.Kafka.Topics = TopicConfig{
		Batches: kafkatest.Name(t, "batches"), Retry: kafkatest.Name(t, "retry"),
		Error: kafkatest.Name(t, "error"), Dead: kafkatest.Name(t, "dead"),
	}
	cfg.Codes.Secret = "docker-e2e-test-secret-0123456789abcdef"
	cfg.Generator.GroupID = kafkatest.Name(t, "generator")
	cfg.Shovel.GroupID = kafkatest.Name(t, "shovel")
	cfg.Shovel.Interval = 2 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := Migrate(ctx, cfg, log.Named("migrate")); err != nil {
		t.Fatal(err)
	}

	var procs []*Process
	start := func(name string, fn func(context.Context, Config, *zap.Logger) (*Process, error)) *Process {
		t.Helper()
		p, err := fn(ctx, cfg, log.Named(name))
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		procs = append(procs, p)
		return p
	}
	// Stop everything in reverse order of starting, each process closing what
	// it opened; a process that stopped with an error fails the test.
	t.Cleanup(func() {
		cancel()
		for i := len(procs) - 1; i >= 0; i-- {
			if err := procs[i].Wait(); err != nil {
				t.Errorf("process %d stopped with %v", i, err)
			}
		}
	})
	api := start("api", StartAPI)
	start("generator-1", StartGenerator)
	start("generator-2", StartGenerator)
	start("shovel", StartShovel)

	url := "http://" + api.HTTPAddr
	const n = 200_000
	began := time.Now()
	id := createAndWait(t, url, n, 5*time.Minute)
	took := time.Since(began)
	if got := exportDistinct(t, url, id); got != n {
		t.Fatalf("export has %d distinct codes, want %d", got, n)
	}
	t.Logf("%d codes on SQL Server + Apache Kafka in %s (%.0f codes/s); export: %d distinct",
		n, took.Round(time.Millisecond), n/took.Seconds(), n)
}
