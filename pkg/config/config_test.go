package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/app"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileThenEnvThenOverrides(t *testing.T) {
	file := writeFile(t, "db:\n  driver: postgres\n  dsn: postgres://file\nshovel:\n  interval: 2m\nhttp:\n  addr: :1\n")
	t.Setenv("PROMOCODES_DB_DSN", "postgres://env")
	t.Setenv("PROMOCODES_KAFKA_BROKERS", "k1:9092,k2:9092")
	t.Setenv("PROMOCODES_API_BATCHCODECOUNT", "1234")
	cfg, err := Load(app.Defaults(), file, map[string]string{"http.addr": ":2"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DB.DSN != "postgres://env" || cfg.DB.Driver != "postgres" {
		t.Errorf("db = %+v: env must override the file", cfg.DB)
	}
	if strings.Join(cfg.Kafka.Brokers, " ") != "k1:9092 k2:9092" {
		t.Errorf("brokers = %v: the env list is comma-separated", cfg.Kafka.Brokers)
	}
	if cfg.API.BatchCodeCount != 1234 || cfg.Shovel.Interval != 2*time.Minute || cfg.HTTP.Addr != ":2" {
		t.Errorf("batch %d interval %s addr %s", cfg.API.BatchCodeCount, cfg.Shovel.Interval, cfg.HTTP.Addr)
	}
	if cfg.Kafka.Topics.Dead != "promotion-code-batches-dead" {
		t.Errorf("defaults lost: %+v", cfg.Kafka.Topics)
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	_, err := Load(app.Defaults(), writeFile(t, "generator:\n  wrokers: 4\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "wrokers") {
		t.Fatalf("err = %v; want it to name the unknown key", err)
	}
}

func TestValidationNamesTheKey(t *testing.T) {
	cfg, err := Load(app.Defaults(), writeFile(t, "generator:\n  workers: 0\ncodes:\n  secret: short\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, key := range []string{"generator.workers", "codes.secret", "db.dsn", "auth.adminTokens"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("validation error %v does not name %s", err, key)
		}
	}
	if err := cfg.ValidateFor("kafka"); err != nil {
		t.Errorf("ValidateFor(kafka) = %v; the kafka section is fine", err)
	}
}

// The trusted proxies come from the environment as a comma-separated list,
// and a bad one is refused naming its key.
func TestTrustedProxiesFromEnv(t *testing.T) {
	t.Setenv("PROMOCODES_HTTP_TRUSTEDPROXIES", "10.0.0.0/8,192.0.2.1")
	t.Setenv("PROMOCODES_HTTP_CLIENTADDRESSHEADERS", "X-Real-IP,X-Forwarded-For")
	cfg, err := Load(app.Defaults(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.HTTP.TrustedProxies) != 2 || len(cfg.HTTP.ClientAddressHeaders) != 2 {
		t.Fatalf("trustedProxies %q, clientAddressHeaders %q", cfg.HTTP.TrustedProxies, cfg.HTTP.ClientAddressHeaders)
	}
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "http.") {
		t.Errorf("valid proxies refused: %v", err)
	}
	t.Setenv("PROMOCODES_HTTP_TRUSTEDPROXIES", "10.0.0.0/8,not-an-address")
	if cfg, err = Load(app.Defaults(), "", nil); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "http.trustedProxies") {
		t.Errorf("a bad proxy: %v, want an error naming http.trustedProxies", err)
	}
	t.Setenv("PROMOCODES_HTTP_TRUSTEDPROXIES", "")
	if cfg, err = Load(app.Defaults(), "", nil); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "http.clientAddressHeaders") {
		t.Errorf("headers without proxies: %v, want an error naming http.clientAddressHeaders", err)
	}
}

// The database session limits are keys per deployable, set by file or
// environment, and validated naming the key.
func TestDatabaseSessionLimitKeys(t *testing.T) {
	file := writeFile(t, "generator:\n  db:\n    lockTimeout: 3s\napi:\n  db:\n    idleInTransactionTimeout: 5s\ndb:\n  tcpUserTimeout: 12s\n")
	t.Setenv("PROMOCODES_GENERATOR_DB_IDLEINTRANSACTIONTIMEOUT", "45s")
	t.Setenv("PROMOCODES_API_DB_STATEMENTTIMEOUT", "2m")
	cfg, err := Load(app.Defaults(), file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := cfg.Generator.DB; g.LockTimeout != 3*time.Second || g.IdleInTransactionTimeout != 45*time.Second || g.StatementTimeout != 30*time.Second {
		t.Errorf("generator.db = %+v", g)
	}
	if a := cfg.API.DB; a.IdleInTransactionTimeout != 5*time.Second || a.StatementTimeout != 2*time.Minute || a.LockTimeout != 10*time.Second {
		t.Errorf("api.db = %+v", a)
	}
	if cfg.DB.TCPUserTimeout != 12*time.Second || cfg.DB.KeepAlive != 15*time.Second {
		t.Errorf("db = %+v", cfg.DB)
	}
	bad, err := Load(app.Defaults(), writeFile(t,
		"api:\n  db:\n    lockTimeout: -1s\ngenerator:\n  db:\n    statementTimeout: 1us\ndb:\n  keepAlive: 10ms\n  tcpUserTimeout: -1s\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Validate()
	for _, key := range []string{"api.db.lockTimeout", "generator.db.statementTimeout", "db.keepAlive", "db.tcpUserTimeout"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("validation error %v does not name %s", err, key)
		}
	}
}

// auth.shopperJWT comes from the file or from PROMOCODES_AUTH_SHOPPERJWT_*;
// a block that is set at all must be complete, in every environment.
func TestShopperJWTConfig(t *testing.T) {
	base := "env: dev\nkafka:\n  brokers: [\"127.0.0.1:9092\"]\ndb:\n  driver: sqlite\ncodes:\n  secret: 0123456789abcdef0123456789abcdef\n"
	cfg, err := Load(app.Defaults(), writeFile(t, base+"auth:\n  shopperJWT:\n    issuer: https://id.shop.test/\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, key := range []string{"auth.shopperJWT.audience", "auth.shopperJWT.jwksUrl"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("a half-configured block: %v does not name %s", err, key)
		}
	}
	t.Setenv("PROMOCODES_AUTH_SHOPPERJWT_AUDIENCE", "promocodes")
	t.Setenv("PROMOCODES_AUTH_SHOPPERJWT_JWKSURL", "https://id.shop.test/.well-known/jwks.json")
	t.Setenv("PROMOCODES_AUTH_SHOPPERJWT_ALGORITHMS", "RS256,EdDSA")
	t.Setenv("PROMOCODES_AUTH_SHOPPERJWT_CLOCKSKEW", "30s")
	cfg, err = Load(app.Defaults(), writeFile(t, base+"auth:\n  shopperJWT:\n    issuer: https://id.shop.test/\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("complete block: %v", err)
	}
	sj := cfg.Auth.ShopperJWT
	if sj.Audience != "promocodes" || strings.Join(sj.Algorithms, ",") != "RS256,EdDSA" || sj.ClockSkew != 30*time.Second ||
		sj.JWKSRefresh != 15*time.Minute || sj.JWKSMinRefresh != 10*time.Second {
		t.Errorf("loaded %+v", sj)
	}
	t.Setenv("PROMOCODES_AUTH_SHOPPERJWT_ALGORITHMS", "RS256,HS256")
	cfg, _ = Load(app.Defaults(), writeFile(t, base+"auth:\n  shopperJWT:\n    issuer: https://id.shop.test/\n"), nil)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `auth.shopperJWT.algorithms: "HS256" is not allowed`) {
		t.Errorf("HS256: %v", err)
	}
	if err := app.Defaults().Validate(); err != nil && strings.Contains(err.Error(), "shopperJWT") {
		t.Errorf("the defaults (no block) name shopperJWT: %v", err)
	}
}
