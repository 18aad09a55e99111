// Package sqlite is the embedded SQLite store of promocodes
// (modernc.org/sqlite, pure Go): its migrations and statements, on the
// shared core (internal/sqlstore).
//
// Concurrency: a *Store is safe for concurrent use. One write connection
// whose transactions are BEGIN IMMEDIATE (the write lock up front: two
// writers never deadlock upgrading a read lock), and read-only connections
// that in WAL mode neither block nor wait for the writer. Processes sharing
// the file wait for the write lock (busy_timeout).
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// DefaultMaxReadConns is the read pool size when Config.MaxReadConns is 0.
const DefaultMaxReadConns = 4

// DefaultBusyTimeout is Config.BusyTimeout's default.
const DefaultBusyTimeout = 10 * time.Second

// Config configures a Store. Set Path or DSN.
type Config struct {
	// Path is the database file; it is created if absent.
	Path string
	// DSN is a modernc.org/sqlite DSN, for extra parameters.
	DSN string
	// MaxReadConns bounds the read pool (default 4).
	MaxReadConns int
	// BusyTimeout is a statement's wait for the write lock before
	// SQLITE_BUSY (LockTimeout).
	BusyTimeout time.Duration
	// Clock stamps created_at, updated_at (nil: time.Now); leases take SQLite's.
	Clock func() time.Time
	// RedeemGroup bounds a group commit (Store.Redeem; -1: off).
	RedeemGroup int
}

// DefaultRedeemGroup is Config.RedeemGroup's default.
const DefaultRedeemGroup = 128

// Validate checks the configuration, naming fields by key.
func (c Config) Validate() error {
	var errs configkey.List
	switch {
	case c.Path == "" && c.DSN == "":
		errs.Add("path", "must be set")
	case c.Path != "" && c.DSN != "":
		errs.Add("path", "must not be set with dsn")
	case strings.Contains(c.Path+c.DSN, ":memory:") || strings.Contains(c.DSN, "mode=memory"):
		// An in-memory database is private to its connection.
		errs.Add("path", "must be a file: in-memory databases are not supported (tests: t.TempDir())")
	case strings.ContainsAny(c.Path, "?#"):
		errs.Add("path", "must not contain ? or # (use dsn), got %q", c.Path)
	}
	if c.RedeemGroup < -1 {
		errs.Add("redeemGroup", "must be -1 (off), 0 (the default, %d) or more, got %d", DefaultRedeemGroup, c.RedeemGroup)
	}
	if c.MaxReadConns < 0 {
		errs.Add("maxReadConns", "must be at least 1 (0: %d), got %d", DefaultMaxReadConns, c.MaxReadConns)
	}
	sqlstore.CheckMillis(&errs, "busyTimeout", c.BusyTimeout, DefaultBusyTimeout.String())
	return errs.Err()
}

// Store is the SQLite store.
type Store struct {
	*sqlstore.Core[*sqlstore.SQLTx]
	w     *sql.DB // one connection, BEGIN IMMEDIATE transactions
	r     *sql.DB // read-only connections
	stmts [2]*sqlstore.StmtCache
	// group writes concurrent redemptions in one transaction (nil: off).
	group           *sqlstore.RedeemGroup[*sqlstore.SQLTx]
	stopCheckpoints func()
	// sync flushes the writer's commits (wal: the file it flushes).
	sync *sqlstore.Syncer
	wal  *walFile
}

// WriterParams are a write connection's DSN parameters with every commit
// flushed to disk (synchronous FULL): the benchmarks' floors use them.
// temp_store(MEMORY) keeps a group's savepoint journals in memory.
const WriterParams = "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&" + writerCommon

// storeWriterParams are the store's write connection's: its commits are
// written to the WAL but not flushed (synchronous NORMAL); the store's
// Syncer flushes the WAL (walFile) before anything is acknowledged, so a
// commit is as durable as at FULL once its caller hears of it, and SQLite's
// one writer goes on while the flush runs (docs/store.md, "Durability").
const storeWriterParams = "_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&" + writerCommon

const writerCommon = "_pragma=cache_size(-65536)&_pragma=wal_autocheckpoint(10000)&_pragma=temp_store(MEMORY)&_txlock=immediate"

