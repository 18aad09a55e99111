package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// CheckpointEvery is how often the store's checkpointer copies the WAL's
// committed pages into the database file.
const CheckpointEvery = 50 * time.Millisecond

// checkpointEvery is CheckpointEvery; tests turn the checkpointer off.
var checkpointEvery = CheckpointEvery

// Checkpoint runs a passive checkpoint every interval on a connection of its
// own to the database at dsn, until ctx ends. In WAL mode the connection
// that commits past wal_autocheckpoint pages runs the checkpoint itself,
// right after its commit: on the store's one writer that is a pause of tens
// of milliseconds for every redemption waiting behind it (the p99 of a flash
// sale). A passive checkpoint elsewhere copies the pages while the writer
// goes on (it takes no lock the writer waits for), so the writer's own
// checkpoint finds little left to copy; wal_autocheckpoint still bounds the
// WAL if this one falls behind. A failed checkpoint is retried at the next
// tick: it leaves the work to the writer, as without this.
func Checkpoint(ctx context.Context, dsn string, interval time.Duration) error {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("sqlite: open the checkpointer: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if interval <= 0 {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		// The checkpoint runs to its end once begun: cancelling it midway
		// would only waste the pages copied.
		db.ExecContext(context.WithoutCancel(ctx), "PRAGMA wal_checkpoint(PASSIVE)") //nolint:errcheck // see above
	}
}
