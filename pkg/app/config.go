package app

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/shopper"
)

// Config is the whole configuration, as cmd/promocodes reads it from
// configs/*.yaml, PROMOCODES_<SECTION>_<KEY> and flags. The mapstructure tags
// are the stable config keys (DESIGN.md).
type Config struct {
	Env       string          `mapstructure:"env"` // dev | production
	Log       LogConfig       `mapstructure:"log"`
	HTTP      HTTPConfig      `mapstructure:"http"`
	Auth      AuthConfig      `mapstructure:"auth"`
	DB        DBConfig        `mapstructure:"db"`
	Kafka     KafkaConfig     `mapstructure:"kafka"`
	Codes     CodesConfig     `mapstructure:"codes"`
	API       APIConfig       `mapstructure:"api"`
	Generator GeneratorConfig `mapstructure:"generator"`
	Shovel    ShovelConfig    `mapstructure:"shovel"`
	Redeem    RedeemConfig    `mapstructure:"redeem"`
	Dev       DevConfig       `mapstructure:"dev"`

	// Clock, when set, is this process's own clock in place of time.Now:
	// tests set it in-process to play a host whose clock is off. It is no
	// configuration key, and nothing that compares times across processes
	// reads it (they take the database's clock).
	Clock func() time.Time
}

type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug | info | warn | error
	Format string `mapstructure:"format"` // console | json
}

type HTTPConfig struct {
	Addr string `mapstructure:"addr"`
	// ReadTimeout bounds reading a whole request; IdleTimeout closes idle
	// keep-alive connections.
	ReadTimeout time.Duration `mapstructure:"readTimeout"`
	IdleTimeout time.Duration `mapstructure:"idleTimeout"`
	// TrustedProxies are the reverse proxies (addresses or CIDR ranges) in
	// front of the API; only from them are ClientAddressHeaders (default
	// X-Forwarded-For) read to know a client's address (the guess limit's key).
	TrustedProxies       []string `mapstructure:"trustedProxies"`
	ClientAddressHeaders []string `mapstructure:"clientAddressHeaders"`
}

type AuthConfig struct {
	AdminTokens  []string `mapstructure:"adminTokens"`
	RedeemTokens []string `mapstructure:"redeemTokens"`
	// ShopperJWT, when set, makes the shopper endpoints take the user from
	// a signed shopper token (docs/redemption.md, "Signed shoppers").
	ShopperJWT ShopperJWTConfig `mapstructure:"shopperJWT"`
}

// ShopperJWTConfig is auth.shopperJWT: whose shopper tokens to trust. Unset
// (no issuer, audience, jwksUrl or publicKey): the API takes the userId of
// requests as sent. Set at all: it must be complete (issuer, audience, and
// jwksUrl or publicKey), or no process starts.
type ShopperJWTConfig struct {
	Issuer    string `mapstructure:"issuer"`
	Audience  string `mapstructure:"audience"`
	JWKSURL   string `mapstructure:"jwksUrl"`
	PublicKey string `mapstructure:"publicKey"` // PEM or JWK JSON
	// Algorithms is the allow-list (asymmetric only).
	Algorithms []string      `mapstructure:"algorithms"`
	ClockSkew  time.Duration `mapstructure:"clockSkew"`
	// JWKSRefresh is the background refetch interval; JWKSMinRefresh the
	// least time between two refetches forced by unknown key ids.
	JWKSRefresh    time.Duration `mapstructure:"jwksRefresh"`
	JWKSMinRefresh time.Duration `mapstructure:"jwksMinRefresh"`
}

// verifierConfig is the shopper.Config of the block.
func (c ShopperJWTConfig) verifierConfig() shopper.Config {
	return shopper.Config{Issuer: c.Issuer, Audience: c.Audience, JWKSURL: c.JWKSURL, PublicKey: c.PublicKey,
		Algorithms: c.Algorithms, ClockSkew: c.ClockSkew, JWKSRefresh: c.JWKSRefresh, JWKSMinRefresh: c.JWKSMinRefresh}
}

