package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
)

// backends are the databases the in-process tests run on; PostgreSQL skips
// with the reason without PROMOCODES_TEST_POSTGRES_DSN (or Docker).
var backends = []string{"sqlite", "postgres"}

// onBackends runs fn as parallel subtests, one per backend, with one
// embedded broker for all of them.
func onBackends(t *testing.T, fn func(t *testing.T, backend string, brokers []string)) {
	t.Parallel()
	brokers := kafkatest.Broker(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			fn(t, backend, brokers)
		})
	}
}

// testDatabase returns the db section of a fresh migrated database.
func testDatabase(t *testing.T, backend string) DBConfig {
	t.Helper()
	ctx := context.Background()
	switch backend {
	case "sqlite":
		db := DBConfig{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "promocodes.db"), MaxConns: 4}
		st, err := OpenStore(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return db
	case "postgres":
		dsn, schema := postgrestest.DSN(t), postgrestest.Schema(t)
		st, err := postgres.Open(ctx, postgres.Config{DSN: dsn, Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return DBConfig{Driver: "postgres", DSN: dsn + sep + "search_path=" + schema, MaxConns: 8}
	}
	t.Fatalf("unknown backend %q", backend)
	return DBConfig{}
}

// replicaConfig is an API replica's configuration on db and brokers, open
// (no tokens), with clock as its host's clock.
func replicaConfig(t *testing.T, db DBConfig, brokers []string, clock func() time.Time) Config {
	t.Helper()
	cfg := Defaults()
	cfg.Env = "dev"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.DB = db
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.Partitions = 2
	cfg.Codes.Secret = "in-process-test-secret-0123456789abcdef"
	cfg.Clock = clock
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startReplica starts an API replica in this process and returns its URL.
func startReplica(t *testing.T, cfg Config, name string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := StartAPI(ctx, cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(name))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := p.Wait(); err != nil {
			t.Errorf("%s stopped with %v", name, err)
		}
	})
	return "http://" + p.HTTPAddr
}

// call sends a JSON request and returns the status and the body; headers
// are name, value pairs.
func call(t *testing.T, method, url, body string, headers ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// Two API replicas whose hosts' clocks are two hours apart, each way, on
// one database: a reservation made on one is a hold of exactly its TTL on
// the other. On the replicas' own clocks, the slow one's reservations were
// over before they began (the fast one redeemed the held use), and the fast
// one's held the use for two hours past their TTL.
func TestReservationsHoldTheirTTLAcrossSkewedReplicas(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string, brokers []string) {
		db := testDatabase(t, backend)
		fast := startReplica(t, replicaConfig(t, db, brokers, func() time.Time { return time.Now().Add(2 * time.Hour) }), "fast")
		slow := startReplica(t, replicaConfig(t, db, brokers, func() time.Time { return time.Now().Add(-2 * time.Hour) }), "slow")
		code := fmt.Sprintf("SKEW%d", time.Now().UnixNano()%1_000_000)
		if st, body := call(t, "POST", fast+"/v1/promotions", `{"name":"skew","code":"`+code+`","maxUsagePerCode":1,"perUserLimit":1}`); st != http.StatusCreated {
			t.Fatalf("create: %d %v", st, body)
		}
		// The slow replica holds the one use for 30 s.
		if st, body := call(t, "POST", slow+"/v1/codes/"+code+"/reservations", `{"userId":"alice","ttl":"30s"}`); st != http.StatusCreated {
			t.Fatalf("reserve on the slow replica: %d %v", st, body)
		}
		st, body := call(t, "POST", fast+"/v1/codes/"+code+"/redemptions", `{"userId":"bob","orderId":"o-1"}`)
		if st != http.StatusConflict || body["reason"] != "code_exhausted" {
			t.Fatalf("redeem on the fast replica during the slow one's hold: %d %v; want 409 code_exhausted", st, body)
		}
		// The fast replica holds another code's use for 2 s: free after it.
		code2 := code + "B"
		if st, body := call(t, "POST", slow+"/v1/promotions", `{"name":"skew2","code":"`+code2+`","maxUsagePerCode":1,"perUserLimit":1}`); st != http.StatusCreated {
			t.Fatalf("create: %d %v", st, body)
		}
		if st, body := call(t, "POST", fast+"/v1/codes/"+code2+"/reservations", `{"userId":"carol","ttl":"2s"}`); st != http.StatusCreated {
			t.Fatalf("reserve on the fast replica: %d %v", st, body)
		}
		time.Sleep(3 * time.Second)
		if st, body := call(t, "POST", slow+"/v1/codes/"+code2+"/redemptions", `{"userId":"dave","orderId":"o-2"}`); st != http.StatusCreated {
			t.Fatalf("redeem on the slow replica after the fast one's 2 s hold: %d %v; want 201", st, body)
		}
	})
}
