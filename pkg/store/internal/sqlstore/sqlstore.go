// Package sqlstore is the one implementation of the store's algorithms, its
// scanning and its rules, shared by the SQLite, PostgreSQL and SQL Server
// stores (docs/store.md, "One core, three dialects"). Each of them supplies a
// Dialect (its statement text, argument adapters, error classifiers,
// statement hooks and bulk-insert path) and its pools; everything else is
// written here once. The statement text two or three dialects share is here
// too (queries.go, composed with each dialect's own by Compose). The
// redemption, reservation and lifecycle algorithms run on one statement
// binder (stmts.go): the dialect's statements bound to a transaction.
//
// The algorithms run against a small executor seam, Querier, with two
// implementations: database/sql (SQLDB here, for SQLite and SQL Server) and
// pgx (in the postgres package, so that pgx stays native there). Core is
// generic over the dialect's transaction type T, so a dialect's bulk path
// receives its own transaction (a *SQLTx, or the postgres package's pgx
// transaction for COPY) without a type assertion.
//
// Concurrency: a *Core is safe for concurrent use; its correctness rests on
// the database (one transaction per multi-statement operation, conditional
// statements, row locks), as docs/store.md describes.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Querier runs statements with the dialect's placeholders: a pool or a
// transaction.
type Querier interface {
	// Exec runs a statement and returns the rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow returns a row whose Scan reports sql.ErrNoRows (or an error
	// that wraps it, as pgx's does) when there is none.
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

// DB is a pool that begins transactions of type T with the dialect's
// options (isolation, SQLite's BEGIN IMMEDIATE through its DSN).
type DB[T Tx] interface {
	Querier
	Begin(ctx context.Context) (T, error)
	Ping(ctx context.Context) error
}

// Dialect is what differs between the databases: statement text, argument
// adapters, error classifiers and the bulk path. Every statement takes its
// arguments in the order its Statements field documents.
type Dialect[T Tx] struct {
	Statements
	// VarChar adapts a code (or another ASCII key compared with a varchar
	// column) as an argument; nil passes the string as it is.
	VarChar func(string) any
	// Time adapts a time as an argument (ISO 8601 text on SQLite, a UTC
	// time.Time elsewhere).
	Time func(time.Time) any
	// UniqueViolation reports a unique-key violation. Which key follows from
	// the statement that failed.
	UniqueViolation func(error) bool
	// Retryable reports an error after which the database rolled the
	// transaction back and a new run may succeed (a deadlock victim, a
	// serialization failure); Unavailable one that means the database
	// cannot serve now (besides a lost connection, which the core knows);
	// LockTimeout a lock wait past the session's limit. nil: none.
	Retryable, Unavailable, LockTimeout func(error) bool
	// StatementPath reports RedeemOnce's refusal to decide a redemption
	// (the promotion has eligibility rules): nothing was written, and the
	// core redeems on its statement path instead. nil: never.
	StatementPath func(error) bool
	// ServerError reports an error the database answered a statement with
	// (in autocommit: its transaction was rolled back), as opposed to a lost
	// connection, after which it may have committed. Needed with
	// RedeemGroupOnce.
	ServerError func(error) bool
	// Lease adapts a lease's length as an argument of the claim statements,
	// which add it to the database's clock.
	Lease func(time.Duration) any
	// Bulk inserts a chunk's codes.
	Bulk Bulk[T]
	// MarkPublished returns the statement and arguments that mark the first
	// n of refs published (see RefValues); the core runs it until every ref
	// is marked.
	MarkPublished func(refs []promo.BatchRef) (query string, args []any, n int)
	// Arrays makes the statements that take one row per run (AddTotals,
	// MarkEventPublished) take each column as an array, in one run
	// (PostgreSQL).
	Arrays bool
	// AllRows is the limit argument that means no limit (LIMIT NULL, LIMIT
	// -1, a TOP of MaxInt32).
	AllRows any
}

// Bulk is a dialect's code insert for the chunk commit, on the chunk's
// transaction.
type Bulk[T Tx] struct {
	// Copy, if set, is the fast path: it inserts all of the chunk's codes
	// or fails, with a unique violation when one exists already; the core
	// then rolls back and redoes the chunk on the skipping path.
	Copy func(ctx context.Context, tx T, c *promo.Chunk) error
	// InsertChunk, if set, inserts the chunk's codes skipping those that
	// exist (or repeat) and returns how many it inserted; if nil, the core
	// passes the chunk's codes, sorted, to InsertCodes.
	InsertChunk func(ctx context.Context, tx T, c *promo.Chunk) (int64, error)
	// InsertCodes inserts codes for a promotion skipping those that exist
	// (or repeat) and returns how many it inserted.
	InsertCodes func(ctx context.Context, tx T, codes []string, promotionID int64) (int64, error)
}

// Core is a store on one database: the dialect, a write pool and a read
// pool (the same pool on PostgreSQL and SQL Server). Its exported methods
// are the store contract (storetest); the dialect packages embed it.
type Core[T Tx] struct {
	d     Dialect[T]
	w, r  DB[T]
	m     Migrations
	clock func() time.Time
}

// New returns a Core on the pools w (writes) and r (reads). clock (nil:
// time.Now) is this process's clock for the times the core stamps itself
// (created_at, the totals' updated_at); leases compared across processes
// take the database's clock.
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

// Now reads the database's clock, the one leases and expiries are taken
// from (the time of the call, not of the transaction).
func (s *Core[T]) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.r.QueryRow(ctx, s.d.Now).Scan(Time(&t)); err != nil {
		return t, fmt.Errorf("%s: read the database clock: %w", s.m.Name, err)
	}
	return t, nil
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

// maxTxAttempts bounds the runs of one transaction that fails for a reason a
// new run removes (a deadlock, a lost idempotency race, a chunk collision).
const maxTxAttempts = 4

// inTx runs fn in a write transaction and commits if fn returns nil.
func (s *Core[T]) inTx(ctx context.Context, fn func(tx T) error) error {
	tx, err := s.w.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// retry runs fn up to maxTxAttempts times while it fails with a retryable
// error (or loses a create's idempotency race: the new run finds the
// winner's promotion), pausing a little between runs so that deadlock
// victims do not meet again at once.
func (s *Core[T]) retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt == maxTxAttempts || !(s.d.Retryable(err) || errors.Is(err, errIdempotencyRace)) {
			return err
		}
		if err := pause(ctx, attempt); err != nil {
			return err
		}
	}
}

// pause waits before run attempt+1 of a transaction.
func pause(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(attempt) * 10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// nullTime is a nullable time argument.
func (d *Dialect[T]) nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.Time(*t)
}

// noRows reports whether err says a query returned no row (database/sql's
// ErrNoRows, which pgx's wraps).
func noRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// Migrate applies the pending migrations. It is idempotent and safe to run
// from several processes at once (the dialect's lock, or SQLite's write
// lock, serialises them).
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

// Migrations are the core's migrations (tests build a database as an older
// release left it); DB is its write pool (tests drive it with plain SQL).
func (s *Core[T]) Migrations() Migrations { return s.m }
func (s *Core[T]) DB() Querier            { return s.w }

// MigrateReport is Migrate, saying what it did: the file names of the
// migrations it applied, in order, and the schema version the database is at.
func (s *Core[T]) MigrateReport(ctx context.Context) (applied []string, version int64, err error) {
	return s.m.Up(ctx, 0)
}

// SchemaPending reports whether migrations this binary knows are not applied
// yet (an unmigrated database counts as pending), for the readiness probe.
// It takes no migration lock and changes nothing.
func (s *Core[T]) SchemaPending(ctx context.Context) (bool, error) { return s.m.Pending(ctx) }
