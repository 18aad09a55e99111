// Package sqlstore is the store's algorithms, scanning, rules and shared
// statement text, written once for the SQLite, PostgreSQL and SQL Server
// stores (docs/store.md, "One core, three dialects"), which supply a
// Dialect and their pools. The algorithms run on the executor seam Querier
// (database/sql here, pgx in package postgres); Core is generic over the
// dialect's transaction type, so a bulk path gets its own without a type
// assertion.
//
// Concurrency: a *Core is safe for concurrent use; its correctness rests on
// the database (one transaction per multi-statement operation, conditional
// statements, row locks), as docs/store.md describes.
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Querier runs statements: a pool or a transaction.
type Querier interface {
	// Exec runs a statement and returns the rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow's Scan reports (an error wrapping) sql.ErrNoRows for no row.
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Row is one result row.
type Row interface{ Scan(dest ...any) error }

// Rows is a result set; pgx.Rows satisfies it as it is.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Tx is a transaction.
type Tx interface {
	Querier
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// DB is a pool beginning transactions T with the dialect's options.
type DB[T Tx] interface {
	Querier
	Begin(ctx context.Context) (T, error)
	Ping(ctx context.Context) error
}

// Dialect is what differs between the databases.
type Dialect[T Tx] struct {
	Statements
	// VarChar adapts an ASCII key compared with a varchar column (nil: as
	// it is).
	VarChar func(string) any
	// Time adapts a time argument.
	Time func(time.Time) any
	// UniqueViolation reports a unique-key violation (the statement says
	// which key).
	UniqueViolation func(error) bool
	// Retryable: the transaction was rolled back and may run again (a
	// deadlock victim); Unavailable: the database cannot serve now (besides
	// a lost connection); LockTimeout: a lock wait past the session's
	// limit. nil: none.
	Retryable, Unavailable, LockTimeout func(error) bool
	// StatementPath reports a one-statement form's refusal (eligibility
	// rules): nothing was written, the core runs its statements instead.
	StatementPath func(error) bool
	// ServerError reports the database's answer to a statement (in
	// autocommit: rolled back), not a lost connection (which may have
	// committed). Needed with RedeemGroupOnce.
	ServerError func(error) bool
	// Lease adapts a lease's length for the claim statements.
	Lease func(time.Duration) any
	// Bulk inserts a chunk's codes.
	Bulk Bulk[T]
	// MarkPublished returns the statement and arguments marking the first n
	// of refs published (RefValues).
	MarkPublished func(refs []promo.BatchRef) (query string, args []any, n int)
	// Arrays: AddTotals and MarkEventPublished take arrays, in one run.
	Arrays bool
	// AllRows is the limit argument meaning no limit.
	AllRows any
}

// Bulk is a dialect's code insert for the chunk commit.
type Bulk[T Tx] struct {
	// Copy, if set, is the fast path: all of the chunk's codes, or a unique
	// violation, after which the core redoes the chunk skipping.
	Copy func(ctx context.Context, tx T, c *promo.Chunk) error
	// InsertChunk, if set, inserts the chunk's codes skipping existing (or
	// repeated) ones: how many (nil: InsertCodes with them sorted).
	InsertChunk func(ctx context.Context, tx T, c *promo.Chunk) (int64, error)
	// InsertCodes does the same for codes of a promotion.
	InsertCodes func(ctx context.Context, tx T, codes []string, promotionID int64) (int64, error)
}

// Core is a store on one database: the dialect, a write pool and a read
// pool (maybe the same). Its exported methods are the store contract
// (storetest); the dialect packages embed it.
type Core[T Tx] struct {
	d     Dialect[T]
	w, r  DB[T]
	m     Migrations
	clock func() time.Time
}

// New returns a Core on the pools w (writes) and r (reads). clock (nil:
// time.Now) stamps created_at and updated_at; leases take the database's.
func New[T Tx](d Dialect[T], w, r DB[T], m Migrations, clock func() time.Time) *Core[T] {
	if d.VarChar == nil {
		d.VarChar = func(s string) any { return s }
	}
	for _, f := range []*func(error) bool{&d.Retryable, &d.Unavailable, &d.LockTimeout, &d.StatementPath} {
		if *f == nil {
			*f = func(error) bool { return false }
		}
	}
	if clock == nil {
		clock = time.Now
	}
	return &Core[T]{d: d, w: w, r: r, m: m, clock: clock}
}

// Now reads the database's clock (at the call, not the transaction).
func (s *Core[T]) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := s.r.QueryRow(ctx, s.d.Now).Scan(Time(&t))
	return t, wrap(err, "%s: read the database clock", s.m.Name)
}

// MaxMillis is the longest timeout the databases take: an int of milliseconds.
const MaxMillis = (1<<31 - 1) * time.Millisecond

// CheckMillis adds to errs, as key's, a timeout d that is neither 0 (zero
// says what 0 means) nor from 1ms to MaxMillis.
func CheckMillis(errs *configkey.List, key string, d time.Duration, zero string) {
	if d < 0 || (d > 0 && d < time.Millisecond) || d > MaxMillis {
		errs.Add(key, "must be 0 (%s) or from 1ms to %s, got %s", zero, MaxMillis, d)
	}
}

// CheckPool adds to errs a missing DSN and a negative maxConns (0: def).
func CheckPool[N int | int32](errs *configkey.List, dsn string, maxConns N, def int) {
	errs.Set(map[string]string{"dsn": dsn})
	if maxConns < 0 {
		errs.Add("maxConns", "must be at least 1 (0: %d), got %d", def, maxConns)
	}
}

// maxTxAttempts bounds the runs of one transaction that fails for a reason a
// new run removes (a deadlock, a lost idempotency race, a chunk collision).
const maxTxAttempts = 4

// inTx runs fn in a write transaction and commits if fn returns nil; it
// returns once the commit is durable.
func (s *Core[T]) inTx(ctx context.Context, fn func(tx T) error) error {
	wait, err := s.inTxDeferred(ctx, fn)
	if err == nil && wait != nil {
		err = wait(context.WithoutCancel(ctx))
	}
	return err
}

// deferredCommitter is a transaction that can leave the wait for its
// commit's flush to its caller (SQLTx on a Durable pool).
type deferredCommitter interface {
	CommitDeferred(ctx context.Context) (wait func(context.Context) error, err error)
}

// inTxDeferred is inTx whose commit is durable once wait returns nil (nil:
// at once): a group commit answers its members after it, and writes the
// next group meanwhile.
func (s *Core[T]) inTxDeferred(ctx context.Context, fn func(tx T) error) (wait waitFunc, err error) {
	tx, err := s.w.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return nil, err
	}
	if dc, ok := any(tx).(deferredCommitter); ok {
		w, err := dc.CommitDeferred(ctx)
		return w, wrap(err, "commit")
	}
	return nil, wrap(tx.Commit(ctx), "commit")
}

