package codes

import "fmt"

// The check character is Damm's algorithm over a totally anti-symmetric (TA)
// quasigroup (Q, ∘) of order n = charset size. With state s₀ = 0 and
// s_{i+1} = s_i ∘ d_i over the body digits, the check character is the unique
// c with s ∘ c = 0, so a valid code folds to 0. Why that catches errors:
//
//   - Quasigroup: both x ↦ s∘x and s ↦ s∘x are bijections. A single changed
//     character changes the state at its position, and every later step keeps
//     two different states different, so the fold no longer ends at 0.
//   - Total anti-symmetry: (c∘x)∘y = (c∘y)∘x implies x = y. Swapping two
//     different adjacent characters (including the last body character and the
//     check character) changes the state right after the pair, and again
//     nothing later can bring the states together.
//
// Constructions (Damm, "Totally anti-symmetric quasigroups for all orders
// n ≠ 2, 6", 2007, and his thesis):
//
//   - n odd: x∘y = (2x + y) mod n. Quasigroup: y ↦ 2x+y is a shift, and
//     x ↦ 2x+y is a bijection because 2 is invertible mod odd n. TA:
//     (c∘x)∘y = 4c + 2x + y and (c∘y)∘x = 4c + 2y + x, equal mod n iff
//     x ≡ y.
//   - n = 2^k, k ≥ 2: GF(2^k) with x∘y = a·x ⊕ y, a ∉ {0, 1} (we use a = the
//     polynomial x). Quasigroup since a ≠ 0 is invertible. TA:
//     a(a c ⊕ x) ⊕ y = a(a c ⊕ y) ⊕ x ⇔ (a ⊕ 1)(x ⊕ y) = 0 ⇔ x = y since a ≠ 1.
//     (n = 2 has no TA quasigroup at all: a ≠ 1 leaves only a = 0.)
//   - n = 10: Damm's published table.
//   - Direct products: if A and B are TA quasigroups, so is A × B with the
//     componentwise operation (an equation between pairs holds iff it holds
//     in each component). So n = m·2^k (m odd, k ≥ 2) and n = 10·m (m odd)
//     work.
//
// That covers every n except n ≡ 2 (mod 4) with n/2 not a multiple of 5:
// 2 and 6 (no TA quasigroup exists), and 14, 18, 22, 26, 34, ... (they exist,
// but need Damm's general construction, which is not built in).

// damm10 is Damm's TA quasigroup of order 10 (zero diagonal).
var damm10 = [10][10]byte{
	{0, 3, 1, 7, 5, 9, 8, 6, 4, 2},
	{7, 0, 9, 2, 1, 5, 4, 8, 6, 3},
	{4, 2, 0, 6, 8, 7, 1, 3, 5, 9},
	{1, 7, 5, 0, 9, 8, 3, 4, 2, 6},
	{6, 1, 2, 3, 0, 4, 5, 9, 7, 8},
	{3, 6, 7, 4, 2, 0, 9, 5, 8, 1},
	{5, 8, 6, 9, 7, 2, 0, 1, 3, 4},
	{8, 9, 4, 5, 3, 6, 2, 0, 1, 7},
	{9, 4, 3, 8, 6, 1, 7, 2, 0, 5},
	{2, 5, 8, 1, 4, 3, 6, 7, 9, 0},
}

// gfPoly[k] is an irreducible polynomial of degree k over GF(2).
var gfPoly = [...]uint{2: 0x7, 3: 0xb, 4: 0x13, 5: 0x25, 6: 0x43}

// qgStride is the row stride of quasigroup tables: a shift instead of a
// multiply on the hot path, and with a power-of-two table size a mask instead
// of a bounds check. 94 (the largest charset) < 128.
const qgStride = 128

// quasigroup is a TA quasigroup of order n as a full operation table.
type quasigroup struct {
	n    int
	op   [qgStride * qgStride]byte // op[x*qgStride+y] = x∘y
	zero [maxCharset]byte          // zero[s] = the c with s∘c = 0
}

// checkOrderError says why there is no check character for a charset of n
// characters, or returns "" when there is one.
func checkOrderError(n int) string {
	switch {
	case n%2 == 1 || n%4 == 0 || n%10 == 0:
		return ""
	case n == 2 || n == 6:
		return fmt.Sprintf("no check character can detect all single-character errors and adjacent swaps "+
			"with %d characters (no totally anti-symmetric quasigroup of order %d exists); "+
			"use a charset with an odd number of characters or a multiple of 4, or set checkChar to false", n, n)
	default:
		return fmt.Sprintf("a charset of %d characters (2 mod 4) is not supported for the check character; "+
			"supported sizes are odd, multiples of 4, and 10 times an odd number; "+
			"add or remove a character, or set checkChar to false", n)
	}
}

// newQuasigroup builds the TA quasigroup of order n. Call only when
// checkOrderError(n) == "".
func newQuasigroup(n int) *quasigroup {
	// Factor n = base · m with a table for base and the odd m in (2x+y) mod m.
	var base func(x, y int) int
	bn := 1
	switch {
	case n%10 == 0 && (n/10)%2 == 1:
		bn = 10
		base = func(x, y int) int { return int(damm10[x][y]) }
	case n%4 == 0:
		k := 0
		for n%(bn*2) == 0 {
			bn *= 2
			k++
		}
		poly := gfPoly[k]
		base = func(x, y int) int { return int(gfMul2(uint(x), k, poly)) ^ y }
	default:
		base = func(x, y int) int { return 0 }
	}
	m := n / bn
	odd := func(x, y int) int { return (2*x + y) % m }
	q := &quasigroup{n: n}
	// Element index e = u·bn + v, u ∈ Z_m (odd part), v in the base quasigroup.
	for x := range n {
		for y := range n {
			u := odd(x/bn, y/bn)
			v := base(x%bn, y%bn)
			z := u*bn + v
			q.op[x*qgStride+y] = byte(z)
			if z == 0 {
				q.zero[x] = byte(y)
			}
		}
	}
	return q
}

// gfMul2 multiplies x by the polynomial "x" in GF(2^k) modulo poly.
func gfMul2(x uint, k int, poly uint) uint {
	x <<= 1
	if x>>k != 0 {
		x ^= poly
	}
	return x
}

// fold runs the quasigroup over digit indices from state s.
func (q *quasigroup) fold(s byte, digits []byte) byte {
	for _, d := range digits {
		s = q.op[(int(s)*qgStride+int(d))&(len(q.op)-1)]
	}
	return s
}
