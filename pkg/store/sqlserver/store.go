// Package sqlserver is the SQL Server store of promocodes (database/sql with
// the "sqlserver" driver of github.com/microsoft/go-mssqldb). It owns the
// schema (versioned goose migrations embedded from migrations/) and every
// statement against it; all T-SQL is in queries.go. The algorithms are the
// shared core's (pkg/store/internal/sqlstore). It is the only package that
// imports go-mssqldb.
//
// A *Store is safe for concurrent use by many goroutines and, through the
// database, by many processes: every multi-statement operation is one
// transaction at READ COMMITTED whose correctness rests on row locks and
// conditional updates, exactly as in the PostgreSQL store (see
// docs/store.md). It works with READ_COMMITTED_SNAPSHOT on or off: the
// conditional UPDATEs read their target rows under update locks either way.
// Where no SQL Server runs, its tests check the statements' shape against a
// recording driver (docs/store.md, "SQL Server").
package sqlserver

import (
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
	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
	"github.com/promocodes/promocodes/pkg/store/internal/tcpdial"
)

// DefaultMaxConns is the pool size when Config.MaxConns is 0.
const DefaultMaxConns = 4

// Config configures a Store.
type Config struct {
	// DSN is a go-mssqldb connection string, preferably the URL form
	// sqlserver://user:password@host:1433?database=promocodes&encrypt=true
	// (the key=value and ODBC forms work too). It is never logged or put
	// into errors. A timezone parameter is overridden: the store keeps every
	// time in UTC.
	DSN string
	// MaxConns bounds the connection pool (default 4).
	MaxConns int
	// LockTimeout fails a statement that waits longer for a lock (error
	// 1222, see LockTimeout): SET LOCK_TIMEOUT whenever the pool hands a
	// session out, a round trip per checkout. Zero: wait without limit.
	LockTimeout time.Duration
	// KeepAlive and TCPUserTimeout are the client's end of each connection
	// (tcpdial.Config); the server's end is its own KEEPALIVE setting.
	KeepAlive, TCPUserTimeout time.Duration
	// Clock is this process's clock for the times the store stamps itself
	// (created_at, the totals' updated_at); nil is time.Now. Leases and
	// expiries compared across processes take the server's clock instead
	// (SYSUTCDATETIME()). Tests set it to play a host whose clock is off.
	Clock func() time.Time
}

// Validate checks the configuration, naming each field by its key
// ("maxConns"), which the caller places in its own configuration.
func (c Config) Validate() error {
	var errs configkey.List
	errs.Set(map[string]string{"dsn": c.DSN})
	if c.MaxConns < 0 {
		errs.Add("maxConns", "must be at least 1 (0: %d), got %d", DefaultMaxConns, c.MaxConns)
	}
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

// Open connects (and pings) with cfg. It does not migrate: call Migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sqlserver: %w", err)
	}
	params, err := msdsn.Parse(cfg.DSN)
	if err != nil {
		// The driver's parse errors avoid quoting the DSN; redact anyway.
		return nil, fmt.Errorf("sqlserver: cannot parse DSN (expected sqlserver://user:password@host:port?database=name&...): %s",
			redact(err.Error(), cfg.DSN))
	}
	// Times are stored as UTC datetime2 and must be read back as UTC,
	// whatever the DSN says.
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
	s := &Store{db: db}
	// READ COMMITTED explicitly: go-mssqldb's default keeps whatever level
	// the pooled session had.
	pool := sqlstore.NewSQLDB(db, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	// The migrations run under a session application lock.
	s.Core = sqlstore.New(dialect, pool, pool, sqlstore.Migrations{Name: "sqlserver", Dialect: goose.DialectMSSQL,
		FS: migrationFiles, Locker: appLocker{resource: "promocodes/goose", timeout: 5 * time.Minute},
		DB: func() (*sql.DB, func()) { return db, func() {} }}, clock)
	return s
}

// Close closes the pool, waiting for queries in progress to finish.
func (s *Store) Close() { s.db.Close() }

//go:embed migrations/*.sql
var migrationFiles embed.FS

// dialect is SQL Server for the shared core.
var dialect = sqlstore.Dialect[*sqlstore.SQLTx]{
	Statements: statements,
	VarChar:    func(s string) any { return mssql.VarChar(s) },
	Time:       sqlstore.UTC,
	// A duplicate key: which table follows from the statement that failed.
	UniqueViolation: func(err error) bool { return hasErrorNumber(err, errUniqueConstraint, errUniqueIndex) },
	// A deadlock victim: the transaction was rolled back and may run again.
	Retryable:     func(err error) bool { return hasErrorNumber(err, errDeadlockVictim) },
	Bulk:          sqlstore.Bulk[*sqlstore.SQLTx]{Copy: copyCodes, InsertCodes: insertCodesSkipping},
	MarkPublished: sqlstore.RefValues(maxValuesRows, qMarkPublished),
	AllRows:       math.MaxInt32, // TOP needs a number
	Lease:         leaseMillis,
	// Not now rather than not this: the database offline or failing over,
	// out of sessions, or a lock wait that ran out.
	Unavailable: func(err error) bool {
		return hasErrorNumber(err, errLockTimeout, errCannotOpenDB, errServiceBusy, errDBUnavailable, errServiceError,
			errTooManySessions)
	},
	LockTimeout: func(err error) bool { return hasErrorNumber(err, errLockTimeout) },
	// qRedeemOnce throws errStatementPath for a promotion with rules.
	StatementPath: func(err error) bool { return hasErrorNumber(err, errStatementPath) },
}

// appLocker is goose's SessionLocker on SQL Server (goose has none):
// sp_getapplock owned by the session, which serialises migrate runs.
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
	if _, err := conn.ExecContext(ctx, qReleaseAppLock, l.resource); err != nil {
		return fmt.Errorf("release migration lock %q: %w", l.resource, err)
	}
	return nil
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

// hasErrorNumber reports whether err is (or wraps) a SQL Server error with
// one of the numbers, looking at every error of the response: the driver's
// Error describes the last one (for a failed INSERT, usually 3621 "The
// statement has been terminated."), All holds them all.
func hasErrorNumber(err error, numbers ...int32) bool {
	var all []mssql.Error
	var e mssql.Error
	var pe *mssql.Error
	switch {
	case errors.As(err, &e):
		all = append([]mssql.Error{e}, e.All...)
	case errors.As(err, &pe) && pe != nil:
		all = append([]mssql.Error{*pe}, pe.All...)
	}
	return slices.ContainsFunc(all, func(x mssql.Error) bool { return slices.Contains(numbers, x.Number) })
}

// hideSecret returns err, or, if its text shows the DSN's password, an error
// with the password blanked out (losing the wrapped chain, which is better
// than leaking a credential into a log).
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

// dsnPasswords returns the password of dsn as it may appear in text: raw (as
// written in the DSN) and decoded. It understands the URL form and the
// key=value (ADO) and ODBC forms.
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
		// An unparsable URL: take what lies between the first ':' after the
		// scheme and the last '@' of the authority.
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
