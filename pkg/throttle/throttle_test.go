package throttle

import (
	"fmt"
	"testing"
	"time"
)

// Whatever the limit (1 included, which refills one token every two
// windows), failures admitted as fast as a key asks never exceed it in any
// window, and a successful attempt gives its token back.
func TestLimitHoldsInAnyWindow(t *testing.T) {
	const window = time.Minute
	for _, limit := range []int{1, 2, 5, 10} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			l, err := New(window, 10)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Unix(1_800_000_000, 0)
			var answered []time.Time
			for ms := 0; ms < 10*60_000; ms += 100 {
				now := start.Add(time.Duration(ms) * time.Millisecond)
				adm, wait := l.Admit([]Key{{ID: "addr:192.0.2.1", Limit: limit}}, now)
				if wait > 0 {
					continue
				}
				answered = append(answered, now)
				adm.Failed()
			}
			most, j := 0, 0
			for i := range answered {
				for answered[i].Sub(answered[j]) >= window {
					j++
				}
				most = max(most, i-j+1)
			}
			if most > limit || len(answered) < limit {
				t.Errorf("limit %d: %d failures in 10 windows, at most %d in one window", limit, len(answered), most)
			}
		})
	}
	l, _ := New(window, 10)
	now := time.Unix(1_800_000_000, 0)
	for range 100 { // successes: each token comes back
		adm, wait := l.Admit([]Key{{ID: "a", Limit: 2}}, now)
		if wait > 0 {
			t.Fatal("a key whose attempts all succeed was throttled")
		}
		adm.Settle(now)
	}
}

// Memory is bounded by maxKeys whatever is rotated, and keys whose buckets
// have refilled are forgotten.
func TestKeysBounded(t *testing.T) {
	l, _ := New(time.Minute, 1000)
	now := time.Unix(1_800_000_000, 0)
	for i := range 100_000 {
		adm, _ := l.Admit([]Key{{ID: fmt.Sprint("addr:", i), Limit: 10}}, now)
		adm.Failed()
	}
	if got := l.Len(); got != 1000 {
		t.Errorf("%d keys held after 100,000 rotated, want the bound 1000", got)
	}
	l.Admit([]Key{{ID: "other", Limit: 10}}, now.Add(time.Hour))
	if got := l.Len(); got != 1 {
		t.Errorf("%d keys held an hour later, want 1 (the refilled ones forgotten)", got)
	}
	if AddrKey("2001:db8:1:2::7") != AddrKey("2001:db8:1:2:ffff::1") || AddrKey("::ffff:192.0.2.1") != "192.0.2.1" {
		t.Error("an IPv6 address is not counted by its /64, or a mapped IPv4 address not as itself")
	}
}
