package redemption

import (
	"time"

	"github.com/promocodes/promocodes/pkg/throttle"
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

// guessLimiter counts failed look-ups (code_not_found, invalid_code, a code
// bound to someone else) per client address and per token, in bounded memory
// (pkg/throttle: the limit holds in any window; memory is bounded whatever an
// attacker rotates). A look-up takes its tokens before it is made and gets
// them back unless it failed.
type guessLimiter struct {
	perAddr  int // 0: not limited
	perToken int
	keys     *throttle.Limiter
}

func newGuessLimiter(perAddr, perToken int, window time.Duration, maxKeys int) *guessLimiter {
	l, err := throttle.New(window, maxKeys)
	if err != nil { // only for a window or size Config.Validate refuses
		panic(err)
	}
	return &guessLimiter{perAddr: max(0, perAddr), perToken: max(0, perToken), keys: l}
}

// keysOf are the buckets c's failures count against.
func (g *guessLimiter) keysOf(c Client) []throttle.Key {
	out := make([]throttle.Key, 0, 2)
	if g.perAddr > 0 {
		out = append(out, throttle.Key{ID: "addr:" + addrKey(c.Addr), Limit: g.perAddr})
	}
	if g.perToken > 0 {
		out = append(out, throttle.Key{ID: "token:" + c.Token, Limit: g.perToken})
	}
	return out
}

// addrKey is what an address is counted as (an IPv6 address its /64).
func addrKey(addr string) string { return throttle.AddrKey(addr) }

// admit lets a look-up by c go ahead, taking one token from each of c's
// buckets, or says how long c must wait. The caller settles the admission
// when the answer is known: a failed look-up keeps its tokens, any other
// answer gives them back.
func (g *guessLimiter) admit(c Client, now time.Time) (*admission, time.Duration) {
	return g.keys.Admit(g.keysOf(c), now)
}

// admission is one look-up's tokens, taken by admit.
type admission = throttle.Admission

// size is how many keys are held.
func (g *guessLimiter) size() int { return g.keys.Len() }
