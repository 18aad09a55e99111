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
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/promocodes/promocodes/pkg/store/internal/schema"
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
	pool   *pgxpool.Pool
	schema string
}

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
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", err)
	}
	s := &Store{pool: pool, schema: cfg.Schema}
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

// retryable reports whether err is a deadlock or serialization failure: the
// transaction was rolled back and may simply be run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
