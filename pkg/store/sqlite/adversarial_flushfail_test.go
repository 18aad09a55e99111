//go:build integration

package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(es)
}

// settle waits until the goroutines and descriptors are back to at most
// base (the pools' and the driver's end asynchronously), and reports them.
func settle(t *testing.T, gBase, fdBase int) (g, fd int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		g, fd = runtime.NumGoroutine(), openFDs(t)
		if (g <= gBase && fd <= fdBase) || time.Now().After(deadline) {
			return g, fd
		}
	}
}

// TestAdversarialFlushFails: with the flushes held, every write path (the
// durableCases) and 40 grouped redemptions commit and wait; the flush then
// fails (EIO). Every one must answer an error (none success: their commits
// may be lost), the group members each the flush's; later writes fail too
// (sticky) and answer at once; Close leaves no goroutine or descriptor.
func TestAdversarialFlushFails(t *testing.T) {
	gBase, fdBase := runtime.NumGoroutine(), openFDs(t)
	w := newDurableWorld(t, 0)
	cases := durableCases()
	ops := make([]func() error, len(cases))
	for i, c := range cases {
		ops[i] = c.setup(w)
	}
	_, code := w.vanity(1000)
	flushing, release := w.st.HoldFlushes()
	const n = 40
	type answer struct {
		name string
		err  error
	}
	done := make(chan answer, len(ops)+n)
	for i, op := range ops {
		go func() { done <- answer{cases[i].name, op()} }()
	}
	for i := range n {
		go func() {
			out, err := w.st.Redeem(w.ctx, redeemReq(code, fmt.Sprintf("ff%d", i), fmt.Sprintf("ffk%d", i)))
			if err == nil && out.Refused != "" {
				err = fmt.Errorf("refused %s", out.Refused)
			}
			done <- answer{"group member", err}
		}()
	}
	select {
	case <-flushing:
	case <-time.After(10 * time.Second):
		t.Fatal("no flush began")
	}
	time.Sleep(500 * time.Millisecond) // the rest commit behind it and wait
	injected := syscall.EIO
	w.st.FailFlushes(injected)
	release()
	ok, failed, flushErr := 0, 0, 0
	for range len(ops) + n {
		select {
		case a := <-done:
			switch {
			case a.err == nil:
				ok++
				t.Errorf("%s answered success after its flush failed", a.name)
			case errors.Is(a.err, injected):
				flushErr++
				failed++
			default:
				failed++
				t.Logf("%s: %v", a.name, a.err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("deadlock: %d answered, %d not", ok+failed, len(ops)+n-ok-failed)
		}
	}
	groups, members, _, _ := w.st.GroupStats()
	t.Logf("adversarial: flush fails [sqlite]: %d success, %d errors (%d the flush's) of %d calls; %d members in %d groups",
		ok, failed, flushErr, len(ops)+n, members, groups)
	// Sticky: the next writes fail, at once.
	start := time.Now()
	_, err := w.st.Redeem(w.ctx, redeemReq(code, "after", "afterk"))
	_, _, err2 := w.st.CreatePromotion(w.ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "after",
		Kind: promo.KindVanity, VanityCode: "AFTERFAIL", MaxUsagePerCode: 1, PerUserLimit: 1}})
	if !errors.Is(err, injected) || !errors.Is(err2, injected) {
		t.Errorf("after the failed flush: redeem %v, create %v; want the flush's error", err, err2)
	}
	t.Logf("adversarial: flush fails, later writes [sqlite]: redeem %v; create %v (%s)", err != nil, err2 != nil,
		time.Since(start).Round(time.Millisecond))
	w.st.Close()
	w.conn.Close()
	g, fd := settle(t, gBase+2, fdBase+2)
	t.Logf("adversarial: flush fails, after Close [sqlite]: goroutines %d (base %d), descriptors %d (base %d)", g, gBase, fd, fdBase)
	if g > gBase+2 || fd > fdBase+2 { // the test's reader pool may keep one of each
		t.Errorf("leak: goroutines %d (base %d), descriptors %d (base %d)", g, gBase, fd, fdBase)
	}
}