type DBConfig struct {
	Driver   string `mapstructure:"driver"` // sqlite | postgres | sqlserver
	DSN      string `mapstructure:"dsn"`
	MaxConns int    `mapstructure:"maxConns"`
	// KeepAlive and TCPUserTimeout are every database connection's TCP
	// settings (PostgreSQL, SQL Server), so that a connection whose other
	// end vanished is noticed within a bound: keepalive probes after
	// KeepAlive idle (0: 15s), every KeepAlive, 3 unanswered close it; data
	// unacknowledged for TCPUserTimeout closes it (Linux; 0: the system's
	// default). PostgreSQL gets them on its end of the connection too.
	KeepAlive      time.Duration `mapstructure:"keepAlive"`
	TCPUserTimeout time.Duration `mapstructure:"tcpUserTimeout"`
}

// DBSession is the server-side limits a deployable's database sessions get
// (api.db, generator.db); zero leaves the server's (or role's) setting.
//   - StatementTimeout: PostgreSQL statement_timeout.
//   - LockTimeout: PostgreSQL lock_timeout, SQL Server SET LOCK_TIMEOUT,
//     SQLite's busy timeout (there 0 means its default, 10s).
//   - IdleInTransactionTimeout: PostgreSQL
//     idle_in_transaction_session_timeout: a session whose client vanished
//     or froze mid-transaction is ended and its row locks released.
//     SQL Server has no such limit (see docs/store.md).
type DBSession struct {
	StatementTimeout         time.Duration `mapstructure:"statementTimeout"`
	LockTimeout              time.Duration `mapstructure:"lockTimeout"`
	IdleInTransactionTimeout time.Duration `mapstructure:"idleInTransactionTimeout"`
}

// loosest is the session of a process that runs both deployables (dev): per
// limit the larger, no limit when either has none.
func (s DBSession) loosest(o DBSession) DBSession {
	pick := func(a, b time.Duration) time.Duration {
		if a == 0 || b == 0 {
			return 0
		}
		return max(a, b)
	}
	return DBSession{StatementTimeout: pick(s.StatementTimeout, o.StatementTimeout),
		LockTimeout:              pick(s.LockTimeout, o.LockTimeout),
		IdleInTransactionTimeout: pick(s.IdleInTransactionTimeout, o.IdleInTransactionTimeout)}
}

// maxSessionTimeout is the largest limit the databases take (INT_MAX ms).
const maxSessionTimeout = (1<<31 - 1) * time.Millisecond

func (s DBSession) validate(section string, bad func(key, format string, args ...any)) {
	for key, d := range map[string]time.Duration{"statementTimeout": s.StatementTimeout, "lockTimeout": s.LockTimeout,
		"idleInTransactionTimeout": s.IdleInTransactionTimeout} {
		if d != 0 && (d < time.Millisecond || d > maxSessionTimeout) {
			bad(section+".db."+key, "must be 0 (the server's setting) or from 1ms to %s, got %s", maxSessionTimeout, d)
		}
	}
}

type KafkaConfig struct {
	Brokers           []string `mapstructure:"brokers"`
	Partitions        int      `mapstructure:"partitions"`
	ReplicationFactor int      `mapstructure:"replicationFactor"`
	// Retention is retention.ms of the batches, retry and error topics when
	// they are created (the dead-letter topic keeps events forever); -1 (or
	// any negative duration) is unlimited.
	Retention time.Duration `mapstructure:"retention"`
	Topics    TopicConfig   `mapstructure:"topics"`
}

type TopicConfig struct {
	Batches string `mapstructure:"batches"`
	Retry   string `mapstructure:"retry"`
	Error   string `mapstructure:"error"`
	Dead    string `mapstructure:"dead"`
	// Redemptions carries every redemption and rollback (outbox events).
	Redemptions string `mapstructure:"redemptions"`
}

type CodesConfig struct {
	Secret string `mapstructure:"secret"`
	// PreviousSecrets are keys rotated out (env only,
	// PROMOCODES_CODES_PREVIOUSSECRETS, comma-separated): generators keep
	// generating the promotions created under them. The API uses only Secret.
	PreviousSecrets []string `mapstructure:"previousSecrets"`
	MaxDensity      float64  `mapstructure:"maxDensity"`
}

type APIConfig struct {
	BatchCodeCount int64 `mapstructure:"batchCodeCount"`
	MaxCodeCount   int64 `mapstructure:"maxCodeCount"`
	MaxBodyBytes   int64 `mapstructure:"maxBodyBytes"`
	// DB is the API's database session limits.
	DB DBSession `mapstructure:"db"`
}

