package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// CheckpointEvery is how often the store's checkpointer copies the WAL's
// committed pages into the database file.
const CheckpointEvery = 50 * time.Millisecond

// checkpointEvery is CheckpointEvery; tests turn the checkpointer off.
var checkpointEvery = CheckpointEvery

// StartCheckpoints runs a passive checkpoint every interval on a connection
// of its own to the database at dsn (none if interval is not positive) and
// returns the function that stops it and waits for it. In WAL mode the
// connection that commits past wal_autocheckpoint pages runs the checkpoint
// itself, right after its commit: on the store's one writer that is a pause
// of tens of milliseconds for every redemption waiting behind it (the p99 of
// a flash sale). A passive checkpoint elsewhere copies the pages while the
// writer goes on (it takes no lock the writer waits for), so the writer's
// own checkpoint finds little left to copy; wal_autocheckpoint still bounds
// the WAL if this one falls behind. A failed checkpoint is retried at the
// next tick: it leaves the work to the writer, as without this.
func StartCheckpoints(dsn string, interval time.Duration) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	// sql.Open fails only for a driver not registered; this package's is.
	db, _ := sql.Open("sqlite", dsn)
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer db.Close()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// The checkpoint runs to its end once begun: cancelling it
			// midway would only waste the pages copied.
			db.Exec("PRAGMA wal_checkpoint(PASSIVE)") //nolint:errcheck // see above
		}
	}()
	return func() { cancel(); <-done }
}