// TestAdversarialFlushRandomHolds (run it with -race): grouped redemptions
// from 16 goroutines while the flushes are held and released at random;
// every answered redemption is in the database, every use answered; then
// Close races answers still waiting for a held flush: no panic, every one
// answered, no descriptor or goroutine left.
func TestAdversarialFlushRandomHolds(t *testing.T) {
	gBase, fdBase := runtime.NumGoroutine(), openFDs(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "promocodes.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	st = storetest.Migrated(t, st, err)
	vanity(t, st, "RANDHOLD", 1_000_000, 1_000_000)
	var (
		stop     atomic.Bool
		answered atomic.Int64
		wg       sync.WaitGroup
	)
	for g := range 16 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				out, err := st.Redeem(ctx, redeemReq("RANDHOLD", fmt.Sprintf("g%d", g), fmt.Sprintf("g%d-%d", g, i)))
				if err != nil || out.Refused != "" {
					t.Errorf("redeem: %+v, %v", out, err)
					return
				}
				answered.Add(1)
			}
		})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	holds := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		_, release := st.HoldFlushes()
		holds++
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		release()
		time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	db := sqlite.RawDB(t, path)
	var used int64
	if err := db.QueryRow(`SELECT used FROM codes WHERE code = 'RANDHOLD'`).Scan(&used); err != nil {
		t.Fatal(err)
	}
	if used != answered.Load() {
		t.Errorf("%d uses committed, %d answered", used, answered.Load())
	}
	groups, members, _, _ := st.GroupStats()
	t.Logf("adversarial: random holds [sqlite]: %d redemptions answered in %d groups, %d holds, %d flushes", members, groups,
		holds, st.Flushes())

	// Close while answers wait for a held flush.
	flushing, release := st.HoldFlushes()
	const n = 30
	done := make(chan error, n)
	for i := range n {
		go func() {
			out, err := st.Redeem(ctx, redeemReq("RANDHOLD", fmt.Sprintf("c%d", i), fmt.Sprintf("c%d", i)))
			if err == nil && out.Refused != "" {
				err = fmt.Errorf("refused %s", out.Refused)
			}
			done <- err
		}()
	}
	<-flushing
	time.Sleep(200 * time.Millisecond)
	closed := make(chan struct{})
	go func() { st.Close(); close(closed) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-closed:
		t.Log("Close returned with a flush held")
	default:
		t.Log("Close waits for the held flush")
	}
	release()
	var ok, failed int
	for range n {
		select {
		case err := <-done:
			if err != nil {
				failed++
				t.Logf("answer after Close: %v", err)
			} else {
				ok++
			}
		case <-time.After(20 * time.Second):
			t.Fatal("an answer never came after Close")
		}
	}
	<-closed
	db.Close()
	// Every success must be on disk: reopen and count.
	var after int64
	check := sqlite.RawDB(t, path)
	if err := check.QueryRow(`SELECT used FROM codes WHERE code = 'RANDHOLD'`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	check.Close()
	if after < used+int64(ok) {
		t.Errorf("after Close: %d uses, want at least %d + %d answered", after, used, ok)
	}
	g, fd := settle(t, gBase, fdBase)
	t.Logf("adversarial: Close racing answers [sqlite]: %d success, %d errors, %d uses after; goroutines %d (base %d), descriptors %d (base %d)",
		ok, failed, after-used, g, gBase, fd, fdBase)
	if g > gBase+1 || fd > fdBase {
		t.Errorf("leak after Close: goroutines %d (base %d), descriptors %d (base %d)", g, gBase, fd, fdBase)
	}
}

// TestAdversarialTwoStoresOneFile: two stores (two Opens, as two
// processes would) on one file. A's flushes held, A's redemption commits
// and waits; B's commits and is answered after B's own flush (it flushes
// the same WAL file) while A still waits. Then the WAL is replaced between
// A's commit and A's flush: both stores close (A's Close waits for its held
// flush, after its pools closed; B's close is the last connection:
// checkpoint and WAL removed), C opens the file and writes (a new WAL);
// released, A's flush finds the new file, A's redemption is answered, and
// it is in the database.
func TestAdversarialTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	gBase, fdBase := runtime.NumGoroutine(), openFDs(t)
	path := filepath.Join(t.TempDir(), "promocodes.db")
	a, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	a = storetest.Migrated(t, a, err)
	b, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	vanity(t, a, "TWOSTORES", 100, 1)
	redeem := func(s *sqlite.Store, user string) chan error {
		ch := make(chan error, 1)
		go func() {
			out, err := s.Redeem(ctx, redeemReq("TWOSTORES", user, user))
			if err == nil && out.Refused != "" {
				err = fmt.Errorf("refused %s", out.Refused)
			}
			ch <- err
		}()
		return ch
	}
	walBefore, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	flushing, release := a.HoldFlushes()
	doneA := redeem(a, "a1")
	<-flushing
	select {
	case err := <-redeem(b, "b1"):
		if err != nil {
			t.Fatalf("B: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B not answered while A's flush is held")
	}
	select {
	case err := <-doneA:
		t.Fatalf("A answered (%v) before its own flush (B's flush covered its frames, but A cannot know)", err)
	case <-time.After(100 * time.Millisecond):
	}
	t.Logf("adversarial: two stores, B answered while A's flush held [sqlite]: held (A waits, B's flush %d)", b.Flushes())

	closedA := make(chan struct{})
	go func() { a.Close(); close(closedA) }()
	time.Sleep(200 * time.Millisecond) // A's pools close, then Close waits for the held flush
	b.Close()
	_, statErr := os.Stat(path + "-wal")
	c, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Redeem(ctx, redeemReq("TWOSTORES", "c1", "c1")); err != nil || out.Refused != "" {
		t.Fatalf("C: %+v, %v", out, err)
	}
	walAfter, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	replaced := !os.SameFile(walBefore, walAfter)
	release()
	select {
	case err := <-doneA:
		if err != nil {
			t.Errorf("A after its flush over a replaced WAL: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("A not answered after release")
	}
	<-closedA
	var users int
	if err := c.DB().QueryRow(ctx, `SELECT count(*) FROM redemptions WHERE user_id IN ('a1', 'b1', 'c1')`).Scan(&users); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if users != 3 {
		t.Errorf("%d of the 3 redemptions in the database", users)
	}
	g, fd := settle(t, gBase, fdBase)
	t.Logf("adversarial: two stores, WAL replaced between A's commit and its flush [sqlite]: WAL gone after both closed: %t, replaced: %t, A answered, %d of 3 redemptions; goroutines %d (base %d), descriptors %d (base %d)",
		statErr != nil, replaced, users, g, gBase, fd, fdBase)
	if g > gBase+1 || fd > fdBase {
		t.Errorf("leak: goroutines %d (base %d), descriptors %d (base %d)", g, gBase, fd, fdBase)
	}
}
