package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/promocodes/promocodes/pkg/store/sqlite"
)

// Migrations commit on the writer like everything else: a migration run
// whose WAL flush failed must not answer success (the schema may not be on
// disk), and the store answers errors from then on, as after any failed
// flush. Migrate, MigrateReport both.
func TestMigrateFailsWhenItsFlushFails(t *testing.T) {
	ctx := context.Background()
	injected := errors.New("injected fsync failure")
	for _, report := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "promocodes.db")
		st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		st.FailFlushes(injected)
		if report {
			_, _, err = st.MigrateReport(ctx)
		} else {
			err = st.Migrate(ctx)
		}
		if !errors.Is(err, injected) {
			t.Errorf("report=%t: migrate with its flush failing: %v, want the flush's error", report, err)
		}
		// Sticky: a second run (nothing to apply) fails too.
		if err := st.Migrate(ctx); !errors.Is(err, injected) {
			t.Errorf("report=%t: migrate again after the failed flush: %v, want the flush's error", report, err)
		}
		st.Close()
	}
}
