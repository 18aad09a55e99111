// Package postgres is the PostgreSQL store of promocodes (pgx/v5, pgxpool).
// It owns the schema (versioned goose migrations embedded from migrations/)
// and every statement against it; all SQL is in queries.go. It is the only
// package that imports pgx.
//
// A *Store is safe for concurrent use by many goroutines and, through the
// database, by many processes: every multi-statement operation is one
// transaction at READ COMMITTED whose correctness rests on row locks and
// conditional updates (see docs/store.md).
package postgres

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/promocodes/promocodes/pkg/store/internal/schema"
	"github.com/promocodes/promocodes/pkg/store/internal/tcpdial"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DefaultMaxConns is the pool size when Config.MaxConns is 0.
const DefaultMaxConns = 4

// Config configures a Store.
type Config struct {
	// DSN is a libpq-style URL or key=value string. It is never logged or
	// put into errors.
	DSN string
	// MaxConns bounds the connection pool (default 4). Migrate needs one
	// connection on its own.
	MaxConns int32
	// Schema, when set, is created if absent and becomes the search_path of
	// every connection: for tests running in parallel and for tenants
	// sharing a database.
	Schema string
	// Session limits the server enforces on every connection of the pool
	// (startup parameters; zero leaves the server's or role's setting):
	// StatementTimeout cancels a statement that runs longer;
	// LockTimeout fails a statement that waits longer for a lock (SQLSTATE
	// 55P03, see LockTimeout); IdleInTransactionTimeout ends a session that
	// sits in an open transaction without a statement for longer, so a
	// client that vanished or froze mid-transaction (a cut connection, a
	// SIGSTOPped process) releases its row locks. Millisecond precision.
	StatementTimeout, LockTimeout, IdleInTransactionTimeout time.Duration
	// TCP settings of each connection, applied on both ends: the client's
	// socket, and the server's through tcp_keepalives_idle/interval/count
	// and tcp_user_timeout, so that the server also notices a client host
	// that vanished. KeepAlive is the idle time before the first probe and
	// between probes (3 unanswered close the connection; zero: 15 s);
	// TCPUserTimeout closes a connection whose sent data stays
	// unacknowledged that long (Linux; zero: the system's default).
	KeepAlive, TCPUserTimeout time.Duration
	// ApplicationName is shown in pg_stat_activity (default "promocodes"); an
	// application_name in the DSN wins.
	ApplicationName string
	// Clock is this process's clock for the times the store stamps itself
	// (created_at, the totals' updated_at); nil is time.Now. Leases and
	// expiries compared across processes never use it: they take the
	// database's clock. Tests set it to play a host whose clock is off.
	Clock func() time.Time
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.DSN == "" {
		return errors.New("postgres: DSN is required")
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("postgres: MaxConns %d is negative", c.MaxConns)
	}
	if c.Schema != "" && !schemaName.MatchString(c.Schema) {
		return fmt.Errorf("postgres: schema %q must match %s", c.Schema, schemaName)
	}
	for name, d := range map[string]time.Duration{"StatementTimeout": c.StatementTimeout, "LockTimeout": c.LockTimeout,
		"IdleInTransactionTimeout": c.IdleInTransactionTimeout} {
		if d < 0 || (d > 0 && d < time.Millisecond) || d > maxTimeout {
			return fmt.Errorf("postgres: %s %s must be 0 (the server's setting) or from 1ms to %s", name, d, maxTimeout)
		}
	}
	if err := c.tcp().Validate(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

func (c Config) tcp() tcpdial.Config {
	return tcpdial.Config{KeepAlive: c.KeepAlive, UserTimeout: c.TCPUserTimeout}
}

// maxTimeout is the largest session timeout PostgreSQL takes (INT_MAX ms).
const maxTimeout = (1<<31 - 1) * time.Millisecond

// sessionParams are the startup parameters that carry c's session limits
// and the server's end of its TCP settings.
func (c Config) sessionParams() map[string]string {
	p := map[string]string{}
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	for name, d := range map[string]time.Duration{"statement_timeout": c.StatementTimeout, "lock_timeout": c.LockTimeout,
		"idle_in_transaction_session_timeout": c.IdleInTransactionTimeout} {
		if d > 0 {
			p[name] = ms(d)
		}
	}
	if k := c.KeepAlive; k > 0 {
		secs := strconv.FormatInt(max(1, int64(k/time.Second)), 10)
		p["tcp_keepalives_idle"], p["tcp_keepalives_interval"], p["tcp_keepalives_count"] = secs, secs, "3"
	}
	if u := c.TCPUserTimeout; u > 0 {
		p["tcp_user_timeout"] = ms(u)
	}
	return p
}

// Store is the PostgreSQL store.
type Store struct {
	pool             *pgxpool.Pool
	schema           string
	clock            func() time.Time
	statementTimeout time.Duration
}

// now is this process's clock (Config.Clock).
func (s *Store) now() time.Time { return s.clock() }

// Open connects (and pings) with cfg, creating cfg.Schema if needed. It does
// not migrate: call Migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's parse errors quote the connection string (password redacted,
		// but still): say what is wrong without it.
		return nil, errors.New("postgres: cannot parse DSN (expected postgres://user@host:port/db?... or key=value pairs)")
	}
	pcfg.MaxConns = cfg.MaxConns
	if pcfg.MaxConns == 0 {
		pcfg.MaxConns = DefaultMaxConns
	}
	if cfg.Schema != "" {
		pcfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	}
	for k, v := range cfg.sessionParams() {
		pcfg.ConnConfig.RuntimeParams[k] = v
	}
	if _, set := pcfg.ConnConfig.RuntimeParams["application_name"]; !set {
		pcfg.ConnConfig.RuntimeParams["application_name"] = cmp.Or(cfg.ApplicationName, "promocodes")
	}
	dialer := cfg.tcp().Dialer()
	dialer.Timeout = pcfg.ConnConfig.ConnectTimeout // the DSN's connect_timeout, as pgx's own dialer has it
	pcfg.ConnConfig.DialFunc = dialer.DialContext
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", err)
	}
	s := &Store{pool: pool, schema: cfg.Schema, clock: cfg.Clock, statementTimeout: cfg.StatementTimeout}
	if s.clock == nil {
		s.clock = time.Now
	}
	if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if cfg.Schema != "" {
		if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{cfg.Schema}.Sanitize()); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: create schema %s: %w", cfg.Schema, err)
		}
	}
	return s, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// SchemaPending reports whether migrations this binary knows are not applied
