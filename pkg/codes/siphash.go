package codes

import (
	"encoding/binary"
	"math/bits"
)

// sipKey is a SipHash-2-4 key expanded into the initial state v0..v3, so the
// per-call key schedule is four loads.
// h0 and h1 are v0 and v1 after the first quarter of the first SipRound,
// which does not depend on the message.
type sipKey struct{ v0, v1, v2, v3, h0, h1 uint64 }

func newSipKey(k0, k1 uint64) sipKey {
	k := sipKey{
		v0: k0 ^ 0x736f6d6570736575,
		v1: k1 ^ 0x646f72616e646f6d,
		v2: k0 ^ 0x6c7967656e657261,
		v3: k1 ^ 0x7465646279746573,
	}
	k.h0 = k.v0 + k.v1
	k.h1 = bits.RotateLeft64(k.v1, 13) ^ k.h0
	k.h0 = bits.RotateLeft64(k.h0, 32)
	return k
}

// sum8 is SipHash-2-4 of exactly one 8-byte message m (read little-endian):
// one compression of m, one of the final block (length 8 in the top byte, no
// tail bytes), then finalisation. Straight-line code, no allocation; the
// compiler inlines the rounds.
func (k *sipKey) sum8(m uint64) uint64 {
	v0, v1, v2, v3 := k.v0, k.v1, k.v2, k.v3
	v3 ^= m
	// two SipRounds
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)

	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	v0 ^= m

	const b = 8 << 56 // final block: message length 8, no tail
	v3 ^= b
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= b

	v2 ^= 0xff
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	return v0 ^ v1 ^ v2 ^ v3
}

func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// sipHash24 is the general SipHash-2-4 of any message. The engine never calls
// it; it is the reference the specialised sum8 is tested against (and it is
// itself tested against the paper's test vector).
func sipHash24(k0, k1 uint64, msg []byte) uint64 {
	k := newSipKey(k0, k1)
	v0, v1, v2, v3 := k.v0, k.v1, k.v2, k.v3
	n := len(msg)
	for len(msg) >= 8 {
		m := binary.LittleEndian.Uint64(msg)
		v3 ^= m
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0 ^= m
		msg = msg[8:]
	}
	b := uint64(n) << 56
	for i, c := range msg {
		b |= uint64(c) << (8 * i)
	}
	v3 ^= b
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= b
	v2 ^= 0xff
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}
