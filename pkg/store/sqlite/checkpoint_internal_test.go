package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckpointerCopiesTheWAL writes 4 MB in 40 transactions, far below
// the writer's wal_autocheckpoint (10,000 pages): with the checkpointer the
// pages reach the database file within a few ticks; without it they stay in
// the WAL.
func TestCheckpointerCopiesTheWAL(t *testing.T) {
	for _, on := range []bool{true, false} {
		name := map[bool]string{true: "on", false: "off"}[on]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, path := blobStore(t, on)
			for range 40 {
				if _, err := s.w.ExecContext(ctx, "INSERT INTO blobs VALUES (randomblob(100000))"); err != nil {
					t.Fatal(err)
				}
			}
			var size int64
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(CheckpointEvery) {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if size = fi.Size(); on && size >= 4e6 {
					break
				}
			}
			t.Logf("checkpointer %s: database file %d bytes", name, size)
			if on && size < 4e6 {
				t.Errorf("database file %d bytes 2 s after 4 MB committed: the checkpointer copied nothing", size)
			}
			if !on && size >= 1e6 {
				t.Errorf("database file %d bytes without the checkpointer: the test no longer tells it apart", size)
			}
		})
	}
}

// withCheckpointEvery sets the store's checkpoint interval for t (0: off).
func withCheckpointEvery(t *testing.T, d time.Duration) {
	old := checkpointEvery
	checkpointEvery = d
	t.Cleanup(func() { checkpointEvery = old })
}

// blobStore opens a store on a new file, its checkpointer on or off, with
// a table of blobs to write; it returns the store and the file's path.
func blobStore(t *testing.T, checkpointer bool) (*Store, string) {
	t.Helper()
	if !checkpointer {
		withCheckpointEvery(t, 0)
	}
	path := filepath.Join(t.TempDir(), "promocodes.db")
	s, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.w.ExecContext(context.Background(), "CREATE TABLE blobs (b BLOB)"); err != nil {
		t.Fatal(err)
	}
	return s, path
}
