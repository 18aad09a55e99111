package codes

import (
	"math/rand/v2"
	"testing"
)

// TestSipHashVectors checks SipHash-2-4 against the reference: the paper's
// Appendix A vector (key 00..0f, message 00..0e) and the reference
// implementation's vectors for messages 00..(len-1) of length 0 and 8.
func TestSipHashVectors(t *testing.T) {
	const k0, k1 = 0x0706050403020100, 0x0f0e0d0c0b0a0908
	msg := make([]byte, 15)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, tc := range []struct {
		n    int
		want uint64
	}{{15, 0xa129ca6149be45e5}, {0, 0x726fdb47dd0e0e31}, {8, 0x93f5f5799a932462}} {
		if got := sipHash24(k0, k1, msg[:tc.n]); got != tc.want {
			t.Errorf("SipHash-2-4(len %d) = %#x, want %#x", tc.n, got, tc.want)
		}
	}
	k := newSipKey(k0, k1)
	if got := k.sum8(0x0706050403020100); got != 0x93f5f5799a932462 {
		t.Errorf("sum8(00..07) = %#x, want 0x93f5f5799a932462", got)
	}
}

func TestSum8MatchesGeneral(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var b [8]byte
	for range 10000 {
		k0, k1, m := r.Uint64(), r.Uint64(), r.Uint64()
		for i := range b {
			b[i] = byte(m >> (8 * i))
		}
		k := newSipKey(k0, k1)
		if got, want := k.sum8(m), sipHash24(k0, k1, b[:]); got != want {
			t.Fatalf("sum8 = %#x, general = %#x", got, want)
		}
	}
}

// TestFeistelMatchesSum8 checks the hand-inlined SipHash in feistel against a
// plain Feistel network written with sum8.
func TestFeistelMatchesSum8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, space := range []uint64{2, 3, 1000, 1 << 20, 1e6 + 7, 1 << 40, 31 * 31 * 31 * 31 * 31 * 31 * 31 * 31 * 31 * 31, 1 << 63} {
		p := newPermutation(space, testKeys(r))
		for range 2000 {
			x := r.Uint64() & (p.mask<<p.half | p.mask)
			l, rr := x>>p.half, x&p.mask
			for i := range rounds {
				l, rr = rr, l^(p.keys[i].sum8(uint64(i)<<32|rr)&p.mask)
			}
			if got, want := p.feistel(x), l<<p.half|rr; got != want {
				t.Fatalf("space %d: feistel(%d) = %d, reference %d", space, x, got, want)
			}
			if back := p.feistelInverse(p.feistel(x)); back != x {
				t.Fatalf("space %d: feistelInverse(feistel(%d)) = %d", space, x, back)
			}
		}
	}
}

func testKeys(r *rand.Rand) (ks [rounds]sipKey) {
	for i := range ks {
		ks[i] = newSipKey(r.Uint64(), r.Uint64())
	}
	return ks
}
