package codes

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/promocodes/promocodes/pkg/promo"
)

// MinSecretLen is the shortest secret New accepts, in bytes.
const MinSecretLen = 32

// Engine turns sequence numbers into codes and back for one format and key:
// code = render(P(seq)), P a keyed permutation of [0, Space). An Engine is
// immutable and safe for concurrent use. It keeps only keys derived from the
// secret, and never prints them: String and GoString show the counter name.
type Engine struct {
	layout  *Layout
	counter string      // the code space whose keys the permutation uses
	perm    permutation // the random style's
	tail    sipKey      // the serial style's: the key of the tail's MAC
}

// New compiles f and derives its permutation from secret (at least
// MinSecretLen bytes, from configuration). Format errors are *promo.Error
// with field names; the secret never appears in an error.
func New(f promo.Format, secret []byte) (*Engine, error) {
	l, err := NewLayout(f)
	if err != nil {
		return nil, err
	}
	return NewWithLayout(l, secret)
}

// NewWithLayout is New for an already compiled layout.
func NewWithLayout(l *Layout, secret []byte) (*Engine, error) {
	return NewForCounter(l, l.counter, secret)
}

// NewForCounter is NewWithLayout with the permutation keyed by counterName
// instead of l.CounterName(): the counter a promotion reserved its sequence
// numbers from, as stored with it. The two differ only for a promotion created
// before its format's counter name changed (canonical codes, migration
// 00006): it keeps the permutation its first codes came from, so the rest of
// its sequence range stays distinct from them and from codes of promotions
// created since, which use the new counter. An empty counterName means
// l.CounterName().
func NewForCounter(l *Layout, counterName string, secret []byte) (*Engine, error) {
	if len(secret) < MinSecretLen {
		return nil, promo.Errorf(promo.EInvalid,
			"codes secret is too short: %d bytes, need at least %d random bytes", len(secret), MinSecretLen)
	}
	if counterName == "" {
		counterName = l.counter
	}
	if l.serial {
		return &Engine{layout: l, counter: counterName, tail: deriveTailKey(secret, counterName)}, nil
	}
	return &Engine{layout: l, counter: counterName, perm: newPermutation(l.space, deriveKeys(secret, counterName))}, nil
}

// formatKey is HMAC-SHA256(secret, counterName): every key of a code space
// derives from it, so code spaces get unrelated keys.
func formatKey(secret []byte, counterName string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(counterName))
	return m.Sum(nil)
}

// tailLabel is the message whose MAC under the format key is the serial
// style's tail key. It differs from every round key's ("feistel" || i, 8
// bytes), so the tail key and the permutation's keys are independent even for
// one code space.
const tailLabel = "serial-tail"

// deriveTailKey derives the SipHash key of a serial code space's tails: the
// first 16 bytes of HMAC-SHA256(formatKey, "serial-tail").
func deriveTailKey(secret []byte, counterName string) sipKey {
	fk := formatKey(secret, counterName)
	m := hmac.New(sha256.New, fk)
	m.Write([]byte(tailLabel))
	k := m.Sum(nil)
	clear(fk)
	return newSipKey(binary.LittleEndian.Uint64(k[0:8]), binary.LittleEndian.Uint64(k[8:16]))
}

// deriveKeys derives the round keys of one code space: the format key is
// HMAC-SHA256(secret, counterName), so formats get unrelated permutations, and
// round key i is the first 16 bytes of HMAC-SHA256(formatKey, "feistel" || i).
func deriveKeys(secret []byte, counterName string) [rounds]sipKey {
	formatKey := formatKey(secret, counterName)
	var keys [rounds]sipKey
	rm := hmac.New(sha256.New, formatKey)
	var sum [sha256.Size]byte
	for i := range keys {
		rm.Reset()
		rm.Write([]byte{'f', 'e', 'i', 's', 't', 'e', 'l', byte(i)})
		rk := rm.Sum(sum[:0])
		keys[i] = newSipKey(binary.LittleEndian.Uint64(rk[0:8]), binary.LittleEndian.Uint64(rk[8:16]))
	}
	clear(formatKey)
	return keys
}

// Layout returns the engine's layout.
func (e *Engine) Layout() *Layout { return e.layout }

