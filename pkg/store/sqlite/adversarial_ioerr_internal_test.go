//go:build integration && linux

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// breakReads makes every descriptor of this process open on the database
// file at path read a directory instead: SQLite's next read of a page it
// has not cached fails (EISDIR: SQLITE_IOERR_READ), its writes to the WAL
// go on. It returns the function that puts the descriptors back.
func breakReads(t *testing.T, path string) (restore func()) {
	t.Helper()
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []int // all of them before any is duplicated
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd == int(dir.Fd()) {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == want {
			fds = append(fds, fd)
		}
	}
	saved := map[int]int{}
	for _, fd := range fds {
		keep, err := syscall.Dup(fd)
		if err != nil {
			t.Fatal(err)
		}
		saved[fd] = keep
		if err := syscall.Dup3(int(dir.Fd()), fd, syscall.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
	}
	if len(saved) == 0 {
		t.Fatalf("no descriptor open on %s", want)
	}
	return func() {
		for fd, keep := range saved {
			if err := syscall.Dup3(keep, fd, syscall.O_CLOEXEC); err != nil {
				t.Errorf("restore descriptor %d: %v", fd, err)
			}
			syscall.Close(keep)
		}
		dir.Close()
	}
}

// TestAdversarialGroupReadFails: a member's read-only statement fails with
// an error on which SQLite rolls the whole transaction back by itself (a
// real SQLITE_IOERR_READ: the replay of a key reads its redemption from a
// page the writer has not cached, and the file's reads fail), in a group
// with members before and after it. Every member answered redeemed has its
// use, audit row and event committed, none answered an error has any, the
// code's uses = audit rows = events, and the store redeems once the file
// reads again. Before, the member was taken as failed having written
// nothing: the members after it ran outside any transaction (each
// statement committed on its own) and were answered the failed COMMIT's
// error with their rows committed.
func TestAdversarialGroupReadFails(t *testing.T) {
	old := checkpointEvery
	checkpointEvery = 0 // its connection would meet the broken reads
	defer func() { checkpointEvery = old }()
	ctx := context.Background()
	s, path := migratedFile(t)
	db := rawDB(t, path)
	mk := func(code string) promo.Promotion {
		p, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: code,
			Kind: promo.KindVanity, VanityCode: code, MaxUsagePerCode: 1_000_000, PerUserLimit: 5}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, fill := mk("IOERR"), mk("FILL")
	now := time.Now().UTC()
	req := func(id, user, key string) promo.RedeemRequest {
		r := promo.RedeemRequest{ID: id, EventID: "ev-" + id, Code: "IOERR", UserID: user, Now: now}
		if key != "" {
			r.IdempotencyKey, r.RequestHash = key, "h:"+user
		}
		return r
	}
	// The redemption a member replays, first in the id order, and 3,000
	// of another promotion after it: its leaf page is one that no later
	// insert (ids from storetestID, after them) reads.
	target := req("0000-target", "target", "k-target")
	if out, err := s.Redeem(ctx, target); err != nil || out.Refused != "" {
		t.Fatalf("target: %+v, %v", out, err)
	}
	if _, err := db.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
INSERT INTO redemptions (id, promotion_id, code, user_id, metadata, redeemed_at, uses_left)
SELECT printf('0001-%06d', i), ?, 'FILL', 'filler', printf('%0200d', i), ?, 0 FROM n`, fill.ID, sqlTime(now)); err != nil {
		t.Fatal(err)
	}
	// Every page in the file, none in the WAL: the writer's cache starts
	// empty. The redemptions after it read (and cache) what the group's
	// members but the replay read.
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		key := ""
		if i%2 == 0 {
			key = fmt.Sprintf("k-warm-%d", i)
		}
		if out, err := s.Redeem(ctx, req(storetestID(), fmt.Sprintf("warm-%d", i), key)); err != nil || out.Refused != "" {
			t.Fatalf("warm-up %d: %+v, %v", i, out, err)
		}
	}
	// The writer reads every page of the audit rows but the target's and
	// those next to it: a member's insert that splits a page reads its
	// neighbours.
	for _, q := range []string{
		`SELECT sum(length(metadata)) FROM redemptions WHERE id >= '0001-000200'`,
		`SELECT count(*) FROM redemptions INDEXED BY redemptions_by_promotion WHERE promotion_id > 0`,
		`SELECT count(*) FROM redemptions INDEXED BY redemptions_by_user WHERE promotion_id > 0`,
		`SELECT count(*) FROM redemptions INDEXED BY redemptions_by_code WHERE code > ''`,
		`SELECT count(*) FROM redemptions INDEXED BY redemptions_by_user_id WHERE user_id > ''`,
	} {
		var n sql.NullInt64
		if err := s.w.QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	again := target
	again.ID, again.EventID = storetestID(), storetestID()
	reqs := []promo.RedeemRequest{req(storetestID(), "before", "k-before"), again,
		req(storetestID(), "after-1", ""), req(storetestID(), "after-2", "k-after-2")}
	lead := req(storetestID(), "lead", "")
	restore := breakReads(t, path)
	res, led := inOneGroupWith(t, s, path, lead, reqs)
	restore()
	if led.Err != nil {
		t.Errorf("lead: %v", led.Err)
	}
	if res[1].Err == nil {
		t.Fatalf("the replay read its redemption from a file that cannot be read: %+v (no read failed: the test is void)", res[1].Outcome)
	}
	all := append([]promo.RedeemRequest{lead}, reqs...)
	answers := append([]promo.RedeemResult{led}, res...)
	redeemed := 1 // the target
	for i, r := range all {
		var audit, events int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM redemptions WHERE id = ?`, r.ID).Scan(&audit); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE payload LIKE ?`,
			`%"eventId":"`+r.EventID+`"%`).Scan(&events); err != nil {
			t.Fatal(err)
		}
		// The user's uses, the key's record (none: 0 and 1 as if redeemed).
		var uses, keys int
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(sum(used), 0) FROM user_uses WHERE promotion_id = ? AND user_id = ?`,
			p.ID, r.UserID).Scan(&uses); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM idempotency_keys WHERE idem_key = ?`, r.IdempotencyKey).Scan(&keys); err != nil {
			t.Fatal(err)
		}
		if r.IdempotencyKey == "" {
			keys = uses
		}
		a := answers[i]
		switch {
		case r.IdempotencyKey == target.IdempotencyKey: // the replay: the rows are the target's
		case a.Err == nil && (audit != 1 || events != 1 || uses != 1 || keys != 1):
			t.Errorf("%s (%s) answered redeemed: %d audit rows, %d events, %d uses, %d key records",
				r.ID, r.UserID, audit, events, uses, keys)
		case a.Err != nil && (audit != 0 || events != 0 || uses != 0 || keys != 0):
			t.Errorf("%s (%s) answered %v: committed %d audit rows, %d events, %d uses, %d key records",
				r.ID, r.UserID, a.Err, audit, events, uses, keys)
		}
		fresh := a.Err == nil && a.Outcome.Refused == "" && !a.Outcome.Replayed
		if fresh {
			redeemed++
		}
	}
	used, audit, events := codeTotals(t, db, "IOERR", p.ID)
	redeemed += 8 // the warm-up
	if used != redeemed || audit != redeemed || events != redeemed {
		t.Errorf("%d answered redeemed: %d uses, %d audit rows, %d events", redeemed, used, audit, events)
	}
	// The file reads again: the writer redeems, and the replay answers.
	if out, err := s.Redeem(ctx, req(storetestID(), "later", "")); err != nil || out.Refused != "" {
		t.Errorf("a redemption once the file reads again: %+v, %v", out, err)
	}
	again.ID, again.EventID = storetestID(), storetestID()
	if out, err := s.Redeem(ctx, again); err != nil || !out.Replayed || out.Redemption.ID != target.ID {
		t.Errorf("the replay once the file reads again: %+v, %v", out, err)
	}
	state := ""
	if t.Failed() {
		state = "FAILED: "
	}
	t.Logf("adversarial: a member's read fails with SQLITE_IOERR (SQLite rolls the transaction back) [sqlite]: %s"+
		"the group answered %v; every answer matches its rows, uses = audit rows = events (%d)", state, res[1].Err, redeemed)
}

// sqlTime is t as the store writes it.
func sqlTime(t time.Time) any { return dialect.Time(t) }
