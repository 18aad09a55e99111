// Package sqlserver is the SQL Server store of promocodes (go-mssqldb): its
// migrations and statements, on the shared core (internal/sqlstore, whose
// doc says why it is safe for concurrent use, here at READ COMMITTED with
// READ_COMMITTED_SNAPSHOT on or off: conditional UPDATEs take update locks
// either way). Without a server, tests check the statements' shape.
package sqlserver

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"
	"github.com/pressly/goose/v3"

	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
	"github.com/promocodes/promocodes/pkg/store/internal/tcpdial"
)

// DefaultMaxConns is the pool size when Config.MaxConns is 0.
const DefaultMaxConns = 4

// Config configures a Store.
type Config struct {
	// DSN is a go-mssqldb connection string (URL, key=value or ODBC),
	// never logged; its timezone is overridden (times are UTC).
	DSN string
	// MaxConns bounds the connection pool (default 4).
	MaxConns int
	// LockTimeout fails a longer lock wait (1222, LockTimeout): SET
	// LOCK_TIMEOUT at every checkout (a round trip). Zero: no limit.
	LockTimeout time.Duration
	// KeepAlive and TCPUserTimeout: the client's end (tcpdial.Config).
	KeepAlive, TCPUserTimeout time.Duration
	// Clock stamps created_at, updated_at (nil: time.Now); leases take the server's.
	Clock func() time.Time
}

// Validate checks the configuration, naming fields by key.
func (c Config) Validate() error {
	var errs configkey.List
	sqlstore.CheckPool(&errs, c.DSN, c.MaxConns, DefaultMaxConns)
	sqlstore.CheckMillis(&errs, "lockTimeout", c.LockTimeout, "no limit")
	errs.Join(c.tcp().Validate())
	return errs.Err()
}

func (c Config) tcp() tcpdial.Config {
	return tcpdial.Config{KeepAlive: c.KeepAlive, UserTimeout: c.TCPUserTimeout}
}

// sessionInit is the batch every pooled session starts with.
func (c Config) sessionInit() string {
	if c.LockTimeout <= 0 {
		return ""
	}
	return fmt.Sprintf("SET LOCK_TIMEOUT %d;", c.LockTimeout.Milliseconds())
}

// leaseMillis is a lease for DATEADD(millisecond, ...): an int (24 days).
func leaseMillis(lease time.Duration) any {
	return int32(min(max(lease.Milliseconds(), -(1<<31-1)), 1<<31-1))
}

// Store is the SQL Server store.
type Store struct {
	*sqlstore.Core[*sqlstore.SQLTx]
	db *sql.DB
}

// Open connects and pings, not migrating.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sqlserver: %w", err)
	}
	params, err := msdsn.Parse(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("sqlserver: cannot parse DSN (expected sqlserver://user:password@host:port?database=name&...): %s",
			redact(err.Error(), cfg.DSN))
	}
	// Times are UTC datetime2, read back as UTC.
	params.Encoding.Timezone = time.UTC
	if _, set := params.Parameters[msdsn.AppName]; !set {
		params.AppName = "promocodes"
	}
	conn := mssql.NewConnectorConfig(params)
	conn.SessionInitSQL = cfg.sessionInit()
	conn.Dialer = cfg.tcp().Dialer()
	db := sql.OpenDB(conn)
	n := cmp.Or(cfg.MaxConns, DefaultMaxConns)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := newStore(db, cfg.Clock)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlserver: connect to %s: %w", where(params), hideSecret(err, cfg.DSN))
	}
	return s, nil
}

