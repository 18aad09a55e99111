//go:build integration

package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// withCheckpointEvery sets the checkpointer's interval (0: off) for t.

// walSize is the size of path's WAL (0 when there is none: a clean close
// removes it).
func walSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path + "-wal")
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestAdversarialCheckpointWALBound writes 16 MB while a reader holds a
// snapshot from before them, then 16 MB more after it lets go, with the
// checkpointer on and off. A held snapshot pins the WAL either way (no
// checkpoint may pass it); the checkpointer must not make that worse, nor
// the WAL after the reader is gone (at full speed it keeps the WAL from
// growing further: the writer restarts it from the top once a checkpoint
// copied it all; under -race the copy is too slow to catch up, and the WAL
// grows as it does without the checkpointer).
func TestAdversarialCheckpointWALBound(t *testing.T) {
	const mb = 1 << 20
	sizes := map[string][2]int64{}
	for _, on := range []bool{true, false} {
		name := map[bool]string{true: "on", false: "off"}[on]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, path := blobStore(t, on)
			write := func(n int) {
				for range n {
					if _, err := s.w.ExecContext(ctx, "INSERT INTO blobs VALUES (randomblob(100000))"); err != nil {
						t.Fatal(err)
					}
					time.Sleep(time.Millisecond) // let the checkpointer's ticks in
				}
			}
			reader, err := rawDB(t, path).Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer reader.Close()
			if _, err := reader.ExecContext(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := reader.QueryRowContext(ctx, "SELECT count(*) FROM blobs").Scan(&n); err != nil {
				t.Fatal(err)
			}
			write(160)
			held := walSize(t, path)
			if _, err := reader.ExecContext(ctx, "COMMIT"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(4 * CheckpointEvery)
			var most int64
			for range 8 {
				write(20)
				most = max(most, walSize(t, path))
			}
			sizes[name] = [2]int64{held, most}
			state := ""
			if t.Failed() {
				state = "FAILED: "
			}
			t.Logf("adversarial: WAL under a held snapshot, checkpointer %s [sqlite]: %s%.1f MB while held, "+
				"at most %.1f MB over 16 MB more after", name, state, float64(held)/mb, float64(most)/mb)
		})
	}
	on, off := sizes["on"], sizes["off"]
	if on[0] > off[0]+mb || on[1] > off[1]+mb {
		t.Errorf("WAL while a snapshot was held, and after: %d and %d bytes with the checkpointer, %d and %d without",
			on[0], on[1], off[0], off[1])
	}
	state := ""
	if t.Failed() {
		state = "FAILED: "
	}
	t.Logf("adversarial: WAL bound, checkpointer on vs off [sqlite]: %sheld %.1f vs %.1f MB, after %.1f vs %.1f MB",
		state, float64(on[0])/mb, float64(off[0])/mb, float64(on[1])/mb, float64(off[1])/mb)
}

