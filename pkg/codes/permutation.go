package codes

import "math/bits"

// rounds is the number of Feistel rounds. Luby–Rackoff needs 3 (4 for a
// strong PRP); Patarin's bounds improve with more rounds, and 8 keeps a wide
// margin over the 6 his best bounds use. 10 rounds measured about 20% slower
// and missed the 3M codes/s budget on the 2-core reference machine.
const rounds = 8

// permutation is a keyed bijection of [0, space): a balanced Feistel network
// over 2·half bits whose round function is SipHash-2-4 of (round, right half),
// restricted to [0, space) by cycle-walking. It is immutable.
type permutation struct {
	space uint64
	half  uint   // bits per Feistel half
	mask  uint64 // (1<<half)-1
	keys  [rounds]sipKey
}

// newPermutation builds the permutation of [0, space), space ≥ 2 and
// space ≤ 2^63 (so that the 2·half-bit domain fits a uint64).
func newPermutation(space uint64, keys [rounds]sipKey) permutation {
	if space < 2 || space > 1<<63 {
		panic("codes: permutation space out of range")
	}
	// Smallest even bit count 2·half with 2^(2·half) ≥ space.
	need := uint(bits.Len64(space - 1))
	half := (need + 1) / 2
	return permutation{space: space, half: half, mask: 1<<half - 1, keys: keys}
}

// domain is 2^(2·half), the size of the Feistel network's domain.
func (p *permutation) domain() uint64 {
	if 2*p.half == 64 {
		return 0 // 2^64 does not fit; callers only use it for small spaces
	}
	return 1 << (2 * p.half)
}

// forward maps x ∈ [0, space) to its image in [0, space). Cycle-walking: apply
// the Feistel network until the value falls back into [0, space). This ends,
// because x lies on a cycle of the network's permutation of the domain; the
// expected number of steps is domain/space < 4.
func (p *permutation) forward(x uint64) uint64 {
	for {
		x = p.feistel(x)
		if x < p.space {
			return x
		}
	}
}

// inverse is forward's inverse: walk the inverse network the same way.
func (p *permutation) inverse(y uint64) uint64 {
	for {
		y = p.feistelInverse(y)
		if y < p.space {
			return y
		}
	}
}

// feistel is one pass of the network over the 2·half-bit domain. Round i
// maps (L, R) to (R, L ⊕ F_i(R)) with F_i(R) = SipHash-2-4_{k_i}(i<<32 | R)
// truncated to half bits. The SipHash of the 8-byte message is written out
// here (the compiler does not inline sum8 into a loop); TestFeistelMatchesSum8
// checks it against sum8.
func (p *permutation) feistel(x uint64) uint64 {
	l, r := x>>p.half, x&p.mask
	for i := range rounds {
		k := &p.keys[i]
		m := uint64(i)<<32 | r
		// c-rounds over m. The first quarter of the first SipRound touches
		// only v0 and v1, which do not depend on m: it is precomputed (h0, h1).
		v0, v1, v2, v3 := k.h0, k.h1, k.v2, k.v3^m
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v2 = bits.RotateLeft64(v2, 32)

		v0 += v1
		v1 = bits.RotateLeft64(v1, 13) ^ v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v2 = bits.RotateLeft64(v2, 32)
		v0 ^= m

		// c-rounds over the final block (length 8, no tail bytes)
		const b = 8 << 56
		v3 ^= b
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13) ^ v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v2 = bits.RotateLeft64(v2, 32)

		v0 += v1
		v1 = bits.RotateLeft64(v1, 13) ^ v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v2 = bits.RotateLeft64(v2, 32)
		v0 ^= b

		// d-rounds
		v2 ^= 0xff
		for range 4 {
			v0 += v1
			v1 = bits.RotateLeft64(v1, 13) ^ v0
			v0 = bits.RotateLeft64(v0, 32)
			v2 += v3
			v3 = bits.RotateLeft64(v3, 16) ^ v2
			v0 += v3
			v3 = bits.RotateLeft64(v3, 21) ^ v0
			v2 += v1
			v1 = bits.RotateLeft64(v1, 17) ^ v2
			v2 = bits.RotateLeft64(v2, 32)
		}
		l, r = r, l^((v0^v1^v2^v3)&p.mask)
	}
	return l<<p.half | r
}

// feistelInverse undoes feistel: round i backwards maps (L', R') = (R, L ⊕
// F_i(R)) to (R' ⊕ F_i(L'), L'). Decoding is not a hot path, so it calls sum8.
func (p *permutation) feistelInverse(y uint64) uint64 {
	l, r := y>>p.half, y&p.mask
	for i := rounds - 1; i >= 0; i-- {
		f := p.keys[i].sum8(uint64(i)<<32|l) & p.mask
		l, r = r^f, l
	}
	return l<<p.half | r
}

// feistel2 is feistel on two independent values at once. One SipHash chain
// leaves most of the core's execution ports idle waiting on its own
// results; two chains fill them, so a pair costs well under two singles.
func (p *permutation) feistel2(x, y uint64) (uint64, uint64) {
	la, ra := x>>p.half, x&p.mask
	lb, rb := y>>p.half, y&p.mask
	for i := range rounds {
		k := &p.keys[i]
		ma, mb := uint64(i)<<32|ra, uint64(i)<<32|rb
		a0, a1, a2, a3 := k.h0, k.h1, k.v2, k.v3^ma
		b0, b1, b2, b3 := k.h0, k.h1, k.v2, k.v3^mb
		// Rest of the first SipRound (its first quarter is precomputed).
		a2 += a3
		b2 += b3
		a3 = bits.RotateLeft64(a3, 16) ^ a2
		b3 = bits.RotateLeft64(b3, 16) ^ b2
		a0 += a3
		b0 += b3
		a3 = bits.RotateLeft64(a3, 21) ^ a0
		b3 = bits.RotateLeft64(b3, 21) ^ b0
		a2 += a1
		b2 += b1
		a1 = bits.RotateLeft64(a1, 17) ^ a2
		b1 = bits.RotateLeft64(b1, 17) ^ b2
		a2 = bits.RotateLeft64(a2, 32)
		b2 = bits.RotateLeft64(b2, 32)

		a0, a1, a2, a3 = sipRound(a0, a1, a2, a3)
		b0, b1, b2, b3 = sipRound(b0, b1, b2, b3)
		a0 ^= ma
		b0 ^= mb
		const fin = 8 << 56
		a3 ^= fin
		b3 ^= fin
		a0, a1, a2, a3 = sipRound(a0, a1, a2, a3)
		b0, b1, b2, b3 = sipRound(b0, b1, b2, b3)
		a0, a1, a2, a3 = sipRound(a0, a1, a2, a3)
		b0, b1, b2, b3 = sipRound(b0, b1, b2, b3)
		a0 ^= fin
		b0 ^= fin
		a2 ^= 0xff
		b2 ^= 0xff
		for range 4 {
			a0, a1, a2, a3 = sipRound(a0, a1, a2, a3)
			b0, b1, b2, b3 = sipRound(b0, b1, b2, b3)
		}
		la, ra = ra, la^((a0^a1^a2^a3)&p.mask)
		lb, rb = rb, lb^((b0^b1^b2^b3)&p.mask)
	}
	return la<<p.half | ra, lb<<p.half | rb
}
