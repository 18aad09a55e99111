package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// walFile is the database's WAL file, which the store's Syncer flushes
// after the writer's commits (synchronous NORMAL: SQLite writes a commit's
// frames but does not fsync them). An fsync on a descriptor of our own
// flushes the file's pages whoever wrote them; the frames of a commit are
// either still in the WAL or were copied to the database file by a
// checkpoint, which flushes both (WAL before, database after) at NORMAL.
//
// Concurrency: safe for concurrent use (the Syncer runs one flush at a
// time).
type walFile struct {
	path string
	mu   sync.Mutex
	f    *os.File // open on path's current file, or nil
	// closed: the store closed; a flush still asked for (an answer after
	// Close) opens the file for itself and closes it again.
	closed bool
	// before, if set (tests), runs as each flush begins; fail, if set
	// (tests; set without mu, so while a flush is held), is then the
	// flush's error instead of the fsync's.
	before func()
	fail   atomic.Pointer[error]
}

// openWAL finds the WAL of the database w writes (its main file's name, as
// SQLite resolved it, with -wal).
func openWAL(ctx context.Context, w *sql.DB) (*walFile, error) {
	var path string
	if err := w.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
		return nil, fmt.Errorf("sqlite: find the database file: %w", err)
	}
	if path == "" {
		return nil, errors.New("sqlite: the database has no file (a temporary database): not supported")
	}
	return &walFile{path: path + "-wal"}, nil
}

// sync flushes the WAL to disk. A WAL that is gone was checkpointed into
// the database file and removed by the last connection to close, which
// flushed both; one replaced since (a new file) is opened again, and its
// directory entry flushed as SQLite does when it creates a journal.
func (w *walFile) sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.before != nil {
		w.before()
	}
	if err := w.fail.Load(); err != nil {
		return *err
	}
	fi, err := os.Stat(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		w.closeFile()
		return nil
	} else if err != nil {
		return fmt.Errorf("stat %s: %w", w.path, err)
	}
	if w.f != nil {
		if cur, err := w.f.Stat(); err != nil || !os.SameFile(cur, fi) {
			w.closeFile()
		}
	}
	if w.f == nil {
		f, err := os.OpenFile(w.path, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed after the Stat: as above
		} else if err != nil {
			return fmt.Errorf("open %s: %w", w.path, err)
		}
		if err := syncDir(filepath.Dir(w.path)); err != nil {
			f.Close()
			return err
		}
		w.f = f
	}
	err = w.f.Sync()
	if w.closed {
		w.closeFile()
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", w.path, err)
	}
	return nil
}

// syncDir flushes directory dir's entries.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

func (w *walFile) closeFile() {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
}

// close closes the descriptor.
func (w *walFile) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.closeFile()
}
