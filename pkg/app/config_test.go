package app

import (
	"strings"
	"testing"
	"time"
)

// Each component refuses its own keys and Validate places them in the whole
// configuration: the message names the key an operator sets, once, even
// when two components read it (codes.secret: the API and the generator).
func TestValidatePlacesEachComponentsKeys(t *testing.T) {
	c := Defaults()
	c.DB.DSN = "postgres://x"
	c.Auth.AdminTokens = []string{"short"}                   // api: adminTokens
	c.Codes.Secret = "too-short"                             // api and generator: secret
	c.Codes.MaxDensity = 2                                   // api: maxDensity
	c.API.BatchCodeCount = 0                                 // api: batchCodeCount
	c.API.DB.LockTimeout = -time.Second                      // app: the session limits
	c.Generator.Workers = 0                                  // generator: workers
	c.Kafka.Topics.Error = ""                                // kafka, generator, shovel: the topic
	c.Kafka.Retention = time.Minute                          // kafka: retention
	c.Shovel.RetryBackoffMax = time.Second                   // shovel: retryBackoffMax below retryBackoff
	c.Redeem.GuessLimit = 0                                  // redemption: guessLimit
	c.HTTP.TrustedProxies = []string{"not-an-address"}       // api: trustedProxies
	c.Generator.DB.StatementTimeout = 500 * time.Microsecond // app: the session limits
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a configuration with every section wrong")
	}
	msg := err.Error()
	for _, key := range []string{"auth.adminTokens: ", "codes.secret: ", "codes.maxDensity: ", "api.batchCodeCount: ",
		"api.db.lockTimeout: ", "generator.workers: ", "kafka.topics.error: ", "kafka.retention: ",
		"shovel.retryBackoffMax: ", "redeem.guessLimit: ", "http.trustedProxies: ", "generator.db.statementTimeout: "} {
		if n := strings.Count(msg, key); n != 1 {
			t.Errorf("%q appears %d times in:\n%s", key, n, msg)
		}
	}
	for _, line := range strings.Split(msg, "\n") {
		for _, bare := range []string{"workers:", "secret:", "errorTopic:", "batchCodeCount:", "guessLimit:"} {
			if strings.HasPrefix(line, bare) {
				t.Errorf("a key was not placed in the configuration: %q", line)
			}
		}
	}
	if err := c.ValidateFor("shovel"); err == nil || strings.Contains(err.Error(), "generator.workers") ||
		!strings.Contains(err.Error(), "shovel.retryBackoffMax") {
		t.Errorf("ValidateFor(shovel) = %v; want the shovel's keys only", err)
	}
}

// The defaults with the operator's secrets are valid, and an explicit 0
// is refused where a component would otherwise take its default.
func TestValidateRefusesAnExplicitZero(t *testing.T) {
	c := Defaults()
	c.DB.DSN = "postgres://x"
	c.Auth.AdminTokens = []string{"admin-token-0123456789"}
	c.Codes.Secret = "a-secret-of-at-least-32-bytes-0123456789"
	if err := c.Validate(); err != nil {
		t.Fatalf("the defaults with secrets: %v", err)
	}
	c.Generator.ChunkSize = 0
	c.Redeem.CatalogRefresh = 0
	c.API.MaxBodyBytes = 0
	c.Redeem.Admission.MaxQueue = 0
	c.Redeem.Admission.MaxWait = 0
	err := c.Validate()
	for _, key := range []string{"generator.chunkSize", "redeem.catalogRefresh", "api.maxBodyBytes",
		"redeem.admission.maxQueue", "redeem.admission.maxWait"} {
		if err == nil || !strings.Contains(err.Error(), key+": ") {
			t.Errorf("%s: 0 accepted (%v)", key, err)
		}
	}
}

