// Package postgres is the PostgreSQL store of promocodes (pgx/v5, pgxpool).
// It owns the schema (versioned goose migrations embedded from migrations/)
// and every statement against it; all SQL is in queries.go. The algorithms
// are the shared core's (pkg/store/internal/sqlstore), run through pgx by
// the executor here. It is the only package that imports pgx.
//
// A *Store is safe for concurrent use by many goroutines and, through the
// database, by many processes: every multi-statement operation is one
// transaction at READ COMMITTED whose correctness rests on row locks and
// conditional updates (see docs/store.md).
package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/crc32"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jackc/puddle/v2"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
	"github.com/promocodes/promocodes/pkg/store/internal/tcpdial"
)

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
	// Session limits the server enforces on every connection (startup
	// parameters statement_timeout, lock_timeout (SQLSTATE 55P03, see
	// LockTimeout) and idle_in_transaction_session_timeout, which frees the
	// row locks of a client that vanished or froze mid-transaction); zero
	// leaves the server's or role's setting. Millisecond precision.
	StatementTimeout, LockTimeout, IdleInTransactionTimeout time.Duration
	// TCP settings of each connection (tcpdial.Config), on the client's
	// socket and the server's end (tcp_keepalives_idle/interval/count,
	// tcp_user_timeout), so that the server notices a vanished client too.
	KeepAlive, TCPUserTimeout time.Duration
	// ApplicationName is shown in pg_stat_activity (default "promocodes"); an
	// application_name in the DSN wins.
	ApplicationName string
	// Clock is this process's clock for the times the store stamps itself
	// (created_at, the totals' updated_at); nil is time.Now. Leases and
	// expiries compared across processes never use it: they take the
	// database's clock. Tests set it to play a host whose clock is off.
	Clock func() time.Time
	// RedeemGroup bounds how many concurrent redemptions of this process
	// share one statement, one transaction and its commit (group commit, see
	// Store.Redeem); default DefaultRedeemGroup, -1 redeems each in a
	// statement of its own. RedeemFlights is how many such groups are
	// written at once, each on a connection of the pool (default
	// DefaultRedeemFlights; at most MaxConns).
	RedeemGroup, RedeemFlights int
}

// DefaultRedeemGroup is Config.RedeemGroup's default.
const DefaultRedeemGroup = 64

// DefaultRedeemFlights is Config.RedeemFlights's default: about the
// database server's cores (docs/store.md, "Group commit on PostgreSQL").
const DefaultRedeemFlights = 2

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate checks the configuration, naming each field by its key
// ("maxConns"), which the caller places in its own configuration.
func (c Config) Validate() error {
	var errs configkey.List
	errs.Set(map[string]string{"dsn": c.DSN})
	if c.MaxConns < 0 {
		errs.Add("maxConns", "must be at least 1 (0: %d), got %d", DefaultMaxConns, c.MaxConns)
	}
	if c.RedeemGroup < -1 {
		errs.Add("redeemGroup", "must be -1 (off), 0 (the default, %d) or more, got %d", DefaultRedeemGroup, c.RedeemGroup)
	}
	if conns := cmp.Or(c.MaxConns, DefaultMaxConns); conns > 0 && (c.RedeemFlights < 0 || c.RedeemFlights > int(conns)) {
		errs.Add("redeemFlights", "must be from 0 (the default, %d) to maxConns (%d), got %d", DefaultRedeemFlights,
			conns, c.RedeemFlights)
	}
	if c.Schema != "" && !schemaName.MatchString(c.Schema) {
		errs.Add("schema", "must match %s, got %q", schemaName, c.Schema)
	}
	sqlstore.CheckMillis(&errs, "idleInTransactionTimeout", c.IdleInTransactionTimeout, "the server's setting")
	sqlstore.CheckMillis(&errs, "lockTimeout", c.LockTimeout, "the server's setting")
	sqlstore.CheckMillis(&errs, "statementTimeout", c.StatementTimeout, "the server's setting")
	errs.Join(c.tcp().Validate())
	return errs.Err()
}

func (c Config) tcp() tcpdial.Config {
	return tcpdial.Config{KeepAlive: c.KeepAlive, UserTimeout: c.TCPUserTimeout}
}

// sessionParams are the startup parameters that carry c's session limits
// and the server's end of its TCP settings.
func (c Config) sessionParams() map[string]string {
	p := map[string]string{}
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	for name, d := range map[string]time.Duration{"statement_timeout": c.StatementTimeout, "lock_timeout": c.LockTimeout,
		"idle_in_transaction_session_timeout": c.IdleInTransactionTimeout, "tcp_user_timeout": c.TCPUserTimeout} {
		if d > 0 {
			p[name] = ms(d)
		}
	}
	if k := c.KeepAlive; k > 0 {
		secs := strconv.FormatInt(max(1, int64(k/time.Second)), 10)
		p["tcp_keepalives_idle"], p["tcp_keepalives_interval"], p["tcp_keepalives_count"] = secs, secs, "3"
	}
	return p
}

// Store is the PostgreSQL store.
type Store struct {
	*sqlstore.Core[pgxTx]
	pool             *pgxpool.Pool
	statementTimeout time.Duration
	// group sends concurrent redemptions as one statement (nil: off).
	group *sqlstore.RedeemGroup[pgxTx]
}

// Open connects (and pings) with cfg, creating cfg.Schema if needed. It does
// not migrate: call Migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) { return open(ctx, cfg, nil) }

