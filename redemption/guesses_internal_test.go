package redemption

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// One address hammering as fast as it likes (a new userId each time, which
// the limiter never sees) gets at most the limit answered in ANY window, not
// just in each minute from its first failure.
func TestGuessLimitHoldsInAnyWindow(t *testing.T) {
	for _, limit := range []int{2, 3, 30, 31, 1000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			const window = time.Minute
			g := newGuessLimiter(limit, -1, window, 1000)
			start := time.Unix(1_800_000_000, 0)
			var answered []time.Time // failures the limiter let through
			c := Client{Addr: "203.0.113.7", Token: "token:abcd"}
			for ms := 0; ms < 5*60_000; ms += 10 { // 100 attempts a second for 5 minutes
				now := start.Add(time.Duration(ms) * time.Millisecond)
				adm, wait := g.admit(c, now)
				if wait > 0 {
					continue
				}
				answered = append(answered, now)
				adm.Failed()
			}
			most, j := 0, 0
			for i := range answered { // the most failures within [answered[j], answered[j]+window)
				for answered[i].Sub(answered[j]) >= window {
					j++
				}
				most = max(most, i-j+1)
			}
			t.Logf("limit %d per %s: %d failures answered in 5 minutes, at most %d in any window", limit, window,
				len(answered), most)
			if most > limit {
				t.Errorf("%d failures answered within one window, limit %d", most, limit)
			}
			if want := (limit+1)/2 + 4*(limit/2); len(answered) < want { // the burst, then limit/2 a window
				t.Errorf("only %d failures answered in 5 minutes: the bucket refills too slowly for limit %d", len(answered), limit)
			}
		})
	}
}

// Memory stays bounded under a million rotating addresses: the LRU holds at
// most maxKeys, and keys idle for a window are dropped. (A tenth of that
// under the race detector.)
func TestGuessLimiterMemoryBounded(t *testing.T) {
	maxKeys, n := 100_000, 1_000_000
	if raceBuild {
		maxKeys, n = 10_000, 100_000
	}
	g := newGuessLimiter(30, -1, time.Minute, maxKeys) // per address only: a token limit would stop the rotation first
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	now := time.Unix(1_800_000_000, 0)
	for i := range n {
		now = now.Add(time.Microsecond)
		c := Client{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String(), Token: "token:abcd"}
		adm, _ := g.admit(c, now)
		adm.Failed()
	}
	held := g.size()
	grown := int64(heap()) - int64(before)
	t.Logf("%d rotating addresses: %d keys held (bound %d), heap %.1f MiB (%.0f bytes a key)", n, held, maxKeys,
		float64(grown)/(1<<20), float64(grown)/float64(held))
	if held > maxKeys {
		t.Errorf("%d keys held, bound %d", held, maxKeys)
	}
	if grown > int64(maxKeys)*640 { // twice what a key takes today
		t.Errorf("the limiter's heap grew %.1f MiB for %d keys", float64(grown)/(1<<20), held)
	}
	// A window later every bucket is full again: the next look-up drops them all.
	g.admit(Client{Addr: "192.0.2.1", Token: "token:other"}, now.Add(time.Minute))
	if got := g.size(); got != 1 {
		t.Errorf("%d keys held a window after the last failure, want the 1 of the new one", got)
	}
}

// IPv6 addresses count per /64, and an IPv4-mapped address as IPv4.
func TestGuessKeyOfAnAddress(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":         "203.0.113.7",
		"::ffff:203.0.113.7":  "203.0.113.7",
		"2001:db8:1:2:3::4":   "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::": "2001:db8:1:2::/64",
		"fe80::1%eth0":        "fe80::/64",
		"not an address":      "not an address",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// Concurrent look-ups cannot all pass while only one token is left: each
// takes its token before it is made, and a look-up that did not fail gives
// it back.
func TestGuessAdmissionsTakeTokensFirst(t *testing.T) {
	g := newGuessLimiter(4, -1, time.Minute, 100) // a burst of 2
	now := time.Unix(1_800_000_000, 0)
	c := Client{Addr: "203.0.113.7"}
	a1, w1 := g.admit(c, now)
	a2, w2 := g.admit(c, now)
	_, w3 := g.admit(c, now)
	if w1 != 0 || w2 != 0 || w3 == 0 {
		t.Fatalf("three look-ups in flight with a burst of 2: waits %s %s %s, want the third refused", w1, w2, w3)
	}
	a1.Settle(now) // a valid code: its token comes back
	a2.Failed()    // a guess: its token is used
	a2.Settle(now) // settling after failed gives nothing back
	if _, w := g.admit(c, now); w != 0 {
		t.Fatalf("the settled token did not come back: wait %s", w)
	}
	if _, w := g.admit(c, now); w == 0 {
		t.Fatal("a failed look-up's token came back")
	}
}
