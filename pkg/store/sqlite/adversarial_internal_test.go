//go:build integration

package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

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
	s, path := migratedFile(t)
	storetest.AdversarialIdempotencyKeys(t, "sqlite", s, keyRecords(rawDB(t, path)))
}

// envCrashChild makes the test binary the process TestAdversarialCrash
// kills: it redeems on the database at this path until killed.
const envCrashChild = "PROMOCODES_ADV_CRASH_CHILD"

// TestAdversarialCrash kills (SIGKILL) two processes redeeming with keys
// on one file through group commit, each with its checkpointer running
// every millisecond (so a kill often lands mid-checkpoint), one after the
// other, three times. After each
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
	s, path := migratedFile(t)
	s.Close()
	for round := range 3 {
		s, err := Open(ctx, Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		codes := storetest.CrashCodes(t, s) // fresh codes each round
		s.Close()
		var (
			mu    sync.Mutex
			lines []string
			cmds  []*exec.Cmd
			read  sync.WaitGroup
		)
		for range 2 { // two processes on the file, each with its writer and checkpointer
			cmd := exec.Command(os.Args[0], "-test.run=^TestAdversarialCrash$")
			cmd.Env = append(os.Environ(), envCrashChild+"="+path, envCrashChild+"_CODES="+strings.Join(codes, " "))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
			read.Go(func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					mu.Lock()
					lines = append(lines, sc.Text())
					mu.Unlock()
				}
			})
		}
		for _, cmd := range cmds {
			time.Sleep(time.Duration(500+rand.IntN(600)) * time.Millisecond)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		read.Wait()
		for _, cmd := range cmds {
			cmd.Wait() //nolint:errcheck // killed
		}
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
		t.Logf("adversarial: SIGKILL of 2 processes mid-group, checkpointers every 1ms, round %d [sqlite]: %sintegrity_check %s; %s",
			round, state, check, summary)
	}
}

// TestAdversarialGroupKeys: one key several times in one group (the same
// request: a replay of the first; another: a conflict), a member refused
// after claiming its key and its key again, a member failing after
// claiming its key (the group is written again with savepoints) and its key
// again: each answered as if the members had run one after another, then
// every key replayed after the commit answers what its first member got.
// Twice: with a failing member (the savepoint pass) and without (the first
// pass commits).
func TestAdversarialGroupKeys(t *testing.T) {
	ctx := context.Background()
	s, path := migratedFile(t)
	kr := keyRecords(rawDB(t, path))
	mk := func(code string, max, perUser int, rules *promo.Eligibility) {
		_, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: code,
			Kind: promo.KindVanity, VanityCode: code, MaxUsagePerCode: max, PerUserLimit: perUser, Eligibility: rules}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, failing := range []bool{true, false} {
		sfx := map[bool]string{true: "F", false: "N"}[failing]
		ok, ex, el := "GK"+sfx, "GX"+sfx, "GE"+sfx
		mk(ok, 100, 1, nil)
		mk(ex, 1, 1, nil)
		mk(el, 100, 1, &promo.Eligibility{Countries: []string{"DE"}})
		req := func(code, user, key string) promo.RedeemRequest {
			return promo.RedeemRequest{ID: storetestID(), EventID: storetestID(), Code: code, UserID: user,
				Now: time.Now().UTC(), IdempotencyKey: key + sfx, RequestHash: "h:" + code + user}
		}
		early, err := s.Redeem(ctx, req(ok, "early", "early"))
		if err != nil || early.Refused != "" {
			t.Fatal(early, err)
		}
		if out, err := s.Redeem(ctx, req(ex, "taker", "taker")); err != nil || out.Refused != "" {
			t.Fatal(out, err)
		}
		again := func(r promo.RedeemRequest) promo.RedeemRequest {
			r.ID, r.EventID = storetestID(), storetestID()
			return r
		}
		a := req(ok, "ann", "ka")
		a3 := again(a)
		a3.RequestHash = "h:other"
		f := req(ok, "fay", "kf")
		f.ID = early.Redemption.ID // taken: fails at the audit row, after its claim
		r := req(ok, "early", "kr")
		e := req(ex, "eve", "ke")
		n := req(el, "ned", "kn")
		n.Shopper = &promo.Shopper{Country: "FR"}
		n2 := again(n)
		n2.Shopper = &promo.Shopper{Country: "DE"}
		type want struct {
			what  string
			first int // the member whose answer it repeats (-1: none)
		}
		reqs := []promo.RedeemRequest{a, again(a), a3, r, again(r), e, again(e), n, n2}
		wants := []want{{"redeemed", -1}, {"replay", 0}, {"conflict", -1}, {"user_limit_reached", -1}, {"replay", 3},
			{"code_exhausted", -1}, {"replay", 5}, {"not_eligible", -1}, {"replay", 7}}
		if failing {
			f2 := again(f)
			f2.ID = storetestID()
			reqs = append(reqs, f, f2, again(f2))
			wants = append(wants, want{"error", -1}, want{"redeemed", -1}, want{"replay", len(reqs) - 2})
		}
		sp0, _ := s.GroupStatements()
		res := inOneGroup(t, s, path, reqs)
		sp1, _ := s.GroupStatements()
		for i, w := range wants {
			out, err := res[i].Outcome, res[i].Err
			bad := false
			switch w.what {
			case "redeemed":
				bad = err != nil || out.Refused != "" || out.Replayed || out.Redemption.ID != reqs[i].ID
			case "conflict":
				bad = promo.Code(err) != promo.EConflict
			case "error":
				bad = err == nil
			case "replay":
				first := res[w.first].Outcome
				bad = err != nil || !out.Replayed || out.Refused != first.Refused || out.Rule != first.Rule ||
					out.Redemption.ID != first.Redemption.ID
			default:
				bad = err != nil || string(out.Refused) != w.what || out.Replayed
			}
			if bad {
				t.Errorf("failing %t, member %d (%s, key %s): %+v, %v; want %s", failing, i, reqs[i].UserID,
					reqs[i].IdempotencyKey, out, err, w.what)
			}
		}
		// After the commit: every key answers what its first member got.
		for i, w := range wants {
			if w.what == "conflict" || w.what == "error" || w.first >= 0 {
				continue
			}
			out, err := s.Redeem(ctx, again(reqs[i]))
			if err != nil || !out.Replayed || out.Refused != res[i].Outcome.Refused ||
				out.Redemption.ID != res[i].Outcome.Redemption.ID {
				t.Errorf("failing %t: key %s replayed after the commit: %+v, %v; want %+v", failing,
					reqs[i].IdempotencyKey, out, err, res[i].Outcome)
			}
		}
		orphans, err := kr.Orphans(ctx)
		if err != nil || orphans != 0 {
			t.Errorf("failing %t: %d key records name a missing redemption or one beside a refusal (%v)", failing,
				orphans, err)
		}
		state := ""
		if t.Failed() {
			state = "FAILED: "
		}
		t.Logf("adversarial: one key several times in one group, failing member %t [sqlite]: %s%d members "+
			"answered as if serial (%d savepoints), each key replayed after the commit as first answered, %d orphan records",
			failing, state, len(reqs), sp1-sp0, orphans)
	}
}

func TestAdversarialKeysCancelled(t *testing.T) {
	s, path := migratedFile(t)
	storetest.AdversarialKeysCancelled(t, "sqlite", s, keyRecords(rawDB(t, path)))
}