// open is Open with a hook for tests that trace the statements.
func open(ctx context.Context, cfg Config, tune func(*pgxpool.Config)) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's parse errors quote the connection string (password redacted,
		// but still): say what is wrong without it.
		return nil, errors.New("postgres: cannot parse DSN (expected postgres://user@host:port/db?... or key=value pairs)")
	}
	pcfg.MaxConns = cmp.Or(cfg.MaxConns, DefaultMaxConns)
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
	if tune != nil {
		tune(pcfg)
	}
	// The migrations run through a database/sql handle on the pool, under a
	// session advisory lock keyed by schema.
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(crc32.ChecksumIEEE([]byte("promocodes goose "+cfg.Schema)))),
		lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, fmt.Errorf("postgres: migration lock: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", err)
	}
	s := &Store{pool: pool, statementTimeout: cfg.StatementTimeout}
	db := pgxPool{pgxExec{pool}, pool}
	s.Core = sqlstore.New(dialect, db, db, sqlstore.Migrations{Name: "postgres", Dialect: goose.DialectPostgres,
		FS: migrationFiles, Locker: locker, DB: func() (*sql.DB, func()) {
			db := stdlib.OpenDBFromPool(pool)
			return db, func() { db.Close() }
		}}, cfg.Clock)
	if cfg.RedeemGroup != -1 {
		flights := min(cmp.Or(cfg.RedeemFlights, DefaultRedeemFlights), int(pcfg.MaxConns))
		s.group = sqlstore.NewRedeemGroupOnce(s.Core, cmp.Or(cfg.RedeemGroup, DefaultRedeemGroup), flights)
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

//go:embed migrations/*.sql
var migrationFiles embed.FS

// dialect is PostgreSQL for the shared core: pgx underneath, COPY for chunks,
// arrays where a statement takes many rows.
var dialect = sqlstore.Dialect[pgxTx]{
	Statements:      statements,
	Time:            sqlstore.UTC,
	UniqueViolation: func(err error) bool { return sqlState(err) == "23505" },
	// A deadlock or serialization failure: the transaction was rolled back
	// and may simply be run again.
	Retryable: func(err error) bool { code := sqlState(err); return code == "40P01" || code == "40001" },
	Bulk:      sqlstore.Bulk[pgxTx]{Copy: copyChunk, InsertChunk: insertChunk, InsertCodes: insertCodes},
	MarkPublished: func(refs []promo.BatchRef) (string, []any, int) {
		ids, nos := make([]int64, len(refs)), make([]int32, len(refs))
		for i, r := range refs {
			ids[i], nos[i] = r.PromotionID, int32(r.BatchNo)
		}
		return qMarkPublished, []any{ids, nos}, len(refs)
	},
	Arrays:      true, // AllRows: nil, LIMIT NULL
	Lease:       func(d time.Duration) any { return d.Microseconds() },
	Unavailable: unavailable,
	LockTimeout: func(err error) bool { return sqlState(err) == "55P03" },
	// redeem_code raises PC001, writing nothing, for a promotion with
	// eligibility rules (migration 00013): the core redeems on its
	// statement path instead.
	StatementPath: func(err error) bool { return sqlState(err) == "PC001" },
	// An error with a SQLSTATE is the server's answer: the statement (its
	// autocommit transaction) was rolled back.
	ServerError: func(err error) bool { return sqlState(err) != "" },
}

// sqlState is err's SQLSTATE ("" for none).
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// unavailable reports the answers that mean not now rather than not this:
// the server shutting down, starting or out of connections, a session limit
// that ended the statement or session, pgx's closed connection or pool.
func unavailable(err error) bool {
	switch code := sqlState(err); code {
	case "57P01", "57P02", "57P03", "53300", "57014", "55P03", "25P03":
		return true
	case "":
		var ce *pgconn.ConnectError
		return errors.As(err, &ce) || errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, puddle.ErrClosedPool)
	default:
		return strings.HasPrefix(code, "08")
	}
}

// EndFrozenCopies ends the sessions (of this database and user) that have
// been in a COPY FROM STDIN longer than Config.StatementTimeout while waiting
// for their client's data, and returns how many: no session limit ends them
// (docs/store.md, "A generator frozen mid-chunk"). Without a statement
// timeout it ends nothing.
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

// pgxQuerier is what a pool and a transaction have in common.
type pgxQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgxExec is the core's executor seam (sqlstore.Querier) over pgx: the
// statements run natively, with pgx's statement cache and binary formats.
type pgxExec struct{ q pgxQuerier }

func (e pgxExec) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := e.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (e pgxExec) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := e.q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (e pgxExec) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return e.q.QueryRow(ctx, query, args...)
}

// pgxPool is the pool as a sqlstore.DB.
type pgxPool struct {
	pgxExec
	pool *pgxpool.Pool
}

func (p pgxPool) Ping(ctx context.Context) error { return p.pool.Ping(ctx) }

func (p pgxPool) Begin(ctx context.Context) (pgxTx, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return pgxTx{}, err
	}
	return pgxTx{pgxExec{tx}, tx}, nil
}

// pgxTx is a transaction; the bulk path uses tx for COPY.
type pgxTx struct {
	pgxExec
	tx pgx.Tx
}

func (t pgxTx) Commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t pgxTx) Rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }

// PoolStats reports the connection pool in database/sql's terms: WaitCount
// and WaitDuration are the acquires that found no idle connection and the
// time they waited.
func (s *Store) PoolStats() sql.DBStats {
	st := s.pool.Stat()
	return sql.DBStats{MaxOpenConnections: int(st.MaxConns()), OpenConnections: int(st.TotalConns()),
		InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()), WaitCount: st.EmptyAcquireCount(),
		WaitDuration: st.EmptyAcquireWaitTime()}
}
