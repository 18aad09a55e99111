package app

import (
	"errors"
	"path/filepath"
	"strings"
	"time"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/shopper"
	"github.com/promocodes/promocodes/redemption"
)

// Config is the whole configuration, as cmd/promocodes reads it from
// configs/*.yaml, PROMOCODES_<SECTION>_<KEY> and flags. The mapstructure tags
// are the stable config keys (README.md, "Configuration"; configs/).
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
	// RedeemFlights is how many groups of concurrent redemptions a process
	// writes at once on PostgreSQL (group commit; 0: 2, about the database
	// server's cores is right; at most maxConns). See docs/store.md.
	RedeemFlights int `mapstructure:"redeemFlights"`
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
	// IdempotencyRetention is how long an Idempotency-Key's record is kept
	// before the sweeper deletes it (-1: forever).
	IdempotencyRetention time.Duration `mapstructure:"idempotencyRetention"`
	// Admission is admission control in front of the database for the
	// shopper endpoints.
	Admission AdmissionConfig `mapstructure:"admission"`
}

// AdmissionConfig is redeem.admission: at most Slots shopper database
// operations (validate, redeem, reserve, confirm, release, rollback, issue;
// a combined batch of one hot code's redemptions is one) run at once and the
// rest wait in arrival order; at most MaxQueue requests wait, none longer
// than MaxWait, and past either bound a request is answered 503 with
// Retry-After (docs/redemption.md, "When the database is busy").
type AdmissionConfig struct {
	// Slots 0 is 128 on SQLite and PostgreSQL, whose stores group
	// concurrent redemptions themselves (group commit: a slot is a request,
	// not a connection), else the pool's size, db.maxConns; -1 turns
	// admission control off.
	Slots    int           `mapstructure:"slots"`
	MaxQueue int           `mapstructure:"maxQueue"`
	MaxWait  time.Duration `mapstructure:"maxWait"`
}

// groupAdmissionSlots is redeem.admission.slots' default on a store that
// groups concurrent redemptions (SQLite, PostgreSQL).
const groupAdmissionSlots = 128

// slots is the admission slots the configuration means.
func (c Config) admissionSlots() int {
	switch {
	case c.Redeem.Admission.Slots != 0:
		return c.Redeem.Admission.Slots
	case c.DB.Driver == "sqlite" || c.DB.Driver == "postgres":
		return groupAdmissionSlots
	default:
		return max(1, c.DB.MaxConns)
	}
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
			ReservationTTL: 15 * time.Minute, MaxReservationTTL: time.Hour, ReservationRetention: 24 * time.Hour,
			IdempotencyRetention: redemption.DefaultIdempotencyRetention,
			Admission:            AdmissionConfig{MaxQueue: redemption.DefaultAdmissionQueue, MaxWait: redemption.DefaultAdmissionWait}},
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
// Each component validates its own Config (api, generator, shovel,
// redemption, kafka; this package's own sections for the process, HTTP and
// the database): Validate builds those Configs as the commands do and places
// their keys in the whole configuration ("workers" is generator.workers,
// the API's "secret" is codes.secret). Two components that read one key
// refuse it alike, and the message is kept once.
func (c Config) Validate() error {
	var errs configkey.List
	errs.Join(c.validateProcess())
	errs.Join(configkey.Prefix("http", c.HTTP.validate()))
	errs.Join(c.validateStore("api.db", c.API.DB))
	errs.Join(c.validateStore("generator.db", c.Generator.DB))
	errs.Join(configkey.Prefix("kafka", c.kafkaConfig("").Validate()))
	errs.Join(configkey.Prefix("kafka.topics", kafka.ValidateTopics(c.topicNames())))
	errs.Join(configkey.Place(c.apiConfig().Validate(), "api", apiKeys))
	errs.Join(configkey.Place(c.promotionConfig().Validate(), "api", promotionKeys))
	errs.Join(configkey.Place(c.generatorConfig().Validate(), "generator", generatorKeys))
	errs.Join(configkey.Place(c.shovelConfig().Validate(), "shovel", shovelKeys))
	errs.Join(configkey.Prefix("redeem", c.redemptionConfig().Validate()))
	if sj := c.Auth.ShopperJWT.verifierConfig(); sj.Enabled() {
		// A half-configured block is refused in every environment: a
		// missing audience or issuer would trust tokens meant for others.
		errs.Join(configkey.Prefix("auth.shopperJWT", sj.Validate()))
	}
	errs.Join(c.validateGroups())
	if w := c.admissionWait(); w > 0 && w >= c.HTTP.ReadTimeout {
		// The server cancels a request http.readTimeout after it began: a
		// longer wait would end in a cut connection, not a 503.
		errs.Add("redeem.admission.maxWait", "must be less than http.readTimeout (%s), got %s", c.HTTP.ReadTimeout, w)
	}
	return configkey.Unique(errs.Err())
}