type GeneratorConfig struct {
	Workers     int    `mapstructure:"workers"`
	ChunkSize   int    `mapstructure:"chunkSize"`
	MaxAttempts int    `mapstructure:"maxAttempts"`
	GroupID     string `mapstructure:"groupId"`
	// DB is the generator's database session limits.
	DB DBSession `mapstructure:"db"`
}

type ShovelConfig struct {
	Interval   time.Duration `mapstructure:"interval"`
	MaxRetries int           `mapstructure:"maxRetries"`
	GroupID    string        `mapstructure:"groupId"`
	// RetryBackoff is the minimum age of a failed event before its first
	// move to retry, doubled for each further retry up to RetryBackoffMax.
	RetryBackoff    time.Duration `mapstructure:"retryBackoff"`
	RetryBackoffMax time.Duration `mapstructure:"retryBackoffMax"`
}

// RedeemConfig tunes validation and redemption (package redemption).
type RedeemConfig struct {
	// GuessLimit failed look-ups (code_not_found, invalid_code) per client
	// address in any GuessWindow, then 429; GuessLimitPerToken the same per
	// bearer token; -1 disables a limit. GuessKeys bounds the addresses and
	// tokens the limiter remembers (its memory).
	GuessLimit         int           `mapstructure:"guessLimit"`
	GuessLimitPerToken int           `mapstructure:"guessLimitPerToken"`
	GuessWindow        time.Duration `mapstructure:"guessWindow"`
	GuessKeys          int           `mapstructure:"guessKeys"`
	MaxMetadataBytes   int           `mapstructure:"maxMetadataBytes"`
	// CatalogRefresh is how often the API reads new promotions' formats.
	CatalogRefresh time.Duration `mapstructure:"catalogRefresh"`
	// ReservationTTL is a reservation's time to live when the request names
	// none; MaxReservationTTL bounds the one it names.
	ReservationTTL    time.Duration `mapstructure:"reservationTTL"`
	MaxReservationTTL time.Duration `mapstructure:"maxReservationTTL"`
	// ReservationRetention is how long an ended reservation is kept before
	// the sweeper deletes it (its confirmation stays idempotent that long).
	ReservationRetention time.Duration `mapstructure:"reservationRetention"`
}

type DevConfig struct {
	DataDir string `mapstructure:"dataDir"`
}

// Defaults returns the built-in defaults: a production-shaped configuration
// that still needs a DSN, a secret and tokens.
func Defaults() Config {
	return Config{
		Env:  "production",
		Log:  LogConfig{Level: "info", Format: "json"},
		HTTP: HTTPConfig{Addr: ":8080", ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute},
		Auth: AuthConfig{ShopperJWT: ShopperJWTConfig{Algorithms: shopper.DefaultAlgorithms,
			ClockSkew: shopper.DefaultClockSkew, JWKSRefresh: shopper.DefaultJWKSRefresh,
			JWKSMinRefresh: shopper.DefaultJWKSMinRefresh}},
		DB: DBConfig{Driver: "postgres", MaxConns: 8, KeepAlive: 15 * time.Second, TCPUserTimeout: 30 * time.Second},
		Kafka: KafkaConfig{
			Brokers:           []string{"127.0.0.1:9092"},
			Partitions:        8,
			ReplicationFactor: 1,
			Retention:         kafka.DefaultRetention,
			Topics: TopicConfig{Batches: "promotion-code-batches", Retry: "promotion-code-batches-retry",
				Error: "promotion-code-batches-error", Dead: "promotion-code-batches-dead",
				Redemptions: "promotion-code-redemptions"},
		},
		Codes: CodesConfig{MaxDensity: codes.DefaultMaxDensity},
		// The API's statements are short except exports, which stream for as
		// long as their client reads: no statement limit (request deadlines
		// bound the rest from the client side).
		API: APIConfig{BatchCodeCount: 50_000, MaxCodeCount: 100_000_000, MaxBodyBytes: 1 << 20,
			DB: DBSession{LockTimeout: 10 * time.Second, IdleInTransactionTimeout: 10 * time.Second}},
		// A chunk is one short transaction (a 10,000-code COPY takes well
		// under a second). A generator frozen mid-chunk holds its batch's
		// row lock until its session ends: after idleInTransactionTimeout
		// between statements, or, frozen inside the chunk's COPY, once a
		// blocked worker finds the COPY older than statementTimeout.
		Generator: GeneratorConfig{Workers: 2, ChunkSize: 10_000, MaxAttempts: 5, GroupID: "promocodes-generator",
			DB: DBSession{StatementTimeout: 30 * time.Second, LockTimeout: 10 * time.Second, IdleInTransactionTimeout: 30 * time.Second}},
		Shovel: ShovelConfig{Interval: 5 * time.Minute, MaxRetries: 5, GroupID: "promocodes-shovel",
			RetryBackoff: time.Minute, RetryBackoffMax: time.Hour},
		Redeem: RedeemConfig{GuessLimit: 30, GuessLimitPerToken: 1000, GuessKeys: 100_000, GuessWindow: time.Minute, MaxMetadataBytes: 1024, CatalogRefresh: 5 * time.Second,
			ReservationTTL: 15 * time.Minute, MaxReservationTTL: time.Hour, ReservationRetention: 24 * time.Hour},
		Dev: DevConfig{DataDir: "data"},
	}
}

