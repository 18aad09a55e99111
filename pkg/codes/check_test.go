package codes

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

// TestQuasigroupsTotallyAntiSymmetric checks, for every charset size we
// support, that the table is a quasigroup (Latin square) and totally
// anti-symmetric: (c∘x)∘y = (c∘y)∘x only when x = y, for all c, x, y.
func TestQuasigroupsTotallyAntiSymmetric(t *testing.T) {
	supported := 0
	for n := 2; n <= maxCharset; n++ {
		if checkOrderError(n) != "" {
			continue
		}
		supported++
		q := newQuasigroup(n)
		op := func(x, y int) int { return int(q.op[x*qgStride+y]) }
		for x := range n {
			var row, col [maxCharset]bool
			for y := range n {
				if v := op(x, y); v >= n || row[v] {
					t.Fatalf("n=%d: row %d is not a permutation", n, x)
				} else {
					row[v] = true
				}
				if v := op(y, x); col[v] {
					t.Fatalf("n=%d: column %d is not a permutation", n, x)
				} else {
					col[v] = true
				}
			}
			if op(x, int(q.zero[x])) != 0 {
				t.Fatalf("n=%d: zero[%d] wrong", n, x)
			}
		}
		for c := range n {
			for x := range n {
				cx := op(c, x)
				for y := range n {
					if x != y && op(cx, y) == op(op(c, y), x) {
						t.Fatalf("n=%d: (%d∘%d)∘%d = (%d∘%d)∘%d", n, c, x, y, c, y, x)
					}
				}
			}
		}
	}
	if supported < 70 {
		t.Errorf("only %d sizes supported", supported)
	}
}

func TestCheckCharUnsupportedSizes(t *testing.T) {
	for _, n := range []int{2, 6, 14, 18, 22, 26, 34, 62} {
		cs := printableRun(n)
		length := maxLength(uint64(n))
		_, err := newLayout(promo.Format{Charset: cs, Length: length}, 1)
		if !hasField(err, FieldCheckChar) {
			t.Errorf("size %d: err = %v, want an error on %s", n, err, FieldCheckChar)
		}
		off := false
		if _, err := newLayout(promo.Format{Charset: cs, Length: length, CheckChar: &off}, 1); err != nil {
			t.Errorf("size %d without check char: %v", n, err)
		}
	}
}

// TestCheckCharDetectsErrors is exhaustive over a sample of codes of every
// preset and several custom sizes: every single-character substitution at
// every position (check character included) and every adjacent transposition
// of different characters (the last body character with the check character
// included) is rejected.
func TestCheckCharDetectsErrors(t *testing.T) {
	formats := []promo.Format{
		{Charset: PresetAlnum, Length: 10, Prefix: "WNTR-"},
		{Charset: PresetNumeric, Length: 8},
		{Charset: PresetAlpha, Length: 6, Suffix: "-X"},
		{Charset: "ABCD", Length: 12},                                            // 2^2
		{Charset: "0123456789ABCDEFGHJKMNPQ", Length: 6},                         // 24 = 3·2^3
		{Charset: "0123456789ABCDEFGHJKMNPQRSTUVW", Length: 5},                   // 30 = 10·3
		{Charset: "0123456789abcdefghijklmnopqrstuvwxyz!#$%&*+/=?@^", Length: 5}, // 48 = 3·16, lower case
		{Charset: "01234", Length: 9},                                            // 5
		{Charset: printableRun(64), Length: 4},                                   // 64 = 2^6
		{Charset: printableRun(65), Length: 4},                                   // 65 odd, the largest charset
		{Charset: printableRun(50), Length: 4},                                   // 50 = 10·5
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, f := range formats {
		l, err := NewLayout(f)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		e, err := NewWithLayout(l, testSecret(r))
		if err != nil {
			t.Fatal(err)
		}
		p, k := len(l.prefixKey), l.length+1
		for range 60 {
			code := []byte(must(e.Code(r.Uint64N(l.Space()))))
			if _, err := l.Parse(string(code)); err != nil {
				t.Fatalf("%s: valid code rejected: %v", code, err)
			}
			for i := p; i < p+k; i++ {
				orig := code[i]
				for j := 0; j < len(l.canon); j++ {
					if l.canon[j] == orig {
						continue
					}
					code[i] = l.canon[j]
					if shape, err := l.Check(string(code)); !shape || err == nil {
						t.Fatalf("%q: Check missed a substitution at %d: %v, %v", f.Charset, i, shape, err)
					}
					if _, err := l.Parse(string(code)); err == nil {
						t.Fatalf("%q: substitution at %d accepted", f.Charset, i)
					}
				}
				code[i] = orig
			}
			for i := p; i+1 < p+k; i++ {
				if code[i] == code[i+1] {
					continue
				}
				code[i], code[i+1] = code[i+1], code[i]
				if shape, err := l.Check(string(code)); !shape || err == nil {
					t.Fatalf("%q: Check missed a transposition at %d: %v, %v", f.Charset, i, shape, err)
				}
				if _, err := l.Parse(string(code)); err == nil {
					t.Fatalf("%q: transposition at %d accepted", f.Charset, i)
				}
				code[i], code[i+1] = code[i+1], code[i]
			}
		}
	}
}

// printableRun returns the first n (at most 65) printable ASCII characters
// from '!' that a charset may hold: no separator, no lower-case letter.
func printableRun(n int) string {
	var b []byte
	for c := byte('!'); c < 0x7f && len(b) < n; c++ {
		if !isSeparator(c) && (c < 'a' || c > 'z') {
			b = append(b, c)
		}
	}
	if len(b) < n {
		panic(fmt.Sprintf("printableRun(%d): a charset has at most %d characters", n, len(b)))
	}
	return string(b)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func testSecret(r *rand.Rand) []byte {
	s := make([]byte, MinSecretLen)
	for i := range s {
		s[i] = byte(r.Uint32())
	}
	return s
}

func hasField(err error, field string) bool {
	e, ok := err.(*promo.Error)
	if !ok {
		return false
	}
	for _, f := range e.Fields {
		if f.Field == field {
			return true
		}
	}
	return false
}
