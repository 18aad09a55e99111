package redemption

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Client is who a code look-up comes from, as the API knows it: Addr is the
// caller's network address (the connection's peer, or the address a trusted
// proxy forwarded), Token identifies its credential (a fingerprint of the
// bearer token; "open" on a server without tokens). Failed look-ups count
// against both. A request's userId is never a key: the caller chooses it, so
// counting per user would let one address rotate users without limit and let
// anyone lock a real shopper out with failures in their name.
type Client struct {
	Addr  string
	Token string
	// UserAgent is the request's User-Agent, for the audit trail only.
	UserAgent string
}

// guessLimiter counts failed look-ups (code_not_found, invalid_code) per
// client address and per token, each in a token bucket sized
// so that no key gets more than its limit in ANY window: a bucket of
// ⌈limit/2⌉ that refills ⌊limit/2⌋ per window (burst + refill = limit).
// A look-up takes its tokens before it is made and gets them back unless it
// failed (admit), so concurrent look-ups cannot overshoot. Buckets live in
// one LRU (hashicorp/golang-lru) bounded to maxKeys: a key idle for a window
// has a full bucket again and is dropped (no state lost), and past maxKeys
// the least recently active key is forgotten. So memory is
// bounded whatever an attacker rotates. Safe for concurrent use; one mutex,
// held for map operations only.
type guessLimiter struct {
	window   time.Duration
	ttl      time.Duration // the longest time an empty bucket takes to fill
	perAddr  int           // 0: not limited
	perToken int
	mu       sync.Mutex
	keys     *simplelru.LRU[guessKey, *guessBucket]
}

type guessKey struct {
	token bool   // a token's key, not an address's
	id    string // the address (an IPv6 one as its /64) or the token fingerprint
}

// guessBucket is a token bucket: burst tokens at most, refilled at rate a
// second. (Not x/time/rate: a look-up that did not fail must give its token
// back after the fact, which rate.Reservation cannot do once its time has
// passed.) Guarded by guessLimiter.mu.
type guessBucket struct {
	tokens float64   // at time at
	at     time.Time // the last change of tokens
	last   time.Time // the last admission: tokens are only taken then, so ttl after it the bucket is full
	burst  float64
	rate   float64
}

// level is the bucket's tokens at now.
func (b *guessBucket) level(now time.Time) float64 {
	return min(b.burst, b.tokens+max(0, now.Sub(b.at).Seconds())*b.rate)
}

// add changes the bucket's tokens by n at now (within 0..burst at the top).
func (b *guessBucket) add(now time.Time, n float64) {
	b.tokens, b.at = min(b.burst, b.level(now)+n), now
}

func newGuessLimiter(perAddr, perToken int, window time.Duration, maxKeys int) *guessLimiter {
	lru, err := simplelru.NewLRU[guessKey, *guessBucket](maxKeys, nil)
	if err != nil { // only for a size < 1, which Config.Validate refuses
		panic(err)
	}
	g := &guessLimiter{window: window, perAddr: max(0, perAddr), perToken: max(0, perToken), keys: lru}
	for _, limit := range []int{g.perAddr, g.perToken} {
		if limit > 0 {
			b := newBucket(limit, window, time.Time{})
			g.ttl = max(g.ttl, time.Duration(math.Ceil(b.burst/b.rate*float64(time.Second))))
		}
	}
	return g
}

// newBucket is a full bucket that holds a key to limit failures in any
// window: ⌈limit/2⌉ tokens, refilled at ⌊limit/2⌋ a window (limit ≥ 2, so
// that the rate is positive).
func newBucket(limit int, window time.Duration, now time.Time) *guessBucket {
	burst := (limit + 1) / 2
	return &guessBucket{tokens: float64(burst), at: now, last: now, burst: float64(burst),
		rate: float64(limit-burst) / window.Seconds()}
}

// limitedKey is one bucket a failure counts against, with its limit.
type limitedKey struct {
	key   guessKey
	limit int
}

// keysOf are the buckets c's failures count against.
func (g *guessLimiter) keysOf(c Client) []limitedKey {
	out := make([]limitedKey, 0, 2)
	if g.perAddr > 0 {
		out = append(out, limitedKey{guessKey{id: addrKey(c.Addr)}, g.perAddr})
	}
	if g.perToken > 0 {
		out = append(out, limitedKey{guessKey{token: true, id: c.Token}, g.perToken})
	}
	return out
}

// addrKey is what an address is counted as: an IPv4 address itself, an
// IPv6 address its /64 (one subscriber's usual allocation: rotating inside
// it gains nothing).
func addrKey(addr string) string {
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

// admit lets a look-up by c go ahead, taking one token from each of c's
// buckets before it is made (so that concurrent look-ups cannot all pass a
// check that only one of them may pass), or says how long c must wait. The
// caller settles the admission when the answer is known: a failed look-up
// keeps its tokens, any other answer gives them back.
func (g *guessLimiter) admit(c Client, now time.Time) (*admission, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	keys := g.keysOf(c)
	buckets := make([]*guessBucket, len(keys))
	var longest time.Duration
	for i, kl := range keys {
		b, ok := g.keys.Get(kl.key)
		if !ok {
			b = newBucket(kl.limit, g.window, now)
		}
		buckets[i] = b
		if level := b.level(now); level < 1 {
			longest = max(longest, time.Duration(math.Ceil((1-level)/b.rate*float64(time.Second))))
		}
	}
	if longest > 0 {
		return nil, longest
	}
	for i, kl := range keys {
		buckets[i].add(now, -1)
		buckets[i].last = now
		g.keys.Add(kl.key, buckets[i]) // most recent: the LRU's order is the order of last admissions
	}
	return &admission{g: g, taken: buckets}, 0
}

// admission is one look-up's tokens, taken by admit.
type admission struct {
	g     *guessLimiter
	taken []*guessBucket // nil once settled
}

// failed keeps the tokens: the look-up failed (code_not_found, invalid_code).
func (a *admission) failed() {
	if a == nil {
		return
	}
	a.g.mu.Lock()
	a.taken = nil
	a.g.mu.Unlock()
}

// settle gives the tokens back unless failed was called: the look-up was not
// a failed guess. Idempotent. (A bucket evicted meanwhile gets its token
// back unseen: harmless.)
func (a *admission) settle(now time.Time) {
	if a == nil {
		return
	}
	a.g.mu.Lock()
	defer a.g.mu.Unlock()
	for _, b := range a.taken {
		b.add(now, 1) // last stays: the LRU's order and expire rely on it
	}
	a.taken = nil
}

// expire drops the keys whose last admission is ttl old or more: their
// buckets have refilled, so forgetting them changes no answer. The LRU is
// ordered by last admission, so only its oldest end is looked at: amortised
// O(1) per call.
func (g *guessLimiter) expire(now time.Time) {
	for {
		_, b, ok := g.keys.GetOldest()
		if !ok || now.Sub(b.last) < g.ttl {
			return
		}
		g.keys.RemoveOldest()
	}
}

// size is how many keys are held.
func (g *guessLimiter) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.keys.Len()
}
