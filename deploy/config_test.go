package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// dbSessionKey mirrors api.db and generator.db.
type dbSessionKey struct {
	StatementTimeout         string `json:"statementTimeout"`
	LockTimeout              string `json:"lockTimeout"`
	IdleInTransactionTimeout string `json:"idleInTransactionTimeout"`
}

// appConfig mirrors the promocodes configuration keys that the shipped files
// use. It is decoded strictly, so a misspelt or unknown key in a shipped file
// fails the test instead of being silently ignored by the application.
type appConfig struct {
	Env string `json:"env"`
	Log struct {
		Level  string `json:"level"`
		Format string `json:"format"`
	} `json:"log"`
	HTTP struct {
		Addr        string `json:"addr"`
		ReadTimeout string `json:"readTimeout"`
		IdleTimeout string `json:"idleTimeout"`
		// TrustedProxies and ClientAddressHeaders are optional: no proxy is trusted by default.
		TrustedProxies       []string `json:"trustedProxies"`
		ClientAddressHeaders []string `json:"clientAddressHeaders"`
	} `json:"http"`
	Auth struct {
		AdminTokens  []string `json:"adminTokens"`
		RedeemTokens []string `json:"redeemTokens"`
	} `json:"auth"`
	DB struct {
		Driver         string `json:"driver"`
		DSN            string `json:"dsn"`
		MaxConns       int    `json:"maxConns"`
		RedeemFlights  int    `json:"redeemFlights"`
		KeepAlive      string `json:"keepAlive"`
		TCPUserTimeout string `json:"tcpUserTimeout"`
	} `json:"db"`
	Kafka struct {
		Brokers           []string `json:"brokers"`
		Partitions        int      `json:"partitions"`
		ReplicationFactor int      `json:"replicationFactor"`
		Retention         string   `json:"retention"`
		Topics            struct {
			Batches string `json:"batches"`
			Retry   string `json:"retry"`
			Error   string `json:"error"`
			Dead    string `json:"dead"`
			// Redemptions is the redemption events' topic.
			Redemptions string `json:"redemptions"`
		} `json:"topics"`
	} `json:"kafka"`
	Codes struct {
		Secret          string   `json:"secret"`
		PreviousSecrets []string `json:"previousSecrets"`
		MaxDensity      float64  `json:"maxDensity"`
	} `json:"codes"`
	API struct {
		BatchCodeCount int64        `json:"batchCodeCount"`
		MaxCodeCount   int64        `json:"maxCodeCount"`
		MaxBodyBytes   int64        `json:"maxBodyBytes"`
		DB             dbSessionKey `json:"db"`
	} `json:"api"`
	Generator struct {
		Workers     int          `json:"workers"`
		ChunkSize   int          `json:"chunkSize"`
		GroupID     string       `json:"groupId"`
		MaxAttempts int          `json:"maxAttempts"`
		DB          dbSessionKey `json:"db"`
	} `json:"generator"`
	Shovel struct {
		Interval        string `json:"interval"`
		MaxRetries      int    `json:"maxRetries"`
		GroupID         string `json:"groupId"`
		RetryBackoff    string `json:"retryBackoff"`
		RetryBackoffMax string `json:"retryBackoffMax"`
	} `json:"shovel"`
	Redeem struct {
		GuessLimit           int    `json:"guessLimit"`
		GuessLimitPerToken   int    `json:"guessLimitPerToken"`
		GuessWindow          string `json:"guessWindow"`
		GuessKeys            int    `json:"guessKeys"`
		MaxMetadataBytes     int    `json:"maxMetadataBytes"`
		CatalogRefresh       string `json:"catalogRefresh"`
		ReservationTTL       string `json:"reservationTTL"`
		MaxReservationTTL    string `json:"maxReservationTTL"`
		ReservationRetention string `json:"reservationRetention"`
		IdempotencyRetention string `json:"idempotencyRetention"`
		Admission            struct {
			Slots    int    `json:"slots"`
			MaxQueue int    `json:"maxQueue"`
			MaxWait  string `json:"maxWait"`
		} `json:"admission"`
	} `json:"redeem"`
}

// configKeys are the key paths every shipped config file must spell out, so
// that each is visible to an operator and known to the config loader (an
// environment override binds to a key the loader knows).
var configKeys = []string{
	"env", "log.level", "log.format", "http.addr",
	"auth.adminTokens", "auth.redeemTokens",
	"db.driver", "db.dsn", "db.maxConns", "db.redeemFlights",
	"kafka.brokers", "kafka.partitions", "kafka.replicationFactor", "kafka.retention",
	"kafka.topics.batches", "kafka.topics.retry", "kafka.topics.error", "kafka.topics.dead",
	"codes.secret", "codes.previousSecrets", "codes.maxDensity",
	"api.batchCodeCount", "api.maxCodeCount", "api.maxBodyBytes",
	"generator.workers", "generator.chunkSize", "generator.groupId", "generator.maxAttempts",
	"shovel.interval", "shovel.maxRetries", "shovel.groupId", "shovel.retryBackoff", "shovel.retryBackoffMax",
	"kafka.topics.redemptions",
	"redeem.guessLimit", "redeem.guessLimitPerToken", "redeem.guessWindow", "redeem.guessKeys", "redeem.maxMetadataBytes", "redeem.catalogRefresh",
	"redeem.reservationTTL", "redeem.maxReservationTTL", "redeem.reservationRetention", "redeem.idempotencyRetention",
	"redeem.admission.slots", "redeem.admission.maxQueue", "redeem.admission.maxWait",
}

// repoRoot is the module root; go test runs in the package directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found above the deploy package: %v", err)
	}
	return root
}

