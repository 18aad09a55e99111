// Package postgres is the PostgreSQL store of promocodes (pgx/v5): its
// migrations and statements, on the shared core (internal/sqlstore, whose
// doc says why it is safe for concurrent use, here at READ COMMITTED).
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
	"github.com/jackc/pgx/v5/pgtype"
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
	// DSN is a libpq URL or key=value string, never logged.
	DSN string
	// MaxConns bounds the pool (default 4; Migrate needs one of its own).
	MaxConns int32
	// Schema, if set, is created if absent and is every connection's
	// search_path (parallel tests, tenants).
	Schema string
	// Session limits (statement_timeout, lock_timeout,
	// idle_in_transaction_session_timeout: frees the locks of a client
	// frozen mid-transaction); zero keeps the server's, in milliseconds.
	StatementTimeout, LockTimeout, IdleInTransactionTimeout time.Duration
	// TCP settings (tcpdial.Config), on both ends of each connection.
	KeepAlive, TCPUserTimeout time.Duration
	// ApplicationName (default "promocodes"; the DSN's wins).
	ApplicationName string
	// Clock stamps created_at and updated_at (nil: time.Now); leases take
	// the database's clock. Tests play a host whose clock is off.
	Clock func() time.Time
	// RedeemGroup bounds a group commit (Store.Redeem; -1: off);
	// RedeemFlights is how many groups are written at once (at most
	// MaxConns).
	RedeemGroup, RedeemFlights int
}

// DefaultRedeemGroup is Config.RedeemGroup's default.
const DefaultRedeemGroup = 64