// writerDriver is the write connection's database/sql driver: a test's
// wraps this one's to make SQLite roll a transaction back by itself.
var writerDriver = "sqlite"

// Open opens (creating) the database file, not migrating.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	base := cmp.Or(cfg.DSN, cfg.Path)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)", cmp.Or(cfg.BusyTimeout, DefaultBusyTimeout).Milliseconds())
	// The writer inserts codes at random places in the code b-tree: a 64 MiB
	// cache bound keeps the hot pages in memory, a larger WAL between
	// checkpoints spreads their cost. The cache has a price per commit while
	// the file is under 1 GiB: a commit after a page split scans all of it
	// (docs/store.md, "SQLite"; BenchmarkWriterCommit). Every commit is
	// flushed before it returns (a committed chunk must survive an OS crash,
	// because its Kafka offset may be committed next), by the Syncer, except a
	// group commit's, whose members are answered after it.
	w, err := sql.Open(writerDriver, base+sep+common+"&"+storeWriterParams)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1) // kept idle, never closed for its age: database/sql's defaults
	// The writer connects first: it switches the file to WAL (persistent),
	// which the readers then find.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	r, err := sql.Open("sqlite", base+sep+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	n := cmp.Or(cfg.MaxReadConns, DefaultMaxReadConns)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	wal, err := openWAL(ctx, w)
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	s := &Store{w: w, r: r, wal: wal, sync: sqlstore.NewSyncer(wal.sync)}
	s.stopCheckpoints = StartCheckpoints(base+sep+common, checkpointEvery)
	wdb := sqlstore.NewSQLDB(w, nil).Cached(stmtCacheSize).Durable(s.sync)
	rdb := sqlstore.NewSQLDB(r, nil).Cached(stmtCacheSize)
	s.stmts = [2]*sqlstore.StmtCache{wdb.Cache(), rdb.Cache()}
	// Migrations run through the write connection; SQLite's write lock
	// serialises concurrent runs.
	s.Core = sqlstore.New(dialect, wdb, rdb, sqlstore.Migrations{Name: "sqlite", Dialect: goose.DialectSQLite3,
		FS: migrationFiles, DB: func() (*sql.DB, func()) { return w, func() {} }}, cfg.Clock)
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.RedeemGroup != -1 {
		s.group = sqlstore.NewRedeemGroup(s.Core, cmp.Or(cfg.RedeemGroup, DefaultRedeemGroup)).OneWriter()
	}
	return s, nil
}

// Redeem is the core's, in a group commit (Config.RedeemGroup).
func (s *Store) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	return sqlstore.RedeemVia(ctx, s.group, s.Core, req)
}

// CommitChunk is the core's; a chunk refused because the batch moved on
// (EMoved) is answered after a flush, as a commit is: the progress it read
// may be another worker's commit still waiting for its flush, and the
// generator takes it as done (LoadBatch next, then the event's offset).
func (s *Store) CommitChunk(ctx context.Context, c promo.Chunk) (int64, error) {
	done, err := s.Core.CommitChunk(ctx, c)
	if promo.Is(err, promo.EMoved) {
		if werr := s.flushed(ctx, "commit chunk"); werr != nil {
			return 0, werr
		}
	}
	return done, err
}

// LoadBatch is the core's (a read on the read pool), answered after a flush
// that started after the read: the generator takes a batch it reads complete
// as done and commits its event's offset, so the progress it reads must be
// on disk, not one flush early as other reads of the read pool may be.
func (s *Store) LoadBatch(ctx context.Context, ref promo.BatchRef) (promo.BatchWork, error) {
	w, err := s.Core.LoadBatch(ctx, ref)
	if err == nil || promo.Is(err, promo.ENotFound) {
		if werr := s.flushed(ctx, "load batch"); werr != nil {
			return promo.BatchWork{}, werr
		}
	}
	return w, err
}

// Migrate is the core's, answering success only once the migrations'
// commits are flushed (a failed flush is its error, as a write's).
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.Core.Migrate(ctx); err != nil {
		return err
	}
	return s.flushed(ctx, "migrate")
}