// Resolve fills in what follows from other keys, so that every command
// given the same file and data dir as `dev` opens the same things: in dev
// with SQLite and no db.dsn, the database is <dev.dataDir>/promocodes.db.
func (c Config) Resolve() Config {
	if c.IsDev() && c.DB.Driver == "sqlite" && c.DB.DSN == "" {
		c.DB.DSN = filepath.Join(c.Dev.DataDir, "promocodes.db")
	}
	return c
}

// IsDev reports whether the configuration is for development.
func (c Config) IsDev() bool { return c.Env == "dev" }

// Validate checks every key a command may use and names the key at fault.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Env {
	case "dev", "production":
	default:
		bad("env", "must be dev or production, got %q", c.Env)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "console", "json":
	default:
		bad("log.format", "must be console or json, got %q", c.Log.Format)
	}
	switch c.DB.Driver {
	case "sqlite", "postgres", "sqlserver":
	default:
		bad("db.driver", "must be sqlite, postgres or sqlserver, got %q", c.DB.Driver)
	}
	if c.DB.DSN == "" && !(c.IsDev() && c.DB.Driver == "sqlite") {
		bad("db.dsn", "must be set (PROMOCODES_DB_DSN)")
	}
	if c.HTTP.ReadTimeout < time.Second {
		bad("http.readTimeout", "must be at least 1s, got %s", c.HTTP.ReadTimeout)
	}
	if c.HTTP.IdleTimeout < time.Second {
		bad("http.idleTimeout", "must be at least 1s, got %s", c.HTTP.IdleTimeout)
	}
	if c.DB.MaxConns < 1 {
		bad("db.maxConns", "must be at least 1, got %d", c.DB.MaxConns)
	}
	if c.DB.KeepAlive != 0 && c.DB.KeepAlive < time.Second {
		bad("db.keepAlive", "must be 0 (15s) or at least 1s, got %s", c.DB.KeepAlive)
	}
	if c.DB.TCPUserTimeout != 0 && (c.DB.TCPUserTimeout < time.Second || c.DB.TCPUserTimeout > maxSessionTimeout) {
		bad("db.tcpUserTimeout", "must be 0 (the system's default) or from 1s to %s, got %s", maxSessionTimeout, c.DB.TCPUserTimeout)
	}
	c.API.DB.validate("api", bad)
	c.Generator.DB.validate("generator", bad)
	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers", "must list at least one broker (PROMOCODES_KAFKA_BROKERS=host:port,...)")
	}
	for _, b := range c.Kafka.Brokers {
		if !strings.Contains(b, ":") {
			bad("kafka.brokers", "%q is not host:port", b)
		}
	}
	if c.Kafka.Partitions < 1 {
		bad("kafka.partitions", "must be at least 1, got %d", c.Kafka.Partitions)
	}
	if c.Kafka.Retention > 0 && c.Kafka.Retention < time.Hour {
		bad("kafka.retention", "must be at least 1h (or negative for unlimited), got %s: events must outlive outages", c.Kafka.Retention)
	}
	if c.Kafka.ReplicationFactor < 1 {
		bad("kafka.replicationFactor", "must be at least 1, got %d", c.Kafka.ReplicationFactor)
	}
	t := c.Kafka.Topics
	seen := map[string]string{}
	for key, name := range map[string]string{"batches": t.Batches, "retry": t.Retry, "error": t.Error, "dead": t.Dead,
		"redemptions": t.Redemptions} {
		if name == "" {
			bad("kafka.topics."+key, "must be set")
			continue
		}
		if other, dup := seen[name]; dup {
			bad("kafka.topics."+key, "%q is also kafka.topics.%s", name, other)
		}
		seen[name] = key
	}
	if len(c.Codes.Secret) < codes.MinSecretLen {
		bad("codes.secret", "must be at least %d bytes (PROMOCODES_CODES_SECRET); got %d", codes.MinSecretLen, len(c.Codes.Secret))
	}
	for i, k := range c.Codes.PreviousSecrets {
		if len(k) < codes.MinSecretLen {
			bad("codes.previousSecrets", "entry %d must be at least %d bytes, got %d", i, codes.MinSecretLen, len(k))
		}
	}
	if c.Codes.MaxDensity <= 0 || c.Codes.MaxDensity > 1 {
		bad("codes.maxDensity", "must be in (0, 1], got %g", c.Codes.MaxDensity)
	}
	if c.API.BatchCodeCount < 1 || c.API.BatchCodeCount > 10_000_000 {
		bad("api.batchCodeCount", "must be in 1..10,000,000, got %d", c.API.BatchCodeCount)
	}
	if c.API.MaxCodeCount < 1 {
		bad("api.maxCodeCount", "must be positive, got %d", c.API.MaxCodeCount)
	}
	if c.API.MaxBodyBytes < 1024 {
		bad("api.maxBodyBytes", "must be at least 1024, got %d", c.API.MaxBodyBytes)
	}
	if !c.IsDev() && len(c.Auth.AdminTokens) == 0 {
		bad("auth.adminTokens", "production refuses to start without admin tokens (PROMOCODES_AUTH_ADMINTOKENS)")
	}
	for _, tok := range append(append([]string{}, c.Auth.AdminTokens...), c.Auth.RedeemTokens...) {
		if len(tok) < 16 {
			bad("auth", "tokens must be at least 16 characters")
			break
		}
	}
	if sj := c.Auth.ShopperJWT.verifierConfig(); sj.Enabled() {
		// A half-configured block is refused in every environment: a
		// missing audience or issuer would trust tokens meant for others.
		if err := sj.Validate(); err != nil {
			errs = append(errs, unwrapJoined(err)...)
		}
		if sj.JWKSMinRefresh < time.Second {
			bad("auth.shopperJWT.jwksMinRefresh", "must be at least 1s, got %s", sj.JWKSMinRefresh)
		}
	}
	if c.Generator.Workers < 1 || c.Generator.Workers > 256 {
		bad("generator.workers", "must be in 1..256, got %d", c.Generator.Workers)
	}
	if c.Generator.ChunkSize < 1 || c.Generator.ChunkSize > 1_000_000 {
		bad("generator.chunkSize", "must be in 1..1,000,000, got %d", c.Generator.ChunkSize)
	}
	if c.Generator.MaxAttempts < 1 {
		bad("generator.maxAttempts", "must be at least 1, got %d", c.Generator.MaxAttempts)
	}
	if c.Generator.GroupID == "" {
		bad("generator.groupId", "must be set")
	}
	if c.Shovel.Interval < time.Second {
		bad("shovel.interval", "must be at least 1s, got %s", c.Shovel.Interval)
	}
	if c.Shovel.MaxRetries < 0 {
		bad("shovel.maxRetries", "must not be negative, got %d", c.Shovel.MaxRetries)
	}
	if c.Shovel.RetryBackoff < 0 {
		bad("shovel.retryBackoff", "must not be negative, got %s", c.Shovel.RetryBackoff)
	}
	if c.Shovel.RetryBackoffMax < c.Shovel.RetryBackoff {
		bad("shovel.retryBackoffMax", "must be at least shovel.retryBackoff (%s), got %s", c.Shovel.RetryBackoff, c.Shovel.RetryBackoffMax)
	}
	if c.Shovel.GroupID == "" {
		bad("shovel.groupId", "must be set")
	} else if c.Shovel.GroupID == c.Generator.GroupID {
		bad("shovel.groupId", "must differ from generator.groupId: the shovel commits without joining its group")
	}
	if c.Redeem.GuessLimit < -1 || c.Redeem.GuessLimit == 0 || c.Redeem.GuessLimit == 1 {
		bad("redeem.guessLimit", "must be at least 2, or -1 to disable the limit; got %d", c.Redeem.GuessLimit)
	}
	if c.Redeem.GuessLimitPerToken < -1 || c.Redeem.GuessLimitPerToken == 0 || c.Redeem.GuessLimitPerToken == 1 {
		bad("redeem.guessLimitPerToken", "must be at least 2, or -1 to disable the limit; got %d", c.Redeem.GuessLimitPerToken)
	}
	if c.Redeem.GuessKeys < 1 || c.Redeem.GuessKeys > 10_000_000 {
		bad("redeem.guessKeys", "must be in 1..10,000,000, got %d", c.Redeem.GuessKeys)
	}
	if err := (api.Config{TrustedProxies: c.HTTP.TrustedProxies, ClientAddressHeaders: c.HTTP.ClientAddressHeaders}).ValidateClientAddress(); err != nil {
		errs = append(errs, err) // names its key
	}
	if c.Redeem.GuessWindow < time.Second {
		bad("redeem.guessWindow", "must be at least 1s, got %s", c.Redeem.GuessWindow)
	}
	if c.Redeem.MaxMetadataBytes < 2 || c.Redeem.MaxMetadataBytes > 64<<10 {
		bad("redeem.maxMetadataBytes", "must be in 2..65536, got %d", c.Redeem.MaxMetadataBytes)
	}
	if c.Redeem.CatalogRefresh < 100*time.Millisecond {
		bad("redeem.catalogRefresh", "must be at least 100ms, got %s", c.Redeem.CatalogRefresh)
	}
	if c.Redeem.MaxReservationTTL < time.Second {
		bad("redeem.maxReservationTTL", "must be at least 1s, got %s", c.Redeem.MaxReservationTTL)
	}
	if c.Redeem.ReservationTTL < time.Second || c.Redeem.ReservationTTL > c.Redeem.MaxReservationTTL {
		bad("redeem.reservationTTL", "must be from 1s to redeem.maxReservationTTL (%s), got %s",
			c.Redeem.MaxReservationTTL, c.Redeem.ReservationTTL)
	}
	if c.Redeem.ReservationRetention < time.Minute {
		bad("redeem.reservationRetention", "must be at least 1m, got %s", c.Redeem.ReservationRetention)
	}
	return errors.Join(errs...)
}