// TestAdversarialCheckpointTwoStores: two stores on one file, each with its
// checkpointer (every millisecond), redeem one code concurrently: no
// error, uses = audit rows = redemptions answered, integrity_check ok.
func TestAdversarialCheckpointTwoStores(t *testing.T) {
	withCheckpointEvery(t, time.Millisecond)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "promocodes.db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(ctx, Config{Path: path, BusyTimeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	const max, n = 1500, 2000
	p, _, err := stores[0].CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "two",
		Kind: promo.KindVanity, VanityCode: "TWO", MaxUsagePerCode: max}})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu             sync.Mutex
		redeemed, errs int
		refused        = map[promo.Reason]int{}
		wg             sync.WaitGroup
		firstErr       error
	)
	for g := range 16 {
		wg.Go(func() {
			s := stores[g%2]
			for i := range n / 16 {
				req := promo.RedeemRequest{ID: storetestID(), EventID: storetestID(), Code: "TWO",
					UserID: fmt.Sprintf("u%d-%d", g, i), Now: time.Now().UTC()}
				if i%2 == 0 {
					req.IdempotencyKey, req.RequestHash = "two-"+req.UserID, "h"
				}
				out, err := s.Redeem(ctx, req)
				mu.Lock()
				switch {
				case err != nil:
					errs++
					firstErr = cmpOr(firstErr, err)
				case out.Refused == "":
					redeemed++
				default:
					refused[out.Refused]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st, err := stores[0].CodeState(ctx, "TWO", "")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	if err := stores[1].ExportRedemptions(ctx, promo.RedemptionFilter{PromotionID: p.ID}, func(promo.Redemption) error {
		rows++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var check string
	if err := rawDB(t, path).QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
		t.Fatal(err)
	}
	if errs != 0 || redeemed != max || st.Used != max || rows != max || refused[promo.ReasonCodeExhausted] != n-max ||
		check != "ok" {
		t.Errorf("%d errors (first %v), %d redeemed, %v refused, used %d, %d audit rows, integrity %q; want none, "+
			"%d, %d code_exhausted, %d, %d, ok", errs, firstErr, redeemed, refused, st.Used, rows, check, max, n-max, max, max)
	}
	state := ""
	if t.Failed() {
		state = "FAILED: "
	}
	t.Logf("adversarial: two stores on one file, checkpointers every 1ms [sqlite]: %s%d redemptions: %d redeemed, "+
		"%v refused, %d errors; used %d = %d audit rows; integrity_check %s", state, n, redeemed, refused, errs,
		st.Used, rows, check)
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// goroutinesBack waits for the goroutine count to fall back to base.
func goroutinesBack(base int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(3 * time.Second); n > base && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// TestAdversarialCheckpointCloseAndOpenFailing: stores closed at random
// moments of a checkpointer ticking every 100µs while a writer commits, and
// Opens whose context ends at every moment from the start to the end of
// Open (some fail at the writer's ping, before the checkpointer starts;
// some at the ping of both pools, after it started): no goroutine is left.
func TestAdversarialCheckpointCloseAndOpenFailing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "promocodes.db")
	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "CREATE TABLE t (b BLOB)"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	base := goroutinesBack(runtime.NumGoroutine())
	withCheckpointEvery(t, 100*time.Microsecond)
	for i := range 100 {
		s, err := Open(ctx, Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		for range i % 7 {
			if _, err := s.w.ExecContext(ctx, "INSERT INTO t VALUES (randomblob(20000))"); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Duration(i%5) * 100 * time.Microsecond)
		s.Close()
	}
	afterClose := goroutinesBack(base)
	outcomes := map[string]int{}
	for d := time.Duration(0); d < 3*time.Millisecond; d += 20 * time.Microsecond {
		octx, cancel := context.WithTimeout(ctx, d)
		s, err := Open(octx, Config{Path: path})
		cancel()
		switch {
		case err == nil:
			outcomes["opened"]++
			s.Close()
		case strings.Contains(err.Error(), "ping"):
			outcomes["failed after the checkpointer started"]++
		case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "open"):
			outcomes["failed before"]++
		default:
			outcomes[err.Error()]++
		}
	}
	afterOpen := goroutinesBack(base)
	if afterClose > base || afterOpen > base {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after 100 Opens and Closes, %d after the failing Opens %v:\n%s",
			base, afterClose, afterOpen, outcomes, buf[:runtime.Stack(buf, true)])
	}
	state := ""
	if t.Failed() {
		state = "FAILED: "
	}
	t.Logf("adversarial: Close racing a tick, Open failing halfway [sqlite]: %sgoroutines %d before, %d after 100 "+
		"Close at random moments of a 100µs checkpointer, %d after Opens cut short %v", state, base, afterClose,
		afterOpen, outcomes)
}

// envBlobChild makes the test binary the process
// TestAdversarialCheckpointKilled kills: it writes blobs to the database at
// this path until killed.
const envBlobChild = "PROMOCODES_ADV_BLOB_CHILD"

// TestAdversarialCheckpointKilled kills (SIGKILL) a process writing 64 KB
// rows through the store's writer while its checkpointer copies them
// (every millisecond: most kills land inside a checkpoint), five times on
// one file: after each, integrity_check is ok and every row the process
// reported committed is there.
func TestAdversarialCheckpointKilled(t *testing.T) {
	ctx := context.Background()
	if path := os.Getenv(envBlobChild); path != "" {
		checkpointEvery = time.Millisecond
		s, err := Open(ctx, Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		for {
			res, err := s.w.ExecContext(ctx, "INSERT INTO blobs (b) VALUES (randomblob(65536))")
			if err != nil {
				t.Fatal(err)
			}
			id, _ := res.LastInsertId()
			fmt.Println(id)
		}
	}
	path := filepath.Join(t.TempDir(), "promocodes.db")
	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAdversarialCheckpointKilled$")
		cmd.Env = append(os.Environ(), envBlobChild+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var acked int64
		read, first := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(read)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if id, err := strconv.ParseInt(sc.Text(), 10, 64); err == nil {
					if acked == 0 {
						close(first)
					}
					acked = id
				}
			}
		}()
		// The kill lands while the process writes: after its first commit
		// (a loaded machine takes seconds to start it), then at a random
		// moment.
		select {
		case <-first:
		case <-read:
			t.Fatalf("round %d: the writing process ended before its first commit", round)
		case <-time.After(time.Minute):
			t.Fatalf("round %d: no commit from the writing process in a minute", round)
		}
		time.Sleep(time.Duration(200+rand.IntN(700)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-read
		cmd.Wait() //nolint:errcheck // killed
		wal := walSize(t, path)
		s, err := Open(ctx, Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		var check string
		var n, top int64
		if err := s.w.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
			t.Fatal(err)
		}
		if err := s.w.QueryRowContext(ctx, "SELECT count(*), COALESCE(max(id), 0) FROM blobs").Scan(&n, &top); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if check != "ok" || top < acked || n != top {
			t.Errorf("round %d: integrity_check %q, %d rows up to id %d; the killed process reported id %d committed",
				round, check, n, top, acked)
		}
		state := ""
		if t.Failed() {
			state = "FAILED: "
		}
		t.Logf("adversarial: SIGKILL mid-checkpoint, round %d [sqlite]: %sWAL %.1f MB at the kill; integrity_check %s; "+
			"%d rows, the last reported committed (%d) among them", round, state, float64(wal)/(1<<20), check, n, acked)
	}
}

// TestAdversarialCheckpointSustainedWrites commits 1 MB transactions back
// to back, 160 MB in all (4 times the writer's wal_autocheckpoint of 10,000
// pages), with the checkpointer on and off, and compares the WAL's largest
// size. Off, the writer's own checkpoint (after the commit that passes
// 10,000 pages) copies the whole WAL while no one appends, so the WAL
// restarts from the top: about 40 MB at most. On, the checkpointer must not
// let it grow with what is written: a quarter over that at most. (While a
// pass of the checkpointer holds the checkpoint lock, the writer's own
// checkpoint after a commit finds it busy and the WAL grows by the commits
// until the next one; under load that was 4 MB over 40, once.)
func TestAdversarialCheckpointSustainedWrites(t *testing.T) {
	const mb = 1 << 20
	most := map[string]int64{}
	for _, on := range []bool{false, true} {
		name := map[bool]string{true: "on", false: "off"}[on]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, path := blobStore(t, on)
			start := time.Now()
			for range 160 {
				if _, err := s.w.ExecContext(ctx, "INSERT INTO blobs VALUES (randomblob(1048576))"); err != nil {
					t.Fatal(err)
				}
				most[name] = max(most[name], walSize(t, path))
			}
			t.Logf("adversarial: WAL under sustained writes, checkpointer %s [sqlite]: 160 MB in %s, WAL at most %.1f MB",
				name, time.Since(start).Round(time.Millisecond), float64(most[name])/mb)
		})
	}
	if most["on"] > most["off"]*5/4 {
		t.Errorf("WAL at most %.1f MB with the checkpointer, %.1f MB without: it defeats wal_autocheckpoint's bound",
			float64(most["on"])/mb, float64(most["off"])/mb)
	}
	state := ""
	if t.Failed() {
		state = "FAILED: "
	}
	t.Logf("adversarial: WAL bound under sustained writes, on vs off [sqlite]: %s%.1f vs %.1f MB", state,
		float64(most["on"])/mb, float64(most["off"])/mb)
}
