package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// The writer's commits are not flushed by SQLite (synchronous NORMAL): the
// store flushes the WAL after them, and nothing may be acknowledged before
// that flush, or a power cut could take back an answered redemption. With
// the flushes held, the redemptions (several groups: the writer goes on
// while a flush runs) and a write outside the groups are committed, a
// reader sees them, and none has returned; released, all return.
func TestNothingAcknowledgedBeforeItsFlush(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "promocodes.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	st = storetest.Migrated(t, st, err)
	vanity(t, st, "DURABLE", 1000, 1)
	reader, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	flushing, release := st.HoldFlushes()
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	const n = 40
	done := make(chan error, n+1)
	for i := range n {
		go func() {
			out, err := st.Redeem(ctx, redeemReq("DURABLE", fmt.Sprintf("u%d", i), fmt.Sprintf("k%d", i)))
			if err == nil && out.Refused != "" {
				err = fmt.Errorf("refused: %s", out.Refused)
			}
			done <- err
		}()
	}
	go func() {
		_, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "outside the groups",
			Kind: promo.KindVanity, VanityCode: "DURABLE2", MaxUsagePerCode: 1, PerUserLimit: 1}})
		done <- err
	}()
	select {
	case <-flushing:
	case <-time.After(10 * time.Second):
		t.Fatal("no flush began")
	}
	deadline := time.Now().Add(10 * time.Second)
	var used, promotions int
	for time.Now().Before(deadline) {
		if err := reader.QueryRow(`SELECT (SELECT used FROM codes WHERE code = 'DURABLE'), (SELECT count(*) FROM promotions)`).
			Scan(&used, &promotions); err != nil {
			t.Fatal(err)
		}
		if used == n && promotions == 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if used != n || promotions != 2 {
		t.Fatalf("with the flushes held: %d uses, %d promotions committed; want %d and 2 (the writer goes on)", used, promotions, n)
	}
	select {
	case err := <-done:
		t.Fatalf("a write was acknowledged (%v) before any flush completed", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	released = true
	for range n + 1 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("not answered after the flush")
		}
	}
	if st.Flushes() < 1 {
		t.Fatalf("%d flushes", st.Flushes())
	}
	groups, members, _, _ := st.GroupStats()
	t.Logf("%d redemptions in %d groups, %d flushes", members, groups, st.Flushes())
}

// The flush follows the WAL file: removed, there is nothing to flush (a
// checkpoint put it in the database file); replaced by a new file, the new
// one is flushed.
func TestFlushFollowsTheWALFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "promocodes.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	st = storetest.Migrated(t, st, err)
	vanity(t, st, "WAL1", 10, 1)
	before := st.Flushes()
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no WAL after a write: %v", err)
	}
	// Another store on the file, opened after this one closed: a new WAL.
	st.Close()
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Log("the WAL outlived the store's close")
	}
	st2, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	vanity(t, st2, "WAL2", 10, 1)
	if st2.Flushes() < 1 || before < 1 {
		t.Fatalf("flushes: %d then %d, want some on each store", before, st2.Flushes())
	}
	out, err := st2.Redeem(ctx, redeemReq("WAL2", "u", ""))
	if err != nil || out.Refused != "" {
		t.Fatalf("redeem: %+v, %v", out, err)
	}
}
