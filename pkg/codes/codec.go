package codes

import (
	"fmt"
	"math/bits"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/promocodes/promocodes/pkg/promo"
)

// divider divides by a constant d ≥ 2 with a multiply and a shift
// (Granlund–Montgomery, "Division by invariant integers using
// multiplication", 1994, Theorem 4.2 with N = 63): with l = ⌈log₂ d⌉ and
// m = ⌈2^(63+l) / d⌉, which fits 64 bits, ⌊x/d⌋ = ⌊m·x / 2^(63+l)⌋ for every
// x < 2^63. Our values are < MaxSpace < 2^63. A hardware 64-bit DIV costs tens
// of cycles per body character; this costs a few.
type divider struct {
	d     uint64
	m     uint64
	shift uint // l-1
}

func newDivider(d uint64) divider {
	l := uint(bits.Len64(d - 1)) // ⌈log₂ d⌉ for d ≥ 2
	q, r := bits.Div64(1<<(l-1), 0, d)
	if r != 0 {
		q++
	}
	return divider{d: d, m: q, shift: l - 1}
}

// divmod returns x/d and x%d for x < 2^63.
func (v divider) divmod(x uint64) (q, r uint64) {
	hi, _ := bits.Mul64(v.m, x)
	q = hi >> v.shift
	return q, x - q*v.d
}

// render writes the body for value v (< Space) and the check character into
// out, which has room for Length (+1) bytes. Digits go most significant first.
// v is split once into two halves whose digits are produced in two
// independent chains, which the core overlaps.
func (l *Layout) render(out []byte, v uint64) {
	var digits [64]byte
	n := l.length
	h := l.half
	hi, lo := v, uint64(0)
	if h > 0 {
		hi, lo = l.divHalf.divmod(v)
	}
	out = out[:n+b2i(l.check)]
	var acc uint64 // Σ weight·digit, for a linear check character
	for i := 0; i < h; i++ {
		q1, r1 := l.div.divmod(lo)
		q2, r2 := l.div.divmod(hi)
		lo, hi = q1, q2
		p1, p2 := (n-1-i)&63, (n-h-1-i)&63
		out[p1], out[p2] = l.alphabet[r1&127], l.alphabet[r2&127]
		digits[p1], digits[p2] = byte(r1), byte(r2)
		acc += l.weight[p1]*r1 + l.weight[p2]*r2
	}
	if n-h > h { // odd length: the most significant digit is left in hi
		out[0], digits[0] = l.alphabet[hi&127], byte(hi)
		acc += l.weight[0] * hi
	}
	if !l.check {
		return
	}
	var s byte
	if l.linear {
		_, r := l.div.divmod(acc)
		s = byte(r)
	} else {
		s = l.qg.fold(0, digits[:n])
	}
	out[n] = l.alphabet[l.qg.zero[s]&127]
}

// appendValue appends the canonical code of body value v (< Space).
func (l *Layout) appendValue(dst []byte, v uint64) []byte {
	dst = slices.Grow(dst, l.codeLen)
	n := len(dst)
	dst = dst[:n+l.codeLen]
	l.writeCode(dst[n:], v)
	return dst
}

// writeCode writes the canonical code of body value v into out[:CodeLen].
func (l *Layout) writeCode(out []byte, v uint64) {
	p := copy(out, l.prefixKey)
	l.render(out[p:], v)
	copy(out[l.codeLen-len(l.suffixKey):], l.suffixKey)
}