// Where the keys of the components' Configs are in the whole configuration,
// when not under the component's own section.
var (
	apiKeys = map[string]string{"adminTokens": "auth.adminTokens", "redeemTokens": "auth.redeemTokens",
		"trustedProxies": "http.trustedProxies", "clientAddressHeaders": "http.clientAddressHeaders",
		"admissionWait": "redeem.admission.maxWait"}
	promotionKeys = map[string]string{"maxDensity": "codes.maxDensity", "secret": "codes.secret"}
	generatorKeys = map[string]string{"errorTopic": "kafka.topics.error", "deadTopic": "kafka.topics.dead",
		"secret": "codes.secret", "previousSecrets": "codes.previousSecrets"}
	shovelKeys = map[string]string{"errorTopic": "kafka.topics.error", "retryTopic": "kafka.topics.retry",
		"deadTopic": "kafka.topics.dead"}
)

// validateProcess checks the keys of the process itself: env and log.
func (c Config) validateProcess() error {
	var errs configkey.List
	if c.Env != "dev" && c.Env != "production" {
		errs.Add("env", "must be dev or production, got %q", c.Env)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs.Add("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "console" && c.Log.Format != "json" {
		errs.Add("log.format", "must be console or json, got %q", c.Log.Format)
	}
	return errs.Err()
}

// validate checks the HTTP server's timeouts (the API checks the trusted
// proxies, which it reads).
func (h HTTPConfig) validate() error {
	var errs configkey.List
	if h.ReadTimeout < time.Second {
		errs.Add("readTimeout", "must be at least 1s, got %s", h.ReadTimeout)
	}
	if h.IdleTimeout < time.Second {
		errs.Add("idleTimeout", "must be at least 1s, got %s", h.IdleTimeout)
	}
	return errs.Err()
}

// validateStore checks the database settings of a deployable whose session
// limits are s, under section ("api.db"): the store of db.driver validates
// the Config the deployable would open (openStore), and its keys are placed
// here. A setting the driver does not use is not checked.
func (c Config) validateStore(section string, s DBSession) error {
	db := c.Resolve().DB // in dev, SQLite's file is the data dir's
	var store interface{ Validate() error }
	switch db.Driver {
	case "sqlite":
		store = sqliteConfig(db, s, nil)
	case "postgres":
		store = postgresConfig(db, s, "", nil)
	case "sqlserver":
		store = sqlserverConfig(db, s, nil)
	default:
		return configkey.Errorf("db.driver", "must be sqlite, postgres or sqlserver, got %q", db.Driver)
	}
	return dsnHint(configkey.Place(store.Validate(), "db", map[string]string{
		"path": "db.dsn", "dsn": "db.dsn", "maxReadConns": "db.maxConns",
		"statementTimeout": section + ".statementTimeout", "lockTimeout": section + ".lockTimeout",
		"busyTimeout": section + ".lockTimeout", "idleInTransactionTimeout": section + ".idleInTransactionTimeout"}))
}

// dsnHint says where an unset db.dsn is usually given: the environment,
// as it holds a password.
func dsnHint(err error) error {
	var out configkey.List
	for _, e := range configkey.Split(err) {
		if ke, ok := e.(*configkey.Error); ok && ke.Key == "db.dsn" && ke.Msg == "must be set" {
			e = configkey.Errorf(ke.Key, "must be set (PROMOCODES_DB_DSN)")
		}
		out = append(out, e)
	}
	return out.Err()
}

// validateGroups checks the consumer groups the wiring hands out. Both
// checks are the app's, not a component's:
//   - generator.groupId is not a field of generator.Config: the generator
//     package never sees it. The app joins the group for the generators
//     (kafka.NewConsumer in run.go, which refuses an empty group only when a
//     generator starts), so the app is where the key can be checked up front.
//     The shovel's own group (shovel.groupId) is checked by shovel's Validate.
//   - the two groups must differ: a rule across two components' keys, which
//     neither component's Config can see (the shovel commits its offsets
//     without joining its group, so it needs a group no generator joins;
//     docs/decisions.md, "The shovel reads by offsets").
func (c Config) validateGroups() error {
	var errs configkey.List
	if c.Generator.GroupID == "" {
		errs.Add("generator.groupId", "must be set")
	} else if c.Shovel.GroupID == c.Generator.GroupID {
		errs.Add("shovel.groupId", "must differ from generator.groupId: the shovel commits without joining its group")
	}
	return errs.Err()
}

// topicNames are the configured topics by their keys under kafka.topics.
func (c Config) topicNames() map[string]string {
	t := c.Kafka.Topics
	return map[string]string{"batches": t.Batches, "retry": t.Retry, "error": t.Error, "dead": t.Dead, "redemptions": t.Redemptions}
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
	for _, e := range configkey.Split(full) {
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
