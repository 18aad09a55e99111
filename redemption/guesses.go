package redemption

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
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
}

// guessLimiter counts failed look-ups (code_not_found, invalid_code) per
// client address and per token, each in a token bucket (x/time/rate) sized
// so that no key gets more than its limit in ANY window: a bucket of
// ⌈limit/2⌉ that refills ⌊limit/2⌋ per window (burst + refill = limit).
// Buckets live in one LRU (hashicorp/golang-lru) bounded to maxKeys: a key
// idle for a window has a full bucket again and is dropped (no state lost),
// and past maxKeys the least recently failing key is forgotten. So memory is
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

type guessBucket struct {
	lim  *rate.Limiter
	last time.Time // the last failure
}

func newGuessLimiter(perAddr, perToken int, window time.Duration, maxKeys int) *guessLimiter {
	lru, err := simplelru.NewLRU[guessKey, *guessBucket](maxKeys, nil)
	if err != nil { // only for a size < 1, which Config.Validate refuses
		panic(err)
	}
	g := &guessLimiter{window: window, perAddr: max(0, perAddr), perToken: max(0, perToken), keys: lru}
	for _, limit := range []int{g.perAddr, g.perToken} {
		if limit > 0 {
			burst, r := bucketShape(limit, window)
			g.ttl = max(g.ttl, time.Duration(math.Ceil(float64(burst)/float64(r)*float64(time.Second))))
		}
	}
	return g
}

// bucketShape is the burst and the refill rate that hold a key to limit
// failures in any window (limit ≥ 2, so that the rate is positive).
func bucketShape(limit int, window time.Duration) (burst int, r rate.Limit) {
	burst = (limit + 1) / 2
	return burst, rate.Limit(float64(limit-burst) / window.Seconds())
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

// wait reports how long c must wait before its next failed look-up may be
// answered: 0 when it may look up now.
func (g *guessLimiter) wait(c Client, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	var longest time.Duration
	for _, kl := range g.keysOf(c) {
		b, ok := g.keys.Peek(kl.key)
		if !ok {
			continue
		}
		if tokens := b.lim.TokensAt(now); tokens < 1 {
			_, r := bucketShape(kl.limit, g.window)
			longest = max(longest, time.Duration(math.Ceil((1-tokens)/float64(r)*float64(time.Second))))
		}
	}
	return longest
}

// fail counts one failed look-up against c.
func (g *guessLimiter) fail(c Client, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	for _, kl := range g.keysOf(c) {
		b, ok := g.keys.Get(kl.key)
		if !ok {
			burst, r := bucketShape(kl.limit, g.window)
			b = &guessBucket{lim: rate.NewLimiter(r, burst)}
		}
		b.lim.AllowN(now, 1) // false: already empty, nothing more to take
		b.last = now
		g.keys.Add(kl.key, b) // most recent: the LRU's order is the order of last failures
	}
}

// expire drops the keys whose last failure is ttl old or more: their
// buckets have refilled, so forgetting them changes no answer. The LRU is ordered by last failure, so only its oldest end is
// looked at: amortised O(1) per call.
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