// Parse checks a code as a shopper or an admin typed it and returns its
// canonical form, the one Canonical gives: whitespace and separator
// characters (SeparatorChars) anywhere are ignored, letters match in either
// case. The error is a *promo.Error with code promo.EInvalid whose message
// starts "invalid code: " and says what is wrong: the length, the prefix or
// suffix, a character not in the charset (with its position in the input), or
// a check character that does not match.
func (l *Layout) Parse(s string) (string, error) {
	var buf [MaxCodeLen]byte
	out, _, err := l.parse(buf[:0], s)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

func invalidCode(format string, args ...any) error {
	return promo.Errorf(promo.EInvalid, "invalid code: "+format, args...)
}

// parsed is what a code says: for the random style, the body value in seq
// (the permutation's image of the sequence number); for the serial style, the
// sequence number (serial - 1) and the tail's value.
type parsed struct{ seq, tail uint64 }

// parse appends the canonical form of s to dst and returns what it says.
// It canonicalises as Canonical does, but keeps every other byte (so that a
// stray character is reported with its position rather than refused without
// one).
func (l *Layout) parse(dst []byte, s string) ([]byte, parsed, error) {
	want := l.codeLen
	var kept [MaxCodeLen]byte
	var pos [MaxCodeLen]int32 // byte offset in s of each kept byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			if r, size := utf8.DecodeRuneInString(s[i:]); r != utf8.RuneError && unicode.IsSpace(r) {
				i += size - 1
				continue
			}
		} else if isSpace(c) || isSeparator(c) {
			continue
		}
		if n < want {
			kept[n], pos[n] = upper(c), int32(i)
		}
		n++
	}
	if n != want {
		return dst, parsed{}, invalidCode("wrong length: %d characters without separators and spaces, want %d", n, want)
	}
	in := kept[:n]
	p := len(l.prefixKey)
	if string(in[:p]) != l.prefixKey {
		return dst, parsed{}, invalidCode("wrong prefix: want %q", l.prefix)
	}
	k := l.digits + l.length + b2i(l.check)
	wrongSuffix := string(in[p+k:]) != l.suffixKey
	if l.serial {
		if wrongSuffix {
			return dst, parsed{}, invalidCode("wrong suffix: want %q", l.suffix)
		}
		seq, tail, err := l.parseSerial(s, in[p:p+k], pos[p:p+k])
		if err != nil {
			return dst, parsed{}, err
		}
		return append(dst, in...), parsed{seq: seq, tail: tail}, nil
	}
	var digits [64]byte
	var v uint64
	for i := range k {
		d := l.decode[in[p+i]]
		if d == noDigit {
			at := int(pos[p+i])
			return dst, parsed{}, invalidCode("%s at position %d is not in the charset", describeChar(s, at),
				utf8.RuneCountInString(s[:at])+1)
		}
		digits[i] = d
		if i < l.length {
			v = v*l.n + uint64(d)
		}
	}
	if wrongSuffix {
		return dst, parsed{}, invalidCode("wrong suffix: want %q", l.suffix)
	}
	if l.check && l.qg.fold(0, digits[:k]) != 0 {
		return dst, parsed{}, errCheckMismatch
	}
	return append(dst, in...), parsed{seq: v}, nil
}

// describeChar names the character starting at byte i of s for an error.
func describeChar(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte 0x%02x", s[i])
	}
	return fmt.Sprintf("character %q", r)
}

// AppendDisplay appends the display form of a canonical code: the prefix
// and suffix as the format writes them, the body and check character in the
// charset's own case, and the separator after every GroupSize characters of
// body + check character. A string that is not a canonical code of the layout
// (see Check; the check character is not verified) is appended unchanged.
func (l *Layout) AppendDisplay(dst, canonical []byte) []byte {
	if len(canonical) != l.codeLen {
		return append(dst, canonical...)
	}
	p, q := len(l.prefixKey), l.codeLen-len(l.suffixKey)
	if string(canonical[:p]) != l.prefixKey || string(canonical[q:]) != l.suffixKey {
		return append(dst, canonical...)
	}
	run := canonical[p:q] // body and check character
	if l.serial {
		return l.appendSerialDisplay(dst, canonical, run)
	}
	for _, c := range run {
		if l.decode[c] == noDigit {
			return append(dst, canonical...)
		}
	}
	dst = append(dst, l.prefix...)
	for i, c := range run {
		if l.sep != 0 && i > 0 && i%l.group == 0 {
			dst = append(dst, l.sep)
		}
		dst = append(dst, l.display[c])
	}
	return append(dst, l.suffix...)
}

// Display returns the display form of a canonical code.
func (l *Layout) Display(canonical string) string {
	return string(l.AppendDisplay(make([]byte, 0, 2*l.codeLen), []byte(canonical)))
}
