// Package schema runs a store's goose migrations the same way for every
// dialect and says what it applied. The stores build the goose Provider
// (dialect, connection, locker); this package only drives it.
package schema

import (
	"context"
	"fmt"
	"path"

	"github.com/pressly/goose/v3"
)

// Up applies the pending migrations up to version, or all of them for 0, and
// returns the file names of those it applied, in order, and the version the
// database is at afterwards.
func Up(ctx context.Context, p *goose.Provider, version int64) (applied []string, at int64, err error) {
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
	if err != nil {
		return applied, 0, err
	}
	if at, err = p.GetDBVersion(ctx); err != nil {
		return applied, 0, fmt.Errorf("read the schema version: %w", err)
	}
	return applied, at, nil
}