// MigrateReport is the core's, flushed as Migrate.
func (s *Store) MigrateReport(ctx context.Context) (applied []string, version int64, err error) {
	if applied, version, err = s.Core.MigrateReport(ctx); err == nil {
		err = s.flushed(ctx, "migrate")
	}
	return applied, version, err
}

// flushed waits for a flush that starts after it is called, to the end
// even if ctx ends (what it covers is already written): for an answer
// built on commits outside SQLDB's own waits (goose's on the writer's
// *sql.DB, another worker's chunk, a read of the read pool); op names the
// answer in a failed flush's error.
func (s *Store) flushed(ctx context.Context, op string) error {
	if err := s.sync.Wait(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return nil
}

// stmtCacheSize bounds each pool's StmtCache (about a hundred texts run).
const stmtCacheSize = 256

// Close closes both pools and the checkpointer.
func (s *Store) Close() {
	s.stopCheckpoints()
	for _, c := range s.stmts {
		c.Close()
	}
	s.r.Close()
	s.w.Close()
	s.wal.close()
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// dialect is SQLite for the shared core.
var dialect = sqlstore.Dialect[*sqlstore.SQLTx]{
	Statements: statements,
	Time:       func(t time.Time) any { return sqlstore.FormatTime(t) },
	// A UNIQUE or PRIMARY KEY constraint failure.
	UniqueViolation: func(err error) bool {
		code := errCode(err)
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
	Bulk:          sqlstore.Bulk[*sqlstore.SQLTx]{InsertCodes: insertCodes},
	MarkPublished: sqlstore.RefValues(insertCodesRows, qMarkPublished),
	AllRows:       -1, // LIMIT -1
	Lease:         func(d time.Duration) any { return d.Seconds() },
	// The file busy, locked, unreadable or unopenable.
	Unavailable: func(err error) bool {
		switch errCode(err) & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
			return true
		}
		return false
	},
	LockTimeout: func(err error) bool { return errCode(err)&0xff == sqlite3.SQLITE_BUSY },
}

// errCode is err's SQLite extended result code (0: none).
func errCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// insertCodes is Bulk.InsertCodes: a prepared multi-row INSERT ... ON
// CONFLICT DO NOTHING. Codes are bound as text (a []byte would be a BLOB,
// never matching a text look-up).
func insertCodes(ctx context.Context, tx *sqlstore.SQLTx, codes []string, promotionID int64) (int64, error) {
	var (
		inserted int64
		full     *sql.Stmt
		args     = make([]any, 0, 2*min(len(codes), insertCodesRows))
	)
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for len(codes) > 0 {
		n := min(len(codes), insertCodesRows)
		args = args[:0]
		for _, code := range codes[:n] {
			args = append(args, code, promotionID)
		}
		var (
			res sql.Result
			err error
		)
		if n == insertCodesRows {
			if full == nil {
				if full, err = tx.Tx.PrepareContext(ctx, qInsertCodes(n)); err != nil {
					return 0, fmt.Errorf("prepare code insert: %w", err)
				}
			}
			res, err = full.ExecContext(ctx, args...)
		} else {
			res, err = tx.Tx.ExecContext(ctx, qInsertCodes(n), args...)
		}
		if err != nil {
			return 0, fmt.Errorf("insert %d codes: %w", n, err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("insert %d codes: %w", n, err)
		}
		inserted += k
		codes = codes[n:]
	}
	return inserted, nil
}

// PoolStats reports the write and read pools together.
func (s *Store) PoolStats() sql.DBStats {
	w, r := s.w.Stats(), s.r.Stats()
	return sql.DBStats{MaxOpenConnections: w.MaxOpenConnections + r.MaxOpenConnections,
		OpenConnections: w.OpenConnections + r.OpenConnections, InUse: w.InUse + r.InUse, Idle: w.Idle + r.Idle,
		WaitCount: w.WaitCount + r.WaitCount, WaitDuration: w.WaitDuration + r.WaitDuration,
		MaxIdleClosed: w.MaxIdleClosed + r.MaxIdleClosed, MaxIdleTimeClosed: w.MaxIdleTimeClosed + r.MaxIdleTimeClosed,
		MaxLifetimeClosed: w.MaxLifetimeClosed + r.MaxLifetimeClosed}
}