// where names the server and database of params, without credentials.
func where(p msdsn.Config) string {
	host := p.Host
	if p.Instance != "" {
		host += `\` + p.Instance
	}
	if p.Port != 0 {
		host = net.JoinHostPort(host, strconv.FormatUint(p.Port, 10))
	}
	if p.Database != "" {
		return host + " (database " + p.Database + ")"
	}
	return host
}

// newStore returns a store on db (Open, and tests with a recording driver).
func newStore(db *sql.DB, clock func() time.Time) *Store {
	// READ COMMITTED explicitly: a pooled session keeps its last level.
	pool := sqlstore.NewSQLDB(db, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	// The migrations run under a session application lock.
	return &Store{db: db, Core: sqlstore.New(dialect, pool, pool, sqlstore.Migrations{Name: "sqlserver",
		Dialect: goose.DialectMSSQL, FS: migrationFiles, Locker: appLocker{resource: "promocodes/goose", timeout: 5 * time.Minute},
		DB: func() (*sql.DB, func()) { return db, func() {} }}, clock)}
}

// Close closes the pool, waiting for queries in progress to finish.
func (s *Store) Close() { s.db.Close() }

//go:embed migrations/*.sql
var migrationFiles embed.FS

// dialect is SQL Server for the shared core.
var dialect = sqlstore.Dialect[*sqlstore.SQLTx]{
	Statements:      statements,
	VarChar:         func(s string) any { return mssql.VarChar(s) },
	Time:            sqlstore.UTC,
	UniqueViolation: func(err error) bool { return hasErrorNumber(err, errUniqueConstraint, errUniqueIndex) },
	Retryable:       func(err error) bool { return hasErrorNumber(err, errDeadlockVictim) },
	Bulk:            sqlstore.Bulk[*sqlstore.SQLTx]{Copy: copyCodes, InsertCodes: insertCodesSkipping},
	MarkPublished:   sqlstore.RefValues(maxValuesRows, qMarkPublished),
	AllRows:         math.MaxInt32, // TOP needs a number
	Lease:           leaseMillis,
	// Offline, failing over, out of sessions, a lock wait that ran out.
	Unavailable: func(err error) bool {
		return hasErrorNumber(err, errLockTimeout, errCannotOpenDB, errServiceBusy, errDBUnavailable, errServiceError,
			errTooManySessions)
	},
	LockTimeout: func(err error) bool { return hasErrorNumber(err, errLockTimeout) },
	// qRedeemOnce throws errStatementPath for a promotion with rules.
	StatementPath: func(err error) bool { return hasErrorNumber(err, errStatementPath) },
}

// appLocker is goose's SessionLocker on SQL Server: sp_getapplock.
type appLocker struct {
	resource string
	timeout  time.Duration
}

func (l appLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	var rc int
	if err := conn.QueryRowContext(ctx, qGetAppLock, l.resource, int32(l.timeout.Milliseconds())).Scan(&rc); err != nil {
		return fmt.Errorf("take migration lock %q: %w", l.resource, err)
	}
	if rc < 0 {
		return fmt.Errorf("take migration lock %q: sp_getapplock returned %d (-1 timeout after %s, -2 canceled, -3 deadlock)",
			l.resource, rc, l.timeout)
	}
	return nil
}

func (l appLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, qReleaseAppLock, l.resource)
	return sqlstore.Wrap(err, "release migration lock %q", l.resource)
}

// Server error numbers the store reacts to.
const (
	errUniqueConstraint = 2627  // violation of a PRIMARY KEY or UNIQUE constraint
	errUniqueIndex      = 2601  // duplicate key row in a unique index
	errDeadlockVictim   = 1205  // the transaction was chosen as deadlock victim and rolled back
	errLockTimeout      = 1222  // lock request time out period exceeded (SET LOCK_TIMEOUT)
	errCannotOpenDB     = 4060  // cannot open database (offline, restoring)
	errServiceBusy      = 40501 // the service is currently busy
	errDBUnavailable    = 40613 // database not currently available
	errServiceError     = 40197 // the service encountered an error processing the request (failover)
	errTooManySessions  = 10928 // resource limit reached (sessions, workers)
)

// hasErrorNumber reports whether err wraps a SQL Server error with one of
// the numbers among all of the response's (Error is only the last, often
// 3621 "The statement has been terminated.").
func hasErrorNumber(err error, numbers ...int32) bool {
	e, ok := errors.AsType[mssql.Error](err)
	if pe, isPtr := errors.AsType[*mssql.Error](err); !ok && isPtr && pe != nil {
		e, ok = *pe, true
	}
	return ok && slices.ContainsFunc(append([]mssql.Error{e}, e.All...),
		func(x mssql.Error) bool { return slices.Contains(numbers, x.Number) })
}

// hideSecret returns err, or if it shows the DSN's password, its text
// redacted (losing the chain rather than leaking a credential).
func hideSecret(err error, dsn string) error {
	if msg := err.Error(); redact(msg, dsn) != msg {
		return errors.New(redact(msg, dsn))
	}
	return err
}

// redact replaces the password of dsn in s, in plain and URL-escaped form,
// by "xxxxx".
func redact(s, dsn string) string {
	for _, pw := range dsnPasswords(dsn) {
		if pw != "" {
			s = strings.ReplaceAll(s, pw, "xxxxx")
		}
	}
	return s
}

var adoPassword = regexp.MustCompile(`(?i)(?:^|;)\s*(?:password|pwd)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)`)

// dsnPasswords returns dsn's password as text may show it, raw and
// decoded, from the URL, key=value (ADO) or ODBC form.
func dsnPasswords(dsn string) []string {
	var out []string
	if strings.HasPrefix(strings.ToLower(dsn), "sqlserver://") {
		if u, err := url.Parse(dsn); err == nil {
			if pw, ok := u.User.Password(); ok {
				out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
			}
			if pw := u.Query().Get("password"); pw != "" {
				out = append(out, pw, url.QueryEscape(pw))
			}
		}
		// Also for an unparsable URL: between the first ':' and the last '@'.
		rest := dsn[len("sqlserver://"):]
		if end := strings.IndexAny(rest, "/?#"); end >= 0 {
			rest = rest[:end]
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				out = append(out, rest[colon+1:at])
			}
		}
		return out
	}
	for _, m := range adoPassword.FindAllStringSubmatch(strings.TrimPrefix(dsn, "odbc:"), -1) {
		pw := strings.TrimSpace(m[1])
		out = append(out, pw)
		if strings.HasPrefix(pw, "{") && strings.HasSuffix(pw, "}") {
			out = append(out, strings.ReplaceAll(pw[1:len(pw)-1], "}}", "}"))
		}
	}
	return out
}

// PoolStats reports the connection pool.
func (s *Store) PoolStats() sql.DBStats { return s.db.Stats() }

// SQL Server's bulk path for the core's chunk commit (sqlstore.Bulk): a bulk
// copy into codes; a collision (2627, reported when the copy is flushed)
// makes the core redo the chunk through insertCodesSkipping.

// bulkCodes is the fast path's bulk copy (column names exactly the table's;
// no TABLOCK: workers copy concurrently). sorted gives the ORDER hint, which
// spares the server a sort but fails the copy if untrue.
func bulkCodes(rows int, sorted bool) string {
	opts := mssql.BulkOptions{RowsPerBatch: rows}
	if sorted {
		opts.Order = []string{"code ASC"}
	}
	return mssql.CopyIn("codes", opts, "code", "promotion_id", "used")
}

// ascending reports whether the chunk's codes are in strictly ascending
// byte order (the generator sorts them; duplicates are not).
func ascending(c *promo.Chunk) bool {
	for i := 1; i < c.Count; i++ {
		if bytes.Compare(c.Code(i-1), c.Code(i)) >= 0 {
			return false
		}
	}
	return true
}

// copyCodes bulk-copies the chunk's codes into codes on tx (prepared there:
// on its connection). The rows stream as they are added; a duplicate key
// (2627) comes back when an Exec without arguments flushes the copy.
func copyCodes(ctx context.Context, tx *sqlstore.SQLTx, c *promo.Chunk) error {
	stmt, err := tx.Tx.PrepareContext(ctx, bulkCodes(c.Count, ascending(c)))
	if err != nil {
		return fmt.Errorf("prepare bulk copy: %w", err)
	}
	defer stmt.Close()
	pid := c.Batch.PromotionID
	for i := range c.Count {
		if _, err := stmt.ExecContext(ctx, c.Code(i), pid, zero); err != nil {
			// Finish the half-sent copy so that the connection is in a
			// known state for the rollback; its own error adds nothing.
			_, _ = stmt.ExecContext(ctx)
			return fmt.Errorf("bulk copy code %d of %d: %w", i, c.Count, err)
		}
	}
	res, err := stmt.ExecContext(ctx)
	if err != nil {
		return fmt.Errorf("bulk copy %d codes: %w", c.Count, err)
	}
	// INSERT BULK is all or nothing; the count is a sanity check (0: none
	// reported, NOCOUNT on).
	if n, err := res.RowsAffected(); err == nil && n != int64(c.Count) && n != 0 {
		return fmt.Errorf("bulk copy: server reports %d rows copied, want %d", n, c.Count)
	}
	return nil
}

// zero is the initial use count of a bulk-copied code, boxed once.
var zero any = int32(0)

// insertCodesSkipping inserts codes for a promotion on tx, skipping those
// already present (in the table or earlier in codes), in statements of up to
// maxValuesRows codes, and returns how many it inserted.
func insertCodesSkipping(ctx context.Context, tx *sqlstore.SQLTx, codes []string, promotionID int64) (int64, error) {
	var inserted int64
	args := make([]any, 0, 1+min(len(codes), maxValuesRows))
	for part := range slices.Chunk(codes, maxValuesRows) {
		args = append(args[:0], promotionID)
		for _, code := range part {
			args = append(args, mssql.VarChar(code))
		}
		var k int64
		if err := tx.QueryRow(ctx, qInsertCodesSkipping(len(part)), args...).Scan(&k); err != nil {
			return 0, fmt.Errorf("insert %d codes: %w", len(part), err)
		}
		if k < 0 || k > int64(len(part)) {
			return 0, fmt.Errorf("insert %d codes: server reports %d rows inserted", len(part), k)
		}
		inserted += k
	}
	return inserted, nil
}