// DefaultRedeemFlights is Config.RedeemFlights's default: about the
// database server's cores (docs/store.md, "Group commit on PostgreSQL").
const DefaultRedeemFlights = 2

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate checks the configuration, naming fields by key ("maxConns").
func (c Config) Validate() error {
	var errs configkey.List
	sqlstore.CheckPool(&errs, c.DSN, c.MaxConns, DefaultMaxConns)
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

// sessionParams are c's session limits and server-side TCP settings.
func (c Config) sessionParams() map[string]string {
	p := map[string]string{}
	for name, d := range map[string]time.Duration{"statement_timeout": c.StatementTimeout, "lock_timeout": c.LockTimeout,
		"idle_in_transaction_session_timeout": c.IdleInTransactionTimeout, "tcp_user_timeout": c.TCPUserTimeout} {
		if d > 0 {
			p[name] = strconv.FormatInt(d.Milliseconds(), 10)
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

// Open connects and pings, creating cfg.Schema if needed (not migrating).
func Open(ctx context.Context, cfg Config) (*Store, error) { return open(ctx, cfg, nil) }

// open is Open with a hook for tests that trace the statements.
func open(ctx context.Context, cfg Config, tune func(*pgxpool.Config)) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's parse errors quote the DSN: say what is wrong without it.
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
	err = s.Ping(ctx)
	if err == nil && cfg.Schema != "" {
		_, err = pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{cfg.Schema}.Sanitize())
		err = sqlstore.Wrap(err, "postgres: create schema %s", cfg.Schema)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Redeem is the core's, in a group commit (Config.RedeemGroup;
// redeem_codes, migration 00018).
func (s *Store) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	return sqlstore.RedeemVia(ctx, s.group, s.Core, req)
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() { s.pool.Close() }

//go:embed migrations/*.sql
var migrationFiles embed.FS

// dialect is PostgreSQL for the shared core.
var dialect = sqlstore.Dialect[pgxTx]{
	Statements:      statements,
	Time:            sqlstore.UTC,
	UniqueViolation: func(err error) bool { return sqlState(err) == "23505" },
	Retryable:       func(err error) bool { code := sqlState(err); return code == "40P01" || code == "40001" },
	Bulk:            sqlstore.Bulk[pgxTx]{Copy: copyChunk, InsertChunk: insertChunk, InsertCodes: insertCodes},
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
	// redeem_code raises PC001 for a promotion with rules (00013).
	StatementPath: func(err error) bool { return sqlState(err) == "PC001" },
	ServerError:   func(err error) bool { return sqlState(err) != "" },
}

// sqlState is err's SQLSTATE ("" for none).
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// unavailable: the server shutting down, starting or out of connections, a
// session limit, pgx's closed connection or pool.
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

// EndFrozenCopies ends this database and user's sessions waiting in a COPY
// FROM STDIN longer than Config.StatementTimeout (none without one), which
// no session limit ends (docs/store.md, "A generator frozen mid-chunk"),
// and returns how many.
func (s *Store) EndFrozenCopies(ctx context.Context) (int, error) {
	if s.statementTimeout <= 0 {
		return 0, nil
	}
	var n int
	err := s.pool.QueryRow(ctx, qEndFrozenCopies, s.statementTimeout.Milliseconds()).Scan(&n)
	return n, sqlstore.Wrap(err, "postgres: end frozen COPY sessions")
}

// pgxQuerier is what a pool and a transaction have in common.
type pgxQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgxExec is sqlstore.Querier over pgx, natively.
type pgxExec struct{ q pgxQuerier }

func (e pgxExec) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := e.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (e pgxExec) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return e.q.Query(ctx, query, args...)
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

// PoolStats reports the pool in database/sql's terms (waits: acquires that
// found no idle connection).
func (s *Store) PoolStats() sql.DBStats {
	st := s.pool.Stat()
	return sql.DBStats{MaxOpenConnections: int(st.MaxConns()), OpenConnections: int(st.TotalConns()),
		InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()), WaitCount: st.EmptyAcquireCount(),
		WaitDuration: st.EmptyAcquireWaitTime()}
}

// PostgreSQL's bulk path for the core's chunk commit (sqlstore.Bulk): binary
// COPY straight into codes; on a collision (23505) the core rolls back and
// redoes the chunk through a staging table with ON CONFLICT DO NOTHING.

var codeColumns = []string{"code", "promotion_id"}

// copyChunk is the fast path: the progress UPDATE's transaction COPYs the
// chunk's codes into codes.
func copyChunk(ctx context.Context, tx pgxTx, c *promo.Chunk) error {
	n, err := tx.tx.CopyFrom(ctx, pgx.Identifier{"codes"}, codeColumns, chunkRows(c))
	if err != nil {
		return fmt.Errorf("copy codes: %w", err)
	}
	if n != int64(c.Count) {
		return fmt.Errorf("copy codes: %d rows copied, want %d", n, c.Count)
	}
	return nil
}

// insertChunk is the skipping path: COPY into a staging table, then insert
// what does not conflict; it returns how many codes it inserted.
func insertChunk(ctx context.Context, tx pgxTx, c *promo.Chunk) (int64, error) {
	if _, err := tx.tx.Exec(ctx, qCreateStaging); err != nil {
		return 0, fmt.Errorf("create staging table: %w", err)
	}
	if _, err := tx.tx.CopyFrom(ctx, pgx.Identifier{"codes_staging"}, codeColumns, chunkRows(c)); err != nil {
		return 0, fmt.Errorf("copy codes to staging: %w", err)
	}
	tag, err := tx.tx.Exec(ctx, qInsertFromStaging)
	return tag.RowsAffected(), sqlstore.Wrap(err, "insert staged codes")
}

// insertCodes inserts replacement codes skipping those that exist.
func insertCodes(ctx context.Context, tx pgxTx, codes []string, promotionID int64) (int64, error) {
	tag, err := tx.tx.Exec(ctx, qInsertCodesArray, codes, promotionID)
	return tag.RowsAffected(), sqlstore.Wrap(err, "insert %d codes", len(codes))
}

// chunkRows feeds a chunk's codes to CopyFrom without allocating per row:
// the row slice, and the pointers in it, are made once per chunk; code
// implements pgtype.TextValuer over a sub-string of one per-chunk string.
func chunkRows(c *promo.Chunk) pgx.CopyFromSource {
	codes, n := string(c.Codes[:c.Count*c.CodeLen]), c.CodeLen
	var code codeValue
	row := []any{&code, c.Batch.PromotionID}
	return pgx.CopyFromSlice(c.Count, func(i int) ([]any, error) {
		code.s = codes[i*n : (i+1)*n]
		return row, nil
	})
}

type codeValue struct{ s string }

// TextValue implements pgtype.TextValuer: pgx appends the bytes as they are
// (the binary format of text is its bytes).
func (v *codeValue) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: v.s, Valid: true}, nil
}
