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
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/crc32"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
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
	return nil
}

// Store is the PostgreSQL store.
type Store struct {
	*sqlstore.Core[pgxTx]
	pool *pgxpool.Pool
}

// Open connects (and pings) with cfg, creating cfg.Schema if needed. It does
// not migrate: call Migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) { return open(ctx, cfg, nil) }

// open is Open with a hook that adjusts the pool's configuration (tests
// trace the statements).
func open(ctx context.Context, cfg Config, tune func(*pgxpool.Config)) (*Store, error) {
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
	if tune != nil {
		tune(pcfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(crc32.ChecksumIEEE([]byte("promocodes goose "+cfg.Schema)))),
		lock.WithLockTimeout(1, 300))
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migration lock: %w", err)
	}
	s := &Store{pool: pool}
	db := pgxPool{pgxExec{pool}, pool}
	s.Core = sqlstore.New(dialect, db, db, s.migrations(locker))
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

// migrations applies the migrations through a database/sql handle on the
// pool; a session advisory lock, keyed by schema, serialises concurrent runs
// from several processes.
func (s *Store) migrations(locker lock.SessionLocker) sqlstore.Migrations {
	return sqlstore.Migrations{Name: "postgres", Dialect: goose.DialectPostgres, FS: migrationFiles, Locker: locker,
		DB: func() (*sql.DB, func()) {
			db := stdlib.OpenDBFromPool(s.pool)
			return db, func() { db.Close() }
		}}
}

// dialect is PostgreSQL for the shared core: pgx underneath, COPY for chunks,
// arrays where a statement takes many rows.
var dialect = sqlstore.Dialect[pgxTx]{
	Statements:      statements,
	Time:            sqlstore.UTC,
	UniqueViolation: uniqueViolation,
	Retryable:       retryable,
	Bulk:            sqlstore.Bulk[pgxTx]{Copy: copyChunk, InsertChunk: insertChunk, InsertCodes: insertCodes},
	MarkPublished: func(refs []promo.BatchRef) (string, []any, int) {
		ids, nos := make([]int64, len(refs)), make([]int32, len(refs))
		for i, r := range refs {
			ids[i], nos[i] = r.PromotionID, int32(r.BatchNo)
		}
		return qMarkPublished, []any{ids, nos}, len(refs)
	},
	Arrays: true, // AllRows: nil, LIMIT NULL
}

// retryable reports whether err is a deadlock or serialization failure: the
// transaction was rolled back and may simply be run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// uniqueViolation reports whether err is a unique violation (23505).
func uniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
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
