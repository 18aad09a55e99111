//go:build integration

package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// rawDB opens path with a connection pool of the test's own.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// keyRecords reads and damages the idempotency records of the database db.
func keyRecords(db *sql.DB) storetest.KeyRecords {
	return storetest.KeyRecords{
		Orphans: func(ctx context.Context) (n int, err error) {
			err = db.QueryRowContext(ctx, storetest.OrphanKeys).Scan(&n)
			return n, err
		},
		DropRedemption: func(ctx context.Context, id string) error {
			_, err := db.ExecContext(ctx, "DELETE FROM redemptions WHERE id = ?", id)
			return err
		},
	}
}

func TestAdversarialIdempotencyKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "promocodes.db")
	s, err := Open(context.Background(), Config{Path: path})
	s = storetest.Migrated(t, s, err)
	storetest.AdversarialIdempotencyKeys(t, "sqlite", s, keyRecords(rawDB(t, path)))
}

// envCrashChild makes the test binary the process TestAdversarialCrash
// kills: it redeems on the database at this path until killed.
const envCrashChild = "PROMOCODES_ADV_CRASH_CHILD"

// TestAdversarialCrash kills (SIGKILL) a process redeeming with keys
// through group commit, its checkpointer running every millisecond (so the
// kill often lands mid-checkpoint), three times on one file. After each
// kill the file passes integrity_check, every answer the process gave is
// replayed as given (its redemptions committed), no key record names a
// missing redemption, and uses equal audit rows.
func TestAdversarialCrash(t *testing.T) {
	if path := os.Getenv(envCrashChild); path != "" {
		checkpointEvery = time.Millisecond
		s, err := Open(context.Background(), Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		storetest.CrashLoad(context.Background(), s, strings.Fields(os.Getenv(envCrashChild+"_CODES")), os.Stdout)
		return
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "promocodes.db")
	s, err := Open(ctx, Config{Path: path})
	s = storetest.Migrated(t, s, err)
	s.Close()
	for round := range 3 {
		s, err := Open(ctx, Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		codes := storetest.CrashCodes(t, s) // fresh codes each round
		s.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^TestAdversarialCrash$")
		cmd.Env = append(os.Environ(), envCrashChild+"="+path, envCrashChild+"_CODES="+strings.Join(codes, " "))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var lines []string
		read := make(chan struct{})
		go func() {
			defer close(read)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
		}()
		time.Sleep(time.Duration(700+rand.IntN(800)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-read
		cmd.Wait() //nolint:errcheck // killed
		s, err = Open(ctx, Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		raw := rawDB(t, path)
		var check string
		if err := raw.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
			t.Errorf("round %d: integrity_check %q, %v", round, check, err)
		}
		summary := storetest.CheckAfterCrash(t, s, keyRecords(raw), codes, lines)
		s.Close()
		state := ""
		if t.Failed() {
			state = "FAILED: "
		}
		t.Logf("adversarial: SIGKILL mid-group, checkpointer every 1ms, round %d [sqlite]: %sintegrity_check %s; %s",
			round, state, check, summary)
	}
}