// The store of db.driver validates the database settings a deployable
// opens; each refusal names the key an operator sets, in full, once (the
// API and the generator share db.*), and the session limits name the
// deployable's section.
func TestValidateStoreKeys(t *testing.T) {
	valid := func(driver, dsn string) Config {
		c := Defaults()
		c.DB.Driver, c.DB.DSN = driver, dsn
		c.Auth.AdminTokens = []string{"admin-token-0123456789"}
		c.Codes.Secret = "a-secret-of-at-least-32-bytes-0123456789"
		return c
	}
	for _, tc := range []struct {
		name string
		set  func(c *Config)
		want []string // whole lines of the error
	}{
		{"postgres", func(c *Config) {
			*c = valid("postgres", "")
			c.DB.MaxConns = -1
			c.DB.KeepAlive = 10 * time.Millisecond
			c.DB.TCPUserTimeout = 10 * time.Millisecond
			c.API.DB.LockTimeout = 500 * time.Microsecond
			c.Generator.DB.IdleInTransactionTimeout = 30 * 24 * time.Hour
		}, []string{
			"db.dsn: must be set (PROMOCODES_DB_DSN)",
			"db.maxConns: must be at least 1 (0: 4), got -1",
			"api.db.lockTimeout: must be 0 (the server's setting) or from 1ms to 596h31m23.647s, got 500µs",
			"db.keepAlive: must be 0 (15s), negative (off) or at least 1s, got 10ms",
			"db.tcpUserTimeout: must be 0 (the system's default) or from 1s to 596h31m23.647s, got 10ms",
			"generator.db.idleInTransactionTimeout: must be 0 (the server's setting) or from 1ms to 596h31m23.647s, got 720h0m0s",
		}},
		{"sqlserver", func(c *Config) {
			*c = valid("sqlserver", "sqlserver://sa:pw@h:1433?database=promocodes")
			c.Generator.DB.LockTimeout = -time.Second
		}, []string{"generator.db.lockTimeout: must be 0 (no limit) or from 1ms to 596h31m23.647s, got -1s"}},
		{"sqlite in production without a dsn", func(c *Config) {
			*c = valid("sqlite", "")
			c.API.DB.LockTimeout = -time.Second
		}, []string{
			"db.dsn: must be set (PROMOCODES_DB_DSN)",
			"api.db.lockTimeout: must be 0 (10s) or from 1ms to 596h31m23.647s, got -1s",
		}},
		{"sqlite in memory", func(c *Config) { *c = valid("sqlite", ":memory:") },
			[]string{"db.dsn: must be a file: in-memory databases are not supported (tests: t.TempDir())"}},
		{"driver", func(c *Config) { *c = valid("mysql", "x") },
			[]string{`db.driver: must be sqlite, postgres or sqlserver, got "mysql"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			tc.set(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Validate =\n%s\nwant\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
	c := valid("sqlite", "")
	c.Env = "dev" // the data dir's file
	if err := c.Validate(); err != nil {
		t.Errorf("dev SQLite without a dsn: %v", err)
	}
}

// The admission bounds are checked with their keys: slots in 1..10,000 or
// -1 (off) or 0 (the pool's size), and a wait the HTTP server's read
// timeout would cut first is refused.
func TestValidateAdmission(t *testing.T) {
	base := Defaults()
	base.DB.DSN = "postgres://x"
	base.Auth.AdminTokens = []string{"admin-token-0123456789"}
	base.Codes.Secret = "a-secret-of-at-least-32-bytes-0123456789"
	for _, tc := range []struct {
		name string
		edit func(*Config)
		key  string // "" : valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"off", func(c *Config) { c.Redeem.Admission.Slots = -1 }, ""},
		{"slots -2", func(c *Config) { c.Redeem.Admission.Slots = -2 }, "redeem.admission.slots: "},
		{"queue too large", func(c *Config) { c.Redeem.Admission.MaxQueue = 2_000_000 }, "redeem.admission.maxQueue: "},
		{"wait 1ms", func(c *Config) { c.Redeem.Admission.MaxWait = time.Millisecond }, "redeem.admission.maxWait: "},
		{"wait past the read timeout", func(c *Config) { c.Redeem.Admission.MaxWait = 30 * time.Second }, "redeem.admission.maxWait: must be less than http.readTimeout"},
	} {
		c := base
		tc.edit(&c)
		err := c.Validate()
		switch {
		case tc.key == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.key != "" && (err == nil || !strings.Contains(err.Error(), tc.key)):
			t.Errorf("%s: %v; want %q", tc.name, err, tc.key)
		}
	}
	c := base
	if got := c.redemptionConfig().AdmissionSlots; got != groupAdmissionSlots {
		t.Errorf("slots 0 on PostgreSQL = %d, want %d", got, groupAdmissionSlots)
	}
	c.DB.Driver = "sqlite"
	if got := c.redemptionConfig().AdmissionSlots; got != groupAdmissionSlots {
		t.Errorf("slots 0 on SQLite = %d, want %d", got, groupAdmissionSlots)
	}
	c.DB.Driver = "sqlserver"
	if got := c.redemptionConfig().AdmissionSlots; got != c.DB.MaxConns {
		t.Errorf("slots 0 on SQL Server = %d, want db.maxConns %d", got, c.DB.MaxConns)
	}
	if got := c.apiConfig().AdmissionWait; got != c.Redeem.Admission.MaxWait {
		t.Errorf("the API's admission wait = %s, want redeem.admission.maxWait %s", got, c.Redeem.Admission.MaxWait)
	}
}
