package storetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// CrashCodes creates the vanity codes a crash load redeems (each a
// promotion of its own, max crashMax uses, 3 per user) and returns them.
// crashMax is a crash code's max: the first code is used up under load
// (code_exhausted), the rest are not.
const crashMax = 150

func CrashCodes(t *testing.T, s Store) []string {
	h := newHarness(t, s)
	codes := make([]string, 4)
	for i := range codes {
		codes[i] = fmt.Sprintf("K%s%d", h.tag, i)
		np := h.vanity(codes[i], crashMax*max(1, 100*i))
		np.PerUserLimit = 3
		h.create(np)
	}
	return codes
}

// CrashLoad redeems codes with keyed requests of 400 users of its own on 8 goroutines
// (a third with shopper fields: the statement path) until ctx ends or the
// process is killed, and writes a line to w for each answer once it has it:
// "R key code user id" (redeemed), "X key code user reason" (refused),
// "E key code user" (an error).
func CrashLoad(ctx context.Context, s Store, codes []string, w io.Writer) {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	tag := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				req := crashReq(codes[rand.IntN(len(codes))], fmt.Sprintf("u%s-%02d", tag, rand.IntN(400)),
					fmt.Sprintf("crash-%s-%d-%d", tag, g, i))
				if i%3 == 0 {
					req.Shopper = &promo.Shopper{}
				}
				out, err := s.Redeem(ctx, req)
				line := fmt.Sprintf("E %s %s %s\n", req.IdempotencyKey, req.Code, req.UserID)
				switch {
				case err == nil && out.Refused == "":
					line = fmt.Sprintf("R %s %s %s %s\n", req.IdempotencyKey, req.Code, req.UserID, out.Redemption.ID)
				case err == nil:
					line = fmt.Sprintf("X %s %s %s %s\n", req.IdempotencyKey, req.Code, req.UserID, out.Refused)
				}
				mu.Lock()
				io.WriteString(w, line) //nolint:errcheck // the parent reads what it gets
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func crashReq(code, user, key string) promo.RedeemRequest {
	req := redeemReq(code, user)
	req.IdempotencyKey, req.RequestHash = key, "h:"+key
	return req
}

// CheckAfterCrash checks a store reopened after a process running CrashLoad
// on it was killed, lines being what that process wrote: every answer it
// gave is replayed as it was given (its redemptions all committed), no key
// record names a missing redemption, and each code's uses are its audit
// rows. It returns a summary for the log.
func CheckAfterCrash(t *testing.T, s Store, kr KeyRecords, codes []string, lines []string) string {
	h := newHarness(t, s)
	var redeemed, refused, failed, torn int
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 4 || len(f) != map[string]int{"R": 5, "X": 5, "E": 4}[f[0]] {
			torn++ // the line the kill cut
			continue
		}
		req := crashReq(f[2], f[3], f[1])
		out, err := h.s.Redeem(h.ctx, req)
		switch f[0] {
		case "R":
			redeemed++
			if err != nil || !out.Replayed || out.Redemption.ID != f[4] {
				t.Errorf("replay of %s after the kill: %+v, %v; want redemption %s", f[1], out, err, f[4])
			}
		case "X":
			refused++
			if err != nil || !out.Replayed || string(out.Refused) != f[4] {
				t.Errorf("replay of %s after the kill: %+v, %v; want refusal %s", f[1], out, err, f[4])
			}
		default:
			failed++
		}
	}
	if n, err := kr.Orphans(h.ctx); err != nil || n != 0 {
		t.Errorf("after the kill: %d key records name a missing redemption or one beside a refusal (%v)", n, err)
	}
	total := 0
	for _, c := range codes {
		st, err := h.s.CodeState(h.ctx, c, "")
		if err != nil {
			t.Fatal(err)
		}
		rows, per := 0, map[string]int{}
		err = h.s.ExportRedemptions(h.ctx, promo.RedemptionFilter{PromotionID: st.Promotion.ID}, func(r promo.Redemption) error {
			if r.RolledBackAt == nil {
				rows++
				per[r.UserID]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Used != rows || rows > st.Promotion.MaxUsagePerCode {
			t.Errorf("code %s: used %d, %d audit rows (max %d)", c, st.Used, rows, st.Promotion.MaxUsagePerCode)
		}
		for u, n := range per {
			if n > 3 {
				t.Errorf("code %s: user %s redeemed %d times, limit 3", c, u, n)
			}
		}
		total += rows
	}
	return fmt.Sprintf("%d answers seen (%d redeemed, %d refused, %d errors, %d torn lines) all replayed as given; "+
		"%d audit rows = uses; no key record names a missing redemption", len(lines)-torn, redeemed, refused, failed,
		torn, total)
}

// AdversarialKeysCancelled redeems keyed requests on 16 goroutines, each
// request tried first with contexts that end after 0 to 3 ms (so they end
// while queued, while their group is written, or while their transaction
// runs), then once with time to finish: every answer a key got that is not
// an error is the same (the first's), no key record names a missing
// redemption, and uses equal audit rows.
func AdversarialKeysCancelled(t *testing.T, db string, s Store, kr KeyRecords) {
	codes := CrashCodes(t, s)
	h := newHarness(t, s)
	type answer struct {
		id     string
		reason promo.Reason
	}
	var (
		mu        sync.Mutex
		first     = map[string]answer{}
		cancelled int
		redeemed  int
	)
	race(16, func(g int) {
		for i := range 40 {
			req := crashReq(codes[rand.IntN(len(codes))], fmt.Sprintf("c%s-%02d", h.tag, rand.IntN(100)),
				fmt.Sprintf("cancel-%s-%d-%d", h.tag, g, i))
			if i%3 == 0 {
				req.Shopper = &promo.Shopper{}
			}
			for try := range 4 {
				ctx, cancel := context.WithTimeout(h.ctx, time.Duration(rand.IntN(3000))*time.Microsecond)
				if try == 3 {
					ctx, cancel = context.WithTimeout(h.ctx, 30*time.Second)
				}
				retry := req
				retry.ID, retry.EventID = newID(), newID()
				out, err := s.Redeem(ctx, retry)
				cancel()
				mu.Lock()
				if err != nil {
					cancelled++
					if try == 3 {
						t.Errorf("key %s with time to finish: %v", req.IdempotencyKey, err)
					}
					mu.Unlock()
					continue
				}
				got := answer{out.Redemption.ID, out.Refused}
				if was, ok := first[req.IdempotencyKey]; !ok {
					first[req.IdempotencyKey] = got
					if got.reason == "" {
						redeemed++
					}
				} else if was != got {
					t.Errorf("key %s answered %+v, then %+v", req.IdempotencyKey, was, got)
				}
				mu.Unlock()
			}
		}
	})
	if n, err := kr.Orphans(h.ctx); err != nil || n != 0 {
		t.Errorf("%d key records name a missing redemption or one beside a refusal (%v)", n, err)
	}
	rows := 0
	for _, c := range codes {
		st, err := h.s.CodeState(h.ctx, c, "")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = h.s.ExportRedemptions(h.ctx, promo.RedemptionFilter{PromotionID: st.Promotion.ID}, func(promo.Redemption) error {
			n++
			return nil
		})
		if err != nil || n != st.Used {
			t.Errorf("code %s: used %d, %d audit rows (%v)", c, st.Used, n, err)
		}
		rows += n
	}
	if rows != redeemed {
		t.Errorf("%d audit rows, %d keys answered with a redemption", rows, redeemed)
	}
	state := ""
	if t.Failed() {
		state = "FAILED: "
	}
	t.Logf("adversarial: contexts ending mid-group/mid-transaction [%s]: %s%d keys, %d tries ended by their context; "+
		"every key's answers identical, %d redeemed = %d audit rows = uses, no orphan records",
		db, state, len(first), cancelled, redeemed, rows)
}

// KillChild runs this test binary again as a crash child (-test.run=run,
// env added to this process's environment, which tells the child what to
// do), kills it (SIGKILL) after the wait and returns the lines it wrote to
// its standard output before it died.
func KillChild(t *testing.T, run string, env []string, after time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run="+run)
	cmd.Env = append(os.Environ(), env...)
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
	time.Sleep(after)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-read
	cmd.Wait() //nolint:errcheck // killed
	return lines
}