// Sections names the configuration sections a command uses, for
// ValidateFor: a deployable is asked only for what it uses. The shovel needs
// the database only to show parked batches in the status view, so it uses
// db when db.dsn is set and runs without it otherwise.
func Sections(command string, c Config) []string {
	switch command {
	case "api":
		return []string{"http", "auth", "db", "kafka", "codes", "api"}
	case "generator":
		return []string{"http", "db", "kafka", "codes", "generator"}
	case "shovel":
		if c.DB.DSN != "" {
			return []string{"http", "db", "kafka", "shovel"}
		}
		return []string{"http", "kafka", "shovel"}
	case "migrate":
		return []string{"db"}
	default: // dev: everything
		return []string{"http", "auth", "db", "kafka", "codes", "api", "generator", "shovel", "dev"}
	}
}

// ValidateFor checks only the keys under the given sections (plus env and
// log), for commands that need part of the configuration: `migrate` needs
// "db", the SRE tools need "kafka" (and "db" for reconcile).
func (c Config) ValidateFor(sections ...string) error {
	full := c.Validate()
	if full == nil {
		return nil
	}
	var keep []error
	for _, e := range unwrapJoined(full) {
		msg := e.Error()
		ok := strings.HasPrefix(msg, "log.") || strings.HasPrefix(msg, "env:")
		for _, s := range sections {
			ok = ok || strings.HasPrefix(msg, s+".") || strings.HasPrefix(msg, s+":")
		}
		if ok {
			keep = append(keep, e)
		}
	}
	return errors.Join(keep...)
}

func unwrapJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