// AppendCode appends the canonical code for sequence number seq to dst. It is
// the hot path: no allocation when dst has CodeLen bytes of spare capacity.
// seq must be below Space (the stores never hand out more than SeqLimit); a
// larger seq is a programming error and panics.
func (e *Engine) AppendCode(dst []byte, seq uint64) []byte {
	if seq >= e.layout.space {
		panic(fmt.Sprintf("codes: sequence number %d outside the code space [0, %d)", seq, e.layout.space))
	}
	if e.layout.serial {
		return e.appendSerial(dst, seq)
	}
	return e.layout.appendValue(dst, e.perm.forward(seq))
}

// AppendCodes appends the canonical codes of the n sequence numbers seq,
// seq+1, ..., seq+n-1 to dst, back to back, CodeLen bytes each (the layout of
// promo.Chunk.Codes). It gives the same codes as n calls of AppendCode, faster:
// it keeps two codes in flight so the SipHash chains of both overlap in the
// core. No allocation when dst has n·CodeLen bytes of spare capacity. The
// range must lie within the code space, else it panics.
func (e *Engine) AppendCodes(dst []byte, seq uint64, n int) []byte {
	p, l := &e.perm, e.layout
	if n <= 0 {
		return dst
	}
	if l.serial {
		if seq >= l.space || uint64(n) > l.space-seq {
			panic(fmt.Sprintf("codes: sequence numbers [%d, %d+%d) outside the code space [0, %d)", seq, seq, n, l.space))
		}
		dst = slices.Grow(dst, n*l.codeLen)
		for i := range uint64(n) {
			dst = e.appendSerial(dst, seq+i)
		}
		return dst
	}
	if seq >= p.space || uint64(n) > p.space-seq {
		panic(fmt.Sprintf("codes: sequence numbers [%d, %d+%d) outside the code space [0, %d)", seq, seq, n, p.space))
	}
	cl := l.codeLen
	dst = slices.Grow(dst, n*cl)
	base := len(dst)
	dst = dst[:base+n*cl]
	out := dst[base:]
	if n == 1 {
		l.writeCode(out, p.forward(seq))
		return dst
	}
	// Two lanes, each working on one code: a lane's value is either a fresh
	// sequence number or mid-walk (≥ space); after a step, a value below the
	// space is the lane's result. When the numbers run out, forward finishes
	// the remaining lane, whichever kind its value is.
	ia, ib, next := 0, 1, 2
	xa, xb := seq, seq+1
	for {
		xa, xb = p.feistel2(xa, xb)
		if xa < p.space {
			l.writeCode(out[ia*cl:], xa)
			ia, xa = next, seq+uint64(next)
			next++
		}
		if xb < p.space {
			l.writeCode(out[ib*cl:], xb)
			ib, xb = next, seq+uint64(next)
			next++
		}
		if next > n { // a lane ran out of numbers (ia or ib ≥ n)
			if ia < n {
				l.writeCode(out[ia*cl:], p.forward(xa))
			}
			if ib < n {
				l.writeCode(out[ib*cl:], p.forward(xb))
			}
			return dst
		}
	}
}

// Code returns the canonical code for seq, or an error when seq is outside
// the code space.
func (e *Engine) Code(seq uint64) (string, error) {
	if seq >= e.layout.space {
		return "", promo.Errorf(promo.EInvalid, "sequence number %d outside the code space [0, %d)", seq, e.layout.space)
	}
	return string(e.AppendCode(make([]byte, 0, e.layout.codeLen), seq)), nil
}

// Decode parses code (as Parse does) and returns the sequence number it was
// generated from. Every valid code of the random style decodes to some
// sequence number below Space; whether that number was ever issued is for
// the caller to check. A serial code decodes to its serial - 1 only when its
// tail is the one the key gives that serial: a code with a forged tail (and
// a check character made to fit) is refused.
func (e *Engine) Decode(code string) (uint64, error) {
	var buf [MaxCodeLen]byte
	_, v, err := e.layout.parse(buf[:0], code)
	if err != nil {
		return 0, err
	}
	if e.layout.serial {
		if v.tail != e.tailOf(v.seq) {
			return 0, errTailMismatch
		}
		return v.seq, nil
	}
	return e.perm.inverse(v.seq), nil
}

// errTailMismatch is a serial code whose tail was not made with the key.
var errTailMismatch = &promo.Error{Code: promo.EInvalid,
	Message: "invalid code: the tail does not belong to the serial"}

// String describes the engine without its keys.
func (e *Engine) String() string { return "codes.Engine(" + e.counter + ")" }

// GoString keeps %#v from printing the keys.
func (e *Engine) GoString() string { return e.String() }