func readFile(t *testing.T, path ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(path...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseAppConfig decodes a config file strictly, checks that every key in
// configKeys is present and that the values are usable, and that it carries no
// secret: codes.secret, db.dsn and the tokens must come from the environment.
func parseAppConfig(t *testing.T, name string, data []byte) appConfig {
	t.Helper()
	var cfg appConfig
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		t.Fatalf("%s: strict decode: %v", name, err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, key := range configKeys {
		var node any = tree
		for _, part := range strings.Split(key, ".") {
			m, ok := node.(map[string]any)
			if !ok {
				node = nil
				break
			}
			v, ok := m[part]
			if !ok {
				node = nil
				break
			}
			node = v
			if node == nil {
				node = struct{}{} // present but null
			}
		}
		if node == nil {
			t.Errorf("%s: key %s is missing", name, key)
		}
	}

	if cfg.Env != "production" {
		t.Errorf("%s: env = %q, want production", name, cfg.Env)
	}
	if cfg.Log.Format != "json" && cfg.Log.Format != "console" {
		t.Errorf("%s: log.format = %q, want json or console", name, cfg.Log.Format)
	}
	if cfg.HTTP.Addr != ":8080" {
		t.Errorf("%s: http.addr = %q, want :8080 (the port the images expose and the probes use)", name, cfg.HTTP.Addr)
	}
	if cfg.DB.Driver != "sqlserver" {
		t.Errorf("%s: db.driver = %q, want sqlserver", name, cfg.DB.Driver)
	}
	if cfg.DB.MaxConns <= 0 {
		t.Errorf("%s: db.maxConns = %d", name, cfg.DB.MaxConns)
	}
	if len(cfg.Kafka.Brokers) == 0 {
		t.Errorf("%s: kafka.brokers is empty", name)
	}
	if cfg.Kafka.Partitions <= 0 || cfg.Kafka.ReplicationFactor <= 0 {
		t.Errorf("%s: kafka.partitions = %d, kafka.replicationFactor = %d", name, cfg.Kafka.Partitions, cfg.Kafka.ReplicationFactor)
	}
	topics := cfg.Kafka.Topics
	want := [4]string{"promotion-code-batches", "promotion-code-batches-retry", "promotion-code-batches-error", "promotion-code-batches-dead"}
	if got := [4]string{topics.Batches, topics.Retry, topics.Error, topics.Dead}; got != want {
		t.Errorf("%s: kafka.topics = %v, want the documented defaults %v", name, got, want)
	}
	if cfg.Codes.MaxDensity <= 0 || cfg.Codes.MaxDensity >= 1 {
		t.Errorf("%s: codes.maxDensity = %g", name, cfg.Codes.MaxDensity)
	}
	if cfg.API.BatchCodeCount <= 0 || cfg.API.MaxCodeCount < cfg.API.BatchCodeCount || cfg.API.MaxBodyBytes <= 0 {
		t.Errorf("%s: api = %+v", name, cfg.API)
	}
	if cfg.Generator.Workers <= 0 || cfg.Generator.ChunkSize <= 0 || cfg.Generator.GroupID == "" || cfg.Generator.MaxAttempts <= 0 {
		t.Errorf("%s: generator = %+v", name, cfg.Generator)
	}
	if d, err := time.ParseDuration(cfg.Shovel.Interval); err != nil || d <= 0 {
		t.Errorf("%s: shovel.interval = %q: %v", name, cfg.Shovel.Interval, err)
	}
	if cfg.Shovel.MaxRetries <= 0 || cfg.Shovel.GroupID == "" || cfg.Shovel.GroupID == cfg.Generator.GroupID {
		t.Errorf("%s: shovel = %+v (needs its own consumer group)", name, cfg.Shovel)
	}

	if cfg.Codes.Secret != "" || len(cfg.Codes.PreviousSecrets) != 0 || cfg.DB.DSN != "" || len(cfg.Auth.AdminTokens) != 0 || len(cfg.Auth.RedeemTokens) != 0 {
		t.Errorf("%s: carries a secret (codes.secret, db.dsn or auth tokens); these must come from the environment", name)
	}
	return cfg
}

func TestComposeConfigFile(t *testing.T) {
	root := repoRoot(t)
	cfg := parseAppConfig(t, "configs/compose.yaml", readFile(t, root, "configs", "compose.yaml"))
	if len(cfg.Kafka.Brokers) != 1 || cfg.Kafka.Brokers[0] != "kafka:9092" {
		t.Errorf("kafka.brokers = %v, want [kafka:9092] (the compose kafka service's PLAINTEXT listener)", cfg.Kafka.Brokers)
	}
	if cfg.Kafka.ReplicationFactor != 1 {
		t.Errorf("kafka.replicationFactor = %d, want 1 for the single-broker compose cluster", cfg.Kafka.ReplicationFactor)
	}
	if d, _ := time.ParseDuration(cfg.Shovel.Interval); d != time.Minute {
		t.Errorf("shovel.interval = %q, want 1m for the demo", cfg.Shovel.Interval)
	}
}

func TestProductionExampleConfigFile(t *testing.T) {
	root := repoRoot(t)
	data := readFile(t, root, "configs", "production.example.yaml")
	parseAppConfig(t, "configs/production.example.yaml", data)
	// The reference must tell operators where each secret comes from.
	for _, env := range []string{"PROMOCODES_CODES_SECRET", "PROMOCODES_DB_DSN", "PROMOCODES_AUTH_ADMINTOKENS", "PROMOCODES_AUTH_REDEEMTOKENS"} {
		if !strings.Contains(string(data), env) {
			t.Errorf("configs/production.example.yaml does not mention %s", env)
		}
	}
}
