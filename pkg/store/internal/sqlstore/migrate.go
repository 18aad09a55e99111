package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

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
