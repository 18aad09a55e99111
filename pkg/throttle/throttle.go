// Package throttle limits how often a key (a client address, a credential)
// may fail, in bounded memory: the guess limiter of code look-ups and the
// console's sign-in throttle both count on it.
//
// Each key has a token bucket sized so that no key gets more than its limit
// in ANY window: a bucket of ⌈limit/2⌉ that refills ⌊limit/2⌋ per window
// (burst + refill = limit). An attempt takes its tokens before it is made
// (Admit), so concurrent attempts cannot overshoot, and the caller settles
// it once the outcome is known: a failure keeps the tokens (Failed), any
// other outcome gives them back (Settle). Buckets live in one LRU
// (hashicorp/golang-lru) bounded to maxKeys: a key idle until its bucket is
// full again is dropped (no state lost), and past maxKeys the least recently
// active key is forgotten, so memory is bounded whatever an attacker rotates.
//
// Not golang.org/x/time/rate: an attempt that did not fail must give its
// token back after the fact, which a rate.Reservation cannot do once its time
// has passed. A Limiter is safe for concurrent use; one mutex, held for map
// operations only.
package throttle

import (
	"errors"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Key is one bucket an attempt counts against, with its limit per window.
// IDs are compared as they are: callers keep kinds apart with a prefix
// ("addr:", "token:").
type Key struct {
	ID    string
	Limit int // 0 or less: not limited
}

// Limiter holds the buckets. The zero value is not usable: use New.
type Limiter struct {
	window time.Duration
	mu     sync.Mutex
	ttl    time.Duration // the longest time an empty bucket of a key seen so far takes to fill
	keys   *simplelru.LRU[string, *bucket]
}

// New is a Limiter counting per window, holding at most maxKeys keys.
func New(window time.Duration, maxKeys int) (*Limiter, error) {
	if window <= 0 {
		return nil, errors.New("throttle: the window must be positive")
	}
	lru, err := simplelru.NewLRU[string, *bucket](maxKeys, nil)
	if err != nil {
		return nil, err
	}
	return &Limiter{window: window, keys: lru}, nil
}

// bucket is a token bucket: burst tokens at most, refilled at rate a second.
// Guarded by Limiter.mu.
type bucket struct {
	tokens float64   // at time at
	at     time.Time // the last change of tokens
	last   time.Time // the last admission: tokens are only taken then, so a fill time after it the bucket is full
	burst  float64
	rate   float64
}

// newBucket is a full bucket for limit per window: ⌈limit/2⌉ tokens refilled
// at ⌊limit/2⌋ a window; a limit of 1 refills one token every two windows.
func newBucket(limit int, window time.Duration, now time.Time) *bucket {
	burst := (limit + 1) / 2
	refill := max(float64(limit-burst), 0.5)
	return &bucket{tokens: float64(burst), at: now, last: now, burst: float64(burst),
		rate: refill / window.Seconds()}
}

// level is the bucket's tokens at now.
func (b *bucket) level(now time.Time) float64 {
	return min(b.burst, b.tokens+max(0, now.Sub(b.at).Seconds())*b.rate)
}

// add changes the bucket's tokens by n at now (within 0..burst at the top).
func (b *bucket) add(now time.Time, n float64) {
	b.tokens, b.at = min(b.burst, b.level(now)+n), now
}

// fill is how long the empty bucket takes to be full.
func (b *bucket) fill() time.Duration {
	return time.Duration(math.Ceil(b.burst / b.rate * float64(time.Second)))
}

// Admit lets an attempt counted against keys go ahead, taking one token
// from each key's bucket, or says how long the caller must wait (and takes
// nothing). Keys with no positive limit are not limited.
func (l *Limiter) Admit(keys []Key, now time.Time) (*Admission, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	buckets := make([]*bucket, 0, len(keys))
	ids := make([]string, 0, len(keys))
	var longest time.Duration
	for _, k := range keys {
		if k.Limit <= 0 {
			continue
		}
		b, ok := l.keys.Get(k.ID)
		if !ok {
			b = newBucket(k.Limit, l.window, now)
			l.ttl = max(l.ttl, b.fill())
		}
		buckets, ids = append(buckets, b), append(ids, k.ID)
		if level := b.level(now); level < 1 {
			longest = max(longest, time.Duration(math.Ceil((1-level)/b.rate*float64(time.Second))))
		}
	}
	if longest > 0 {
		return nil, longest
	}
	for i, b := range buckets {
		b.add(now, -1)
		b.last = now
		l.keys.Add(ids[i], b) // most recent: the LRU's order is the order of last admissions
	}
	return &Admission{l: l, taken: buckets}, 0
}

// Admission is one attempt's tokens, taken by Admit. A nil *Admission is
// valid and settles nothing.
type Admission struct {
	l     *Limiter
	taken []*bucket // nil once settled
}

// Failed keeps the tokens: the attempt failed and counts.
func (a *Admission) Failed() {
	if a == nil {
		return
	}
	a.l.mu.Lock()
	a.taken = nil
	a.l.mu.Unlock()
}

// Settle gives the tokens back unless Failed was called. Idempotent. (A
// bucket evicted meanwhile gets its token back unseen: harmless.)
func (a *Admission) Settle(now time.Time) {
	if a == nil {
		return
	}
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	for _, b := range a.taken {
		b.add(now, 1) // last stays: the LRU's order and expire rely on it
	}
	a.taken = nil
}

// expire drops the keys whose last admission is ttl old or more: their
// buckets have refilled, so forgetting them changes no answer. The LRU is
// ordered by last admission, so only its oldest end is looked at: amortised
// O(1) per call.
func (l *Limiter) expire(now time.Time) {
	for {
		_, b, ok := l.keys.GetOldest()
		if !ok || now.Sub(b.last) < l.ttl {
			return
		}
		l.keys.RemoveOldest()
	}
}

// Len is how many keys are held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keys.Len()
}

// AddrKey is what a client address is counted as: an IPv4 address itself,
// an IPv6 address its /64 (one subscriber's usual allocation: rotating inside
// it gains nothing). A string that is not an address is returned as it is.
func AddrKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
