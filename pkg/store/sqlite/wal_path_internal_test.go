package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// The flush finds the WAL SQLite writes, however the database was named: a
// path through a symlinked file or directory, a relative one. A WAL path
// that named no file would make every flush "nothing to do" (the WAL
// gone), silently flushing nothing.
func TestFlushFindsTheWALThroughSymlinks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(real, "b.db"), filepath.Join(dir, "linkfile.db")); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, filepath.Join(real, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "linkdir", "a.db"), filepath.Join(dir, "linkfile.db"), rel} {
		s, err := Open(ctx, Config{Path: path})
		s = storetest.Migrated(t, s, err)
		if _, err := s.DB().Exec(ctx, `CREATE TABLE IF NOT EXISTS probe (x)`); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(s.wal.path); err != nil {
			t.Errorf("%s: the flush's WAL %s: %v", path, s.wal.path, err)
		}
		s.Close()
	}
}
