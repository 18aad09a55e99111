// Package app wires the deployables together: it opens the store and the
// Kafka clients a command needs, starts the API, the generator workers, the
// shovel or the embedded development stack, and closes everything in reverse
// order when the context ends. cmd/promocodes builds a Config and calls one of
// the Run/Start functions; end-to-end tests call the same functions.
//
// Every goroutine started here has an owner that waits for it (errgroup), and
// every client, pool and server is closed in reverse order of opening.
package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/generator"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/pkg/store/sqlserver"
	"github.com/promocodes/promocodes/promotion"
	"github.com/promocodes/promocodes/redemption"
	"github.com/promocodes/promocodes/relay"
)

// Store is everything the deployables need from a database; each store
// package's *Store satisfies it (checked at compile time below).
type Store interface {
	api.Store
	relay.BatchStore
	relay.EventStore
	generator.Store
	redemption.Store
	redemption.RollupStore
	promotion.Store
	IncompleteBatches(ctx context.Context, promotionID int64) ([]promo.Batch, error)
	// Now reads the database's clock (the dbclock's source).
	Now(ctx context.Context) (time.Time, error)
	Migrate(ctx context.Context) error
	MigrateReport(ctx context.Context) (applied []string, version int64, err error)
	SchemaPending(ctx context.Context) (bool, error)
	Backlog(ctx context.Context) (promo.Backlog, error)
	PoolStats() sql.DBStats
	Ping(ctx context.Context) error
	Close()
}

var (
	_ Store = (*sqlite.Store)(nil)
	_ Store = (*postgres.Store)(nil)
	_ Store = (*sqlserver.Store)(nil)
)

// OpenStore opens the configured database without session limits (the
// server's own settings): for migrations and the admin and SRE commands,
// whose statements may run long. It does not migrate.
func OpenStore(ctx context.Context, c DBConfig) (Store, error) {
	return openStore(ctx, c, DBSession{}, "promocodes", nil)
}

// openStore opens the database for a deployable: its session limits, its
// name in the database's session list, and this process's clock (nil:
// time.Now) for the times the store stamps itself.
func openStore(ctx context.Context, c DBConfig, s DBSession, name string, clock func() time.Time) (Store, error) {
	switch c.Driver {
	case "sqlite":
		return sqlite.Open(ctx, sqliteConfig(c, s, clock))
	case "postgres":
		return postgres.Open(ctx, postgresConfig(c, s, name, clock))
	case "sqlserver":
		return sqlserver.Open(ctx, sqlserverConfig(c, s, clock))
	default:
		return nil, fmt.Errorf("db.driver: unsupported driver %q", c.Driver)
	}
}

// sqliteConfig, postgresConfig and sqlserverConfig are the store's Config
// of the db section and a deployable's session limits: what openStore opens
// and what Config.Validate checks.
func sqliteConfig(c DBConfig, s DBSession, clock func() time.Time) sqlite.Config {
	sc := sqlite.Config{Path: c.DSN, BusyTimeout: s.LockTimeout, Clock: clock}
	if strings.HasPrefix(c.DSN, "file:") {
		sc.Path, sc.DSN = "", c.DSN
	}
	return sc
}

func postgresConfig(c DBConfig, s DBSession, name string, clock func() time.Time) postgres.Config {
	return postgres.Config{DSN: c.DSN, MaxConns: int32(min(c.MaxConns, math.MaxInt32)),
		StatementTimeout: s.StatementTimeout, LockTimeout: s.LockTimeout, IdleInTransactionTimeout: s.IdleInTransactionTimeout,
		KeepAlive: c.KeepAlive, TCPUserTimeout: c.TCPUserTimeout, ApplicationName: name, Clock: clock}
}

func sqlserverConfig(c DBConfig, s DBSession, clock func() time.Time) sqlserver.Config {
	return sqlserver.Config{DSN: c.DSN, MaxConns: c.MaxConns, LockTimeout: s.LockTimeout,
		KeepAlive: c.KeepAlive, TCPUserTimeout: c.TCPUserTimeout, Clock: clock}
}

// MigrateResult is what Migrate did: the file names of the migrations it
// applied, in order (none when the schema was up to date), and the schema
// version the database is at.
type MigrateResult struct {
	Applied []string
	Version int64
}

// Migrate applies the schema migrations of the configured database and says
// what it applied.
func Migrate(ctx context.Context, cfg Config, log *zap.Logger) (MigrateResult, error) {
	st, err := OpenStore(ctx, cfg.DB)
	if err != nil {
		return MigrateResult{}, fmt.Errorf("open %s database: %w", cfg.DB.Driver, err)
	}
	defer st.Close()
	applied, version, err := st.MigrateReport(ctx)
	if err != nil {
		return MigrateResult{Applied: applied}, fmt.Errorf("migrate %s database (applied before the failure: %v): %w",
			cfg.DB.Driver, applied, err)
	}
	msg := "schema is up to date"
	if len(applied) > 0 {
		msg = fmt.Sprintf("applied %d migrations", len(applied))
	}
	log.Info(msg, zap.String("driver", cfg.DB.Driver), zap.Int64("version", version), zap.Strings("applied", applied))
	return MigrateResult{Applied: applied, Version: version}, nil
}

// drainTimeout is how long a stopping HTTP server lets requests finish.
const drainTimeout = 10 * time.Second

// httpServer serves h on lns (the sockets of one address: listen.Listen) until ctx
// ends, then drains for up to drainTimeout; requests still running then (a long CSV export to a slow
// client) are cancelled and their connections closed, so that the database
// pool can close and the process exits within its grace period.
//
// A client has http.readTimeout to send a whole request (headers and body)
// and an idle keep-alive connection is closed after http.idleTimeout. There
// is no total write timeout, since an export streams for as long as it takes;
// the API bounds each export write instead (api.Config.ExportStallTimeout).
func httpServer(ctx context.Context, lns []net.Listener, h http.Handler, c HTTPConfig, log *zap.Logger) error {
	base, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: min(10*time.Second, c.ReadTimeout), ReadTimeout: c.ReadTimeout,
		IdleTimeout: c.IdleTimeout, ErrorLog: zap.NewStdLog(log),
		BaseContext: func(net.Listener) context.Context { return base }}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- srv.Serve(ln) }()
	}
	select {
	case err := <-errc:
		_ = srv.Close()
		for range len(lns) - 1 {
			<-errc
		}
		return fmt.Errorf("serve http on %s: %w", lns[0].Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still running after the drain timeout; cancelling them", zap.Duration("drain", drainTimeout))
		cancelRequests()
		_ = srv.Close()
	}
	var first error
	for range lns {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && first == nil {
			first = err
		}
	}
	return first
}