// retry runs fn up to maxTxAttempts times while it fails retryably (or
// loses a create's idempotency race: the new run finds the winner's), or,
// at once, while it fails as now (if given) says. It returns the last run's
// error itself.
func (s *Core[T]) retry(ctx context.Context, fn func() error, now ...func(error) bool) error {
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		switch last = fn(); {
		case last == nil || s.d.Retryable(last) || errors.Is(last, errIdempotencyRace):
			return struct{}{}, last
		case len(now) > 0 && now[0](last):
			return struct{}{}, backoff.RetryAfter(0)
		}
		return struct{}{}, backoff.Permanent(last)
	}, txRetries()...)
	var p *backoff.PermanentError
	var again *backoff.RetryAfterError
	if errors.As(err, &p) || errors.As(err, &again) {
		// backoff.Retry leaves its wrapper on the last allowed run (it
		// checks the run limit first).
		return last
	}
	return err
}

// txRetries are the options of a transaction's runs: at most maxTxAttempts,
// 10 ms apart at first, doubling, with jitter so that two deadlock victims
// do not meet again at once.
func txRetries() []backoff.RetryOption {
	return []backoff.RetryOption{backoff.WithMaxTries(maxTxAttempts), backoff.WithMaxElapsedTime(0),
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 10 * time.Millisecond,
			RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 100 * time.Millisecond})}
}

// nullTime is a nullable time argument.
func (d *Dialect[T]) nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.Time(*t)
}

// noRows reports whether err says a query returned no row.
func noRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// Wrap is wrap for the dialects: err wrapped as format says, nil as it is.
func Wrap(err error, format string, args ...any) error { return wrap(err, format, args...) }

// lookedUp is a single-row read's error: notFound for no row, else err
// wrapped as format says.
func lookedUp(err, notFound error, format string, args ...any) error {
	if noRows(err) {
		return notFound
	}
	return wrap(err, format, args...)
}

// Migrate applies the pending migrations, idempotent and safe from several
// processes at once (a lock serialises them).
func (s *Core[T]) Migrate(ctx context.Context) error { return s.m.UpTo(ctx, 0) }

// Ping checks that the pools reach the database.
func (s *Core[T]) Ping(ctx context.Context) error {
	for _, db := range []DB[T]{s.w, s.r} {
		if err := db.Ping(ctx); err != nil {
			return fmt.Errorf("%s: ping: %w", s.m.Name, err)
		}
	}
	return nil
}