// yet (an unmigrated database counts as pending), for the readiness probe.
// It takes no migration lock and changes nothing.
func (s *Store) SchemaPending(ctx context.Context) (bool, error) {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return false, fmt.Errorf("postgres: schema version: %w", err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return false, fmt.Errorf("postgres: schema version: %w", err)
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return true, fmt.Errorf("postgres: schema version: %w", err)
	}
	return pending, nil
}

// Migrate applies the pending migrations. It is idempotent and safe to run
// from several processes at once: a session advisory lock, keyed by schema,
// serialises them.
func (s *Store) Migrate(ctx context.Context) error {
	_, _, err := s.migrate(ctx, 0)
	return err
}

// MigrateReport is Migrate, saying what it did: the file names of the
// migrations it applied, in order, and the schema version the database is at.
func (s *Store) MigrateReport(ctx context.Context) (applied []string, version int64, err error) {
	return s.migrate(ctx, 0)
}

// migrate applies the migrations up to version, or all of them for 0 (tests
// build old schemas with it).
func (s *Store) migrate(ctx context.Context, version int64) ([]string, int64, error) {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: migrate: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(crc32.ChecksumIEEE([]byte("promocodes goose "+s.schema)))),
		lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: migrate: %w", err)
	}
	applied, at, err := schema.Up(ctx, p, version)
	if err != nil {
		return applied, 0, fmt.Errorf("postgres: migrate: %w", err)
	}
	return applied, at, nil
}

// Now reads the database's clock, the one leases and expiries are taken
// from (clock_timestamp(): the time of the call, not of the transaction).
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.pool.QueryRow(ctx, qNow).Scan(&t); err != nil {
		return t, fmt.Errorf("postgres: read the database clock: %w", err)
	}
	return t.UTC(), nil
}

// LockTimeout reports whether err is a lock wait that ran out of
// Config.LockTimeout (SQLSTATE 55P03): whoever holds the lock is still at
// it, or frozen until the server's session limits end it.
func (s *Store) LockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// EndFrozenCopies ends the sessions (of this database and user) that have
// been in a COPY FROM STDIN longer than Config.StatementTimeout while waiting
// for their client's data, and returns how many. statement_timeout does not
// cancel a COPY that waits on its client, nor does any other session limit:
// a generator frozen mid-chunk (SIGSTOP, a frozen VM) would hold its batch's
// row lock for as long as it stays frozen. A worker blocked behind such a
// lock calls this; without a statement timeout it ends nothing.
func (s *Store) EndFrozenCopies(ctx context.Context) (int, error) {
	if s.statementTimeout <= 0 {
		return 0, nil
	}
	var n int
	if err := s.pool.QueryRow(ctx, qEndFrozenCopies, s.statementTimeout.Milliseconds()).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: end frozen COPY sessions: %w", err)
	}
	return n, nil
}

// retryable reports whether err is a deadlock or serialization failure: the
// transaction was rolled back and may simply be run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