// Migrations and DB (the write pool) let tests build an older schema and
// drive it with plain SQL.
func (s *Core[T]) Migrations() Migrations { return s.m }
func (s *Core[T]) DB() Querier            { return s.w }

// MigrateReport is Migrate, saying the migrations it applied and the
// schema version now.
func (s *Core[T]) MigrateReport(ctx context.Context) (applied []string, version int64, err error) {
	return s.m.Up(ctx, 0)
}

// SchemaPending reports whether migrations this binary knows are not applied
// (readiness probe); it takes no lock.
func (s *Core[T]) SchemaPending(ctx context.Context) (bool, error) { return s.m.Pending(ctx) }

// Migrations runs a dialect's goose migrations (embedded SQL files) through
// goose's Provider API, which keeps no global state.
type Migrations struct {
	// Name prefixes errors ("sqlite: migrate: ...").
	Name    string
	Dialect goose.Dialect
	// FS holds the migration files in its folder migrations/.
	FS fs.FS
	// DB returns the database to migrate and what to call when done with it
	// (PostgreSQL opens a database/sql handle on its pgx pool for each run).
	DB func() (db *sql.DB, done func())
	// Locker, if set, serialises concurrent migrations (SQLite needs none:
	// its write lock does it).
	Locker lock.SessionLocker
}

// with runs fn on a goose provider of the migrations, under the Locker if
// locked.
func (m Migrations) with(locked bool, fn func(p *goose.Provider) error) error {
	fsys, err := fs.Sub(m.FS, "migrations")
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if locked && m.Locker != nil {
		opts = append(opts, goose.WithSessionLocker(m.Locker))
	}
	db, done := m.DB()
	defer done()
	p, err := goose.NewProvider(m.Dialect, db, fsys, opts...)
	if err != nil {
		return err
	}
	return fn(p)
}

// UpTo applies the pending migrations up to version, or all of them for 0 (tests
// build a database as an older release left it). It is idempotent.
func (m Migrations) UpTo(ctx context.Context, version int64) error {
	_, _, err := m.Up(ctx, version)
	return err
}

// Up is UpTo, saying what it did: the file names of the migrations it
// applied, in order, and the version the database is at afterwards.
func (m Migrations) Up(ctx context.Context, version int64) (applied []string, at int64, err error) {
	err = m.with(true, func(p *goose.Provider) (err error) {
		var res []*goose.MigrationResult
		if version > 0 {
			res, err = p.UpTo(ctx, version)
		} else {
			res, err = p.Up(ctx)
		}
		for _, r := range res {
			if r.Error == nil && r.Source != nil {
				applied = append(applied, path.Base(r.Source.Path))
			}
		}
		if err == nil {
			at, err = p.GetDBVersion(ctx)
		}
		return err
	})
	return applied, at, wrap(err, "%s: migrate", m.Name)
}

// DownTo rolls back the migrations above version (tests).
func (m Migrations) DownTo(ctx context.Context, version int64) error {
	return m.with(false, func(p *goose.Provider) error {
		_, err := p.DownTo(ctx, version)
		return err
	})
}

// Pending reports whether migrations are not applied yet, without a lock
// (true with an error: the version is unknown).
func (m Migrations) Pending(ctx context.Context) (pending bool, err error) {
	err = m.with(false, func(p *goose.Provider) (err error) {
		pending, err = p.HasPending(ctx)
		return err
	})
	if err != nil {
		return true, fmt.Errorf("%s: schema version: %w", m.Name, err)
	}
	return pending, nil
}

// Unavailable reports whether err means the database cannot serve the
// request now rather than that the request was wrong: the dialect's
// classifier (a server shutting down, out of connections, a lock or
// statement bound, a busy file), or a lost connection. The API answers these
// 503 with Retry-After, never 500.
func (s *Core[T]) Unavailable(err error) bool {
	return err != nil && (s.d.Unavailable(err) || connectionLost(err))
}

// LockTimeout reports whether err is a lock wait that ran out of the
// dialect's lock timeout: whoever holds the lock is still at it, or frozen.
func (s *Core[T]) LockTimeout(err error) bool { return err != nil && s.d.LockTimeout(err) }

// connectionLost reports whether err says the database could not be reached
// or the connection to it was lost or closed (refused, reset, broken pipe, a
// network error, an unexpected end of stream, a pool closed by shutdown):
// what no driver owns. Such a request was not wrong; it may succeed when
// retried.
func connectionLost(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) ||
		strings.Contains(err.Error(), "sql: database is closed") // database/sql's unexported errDBClosed
}
