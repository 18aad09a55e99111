package codes

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/promocodes/promocodes/pkg/promo"
)

// The serial style: a code shows its serial number and a keyed check tail,
//
//	prefix + serial + [separator] + tail + check character + suffix
//	SPRING- 000123    -              K7QXM  (the check character is the tail's last)
//
// The serial is the sequence number + 1, zero-padded to SerialDigits decimal
// digits, so it sorts and a series starts at 000001. Serials come from the
// sequence range reserved for the promotion, so they are distinct by
// construction, like the random style's codes. The tail is TailLength
// characters of the charset: tail = MAC(serial) mod n^TailLength, MAC being
// SipHash-2-4 keyed from the secret and the code space (deriveTailKey), so
// without the key a tail is a uniformly random string to a guesser: a guess
// at a known serial hits with probability 1/n^TailLength, whatever the
// number of codes issued. The check character (Damm, over the charset and
// the digits together, see Layout.ck) catches typos offline, without the key.

// MaxSerialDigits is the longest serial: 10^18 - 1 sequence numbers still fit
// the stores' int64.
const MaxSerialDigits = 18

// MaxTailSpace bounds n^TailLength. The tail is a 64-bit MAC reduced modulo
// the tail space, which favours small values by at most tailSpace/2^64: at
// most 2^-16 here, so every tail is within a factor 1 ± 2^-16 of uniform.
const MaxTailSpace = 1 << 48

// serialCheckAlphabet is the check character's alphabet of a serial format
// whose canonical charset is canon: canon, then the decimal digits it lacks.
func serialCheckAlphabet(canon string) string {
	ck := []byte(canon)
	for c := byte('0'); c <= '9'; c++ {
		found := false
		for i := 0; i < len(canon); i++ {
			found = found || canon[i] == c
		}
		if !found {
			ck = append(ck, c)
		}
	}
	return string(ck)
}

// validateSerial checks the serial style's fields of f (the charset, prefix,
// suffix and separator are checked as for every style) and sets the
// layout's sizes.
func (l *Layout) validateSerial(f promo.Format, charsetOK bool, minSpace uint64, bad func(field, format string, args ...any)) {
	if f.Length != 0 {
		bad(FieldLength, "is not used by style %q: its codes have format.serialDigits digits and "+
			"format.tailLength characters of the charset; drop length", promo.StyleSerial)
	}
	switch {
	case f.SerialDigits < 1:
		bad(FieldSerialDigits, "must be at least 1, got %d (style %q numbers its codes with this many digits)",
			f.SerialDigits, promo.StyleSerial)
	case f.SerialDigits > MaxSerialDigits:
		bad(FieldSerialDigits, "%d is too many: at most %d digits (serials are 64-bit sequence numbers)",
			f.SerialDigits, MaxSerialDigits)
	default:
		l.digits = f.SerialDigits
		l.space = pow(10, f.SerialDigits) - 1
	}
	if f.TailLength < 1 {
		bad(FieldTailLength, "must be at least 1, got %d", f.TailLength)
		return
	}
	if !charsetOK {
		return
	}
	n := uint64(len(l.chars))
	minTail, maxTail := minLength(n, minSpace), maxTailLength(n)
	switch {
	case f.TailLength > maxTail:
		bad(FieldTailLength, "%d is too long: %d^%d tails exceed the %d a 64-bit MAC fills evenly; "+
			"the maximum tailLength for a charset of %d characters is %d", f.TailLength, n, f.TailLength,
			uint64(MaxTailSpace), n, maxTail)
	case f.TailLength < minTail:
		bad(FieldTailLength, "%d is too short: a guess of the tail of a known serial would hit 1 in %d; "+
			"no format lets one guess in fewer than %d hit: use a tailLength of at least %d",
			f.TailLength, pow(n, f.TailLength), minSpace, minTail)
	default:
		l.length = f.TailLength
		l.tailSpace = pow(n, f.TailLength)
	}
}

// maxTailLength is the largest t with n^t ≤ MaxTailSpace.
func maxTailLength(n uint64) int {
	t := 0
	for p := pow(n, t+1); p != 0 && p <= MaxTailSpace; p = pow(n, t+1) {
		t++
	}
	return t
}

// compileSerial builds the serial style's tables once the layout is valid.
func (l *Layout) compileSerial() {
	l.ck = serialCheckAlphabet(l.canon)
	for i := range l.ckDecode {
		l.ckDecode[i] = noDigit
	}
	for i := 0; i < len(l.ck); i++ {
		c := l.ck[i]
		l.ckDecode[c] = byte(i)
		l.ckDisplay[c] = c
		if d := l.decode[c]; d != noDigit {
			l.ckDisplay[c] = l.chars[d] // the charset's own case
		}
	}
	for d := range l.digitCk {
		l.digitCk[d] = l.ckDecode['0'+d]
	}
	if l.check {
		l.qg = newQuasigroup(len(l.ck))
	}
}

// IsSerial reports whether the layout is of the serial style.
func (l *Layout) IsSerial() bool { return l.serial }

// SerialDigits is the number of digits of a serial (0 for the random style).
func (l *Layout) SerialDigits() int { return l.digits }

// TailSpace is the number of tails a serial code can have, n^tailLength: a
// guess at a known serial hits with probability 1/TailSpace. 0 for the
// random style.
func (l *Layout) TailSpace() uint64 { return l.tailSpace }

// writeSerial writes the canonical serial code of sequence number seq with
// tail value tail (< TailSpace) into out[:CodeLen].
func (l *Layout) writeSerial(out []byte, seq, tail uint64) {
	p := copy(out, l.prefixKey)
	body := out[p : p+l.digits+l.length+b2i(l.check)]
	var s byte // the check fold, over the serial's digits then the tail
	serial := seq + 1
	for i := l.digits - 1; i >= 0; i-- {
		q := serial / 10
		body[i] = '0' + byte(serial-10*q)
		serial = q
	}
	if l.check {
		for i := 0; i < l.digits; i++ {
			s = l.qg.op[(int(s)*qgStride+int(l.digitCk[body[i]-'0']))&(len(l.qg.op)-1)]
		}
	}
	var digits [64]byte // the tail's digits, which are their own values in ck
	t := body[l.digits : l.digits+l.length]
	for i := l.length - 1; i >= 0; i-- {
		q, r := l.div.divmod(tail)
		t[i], digits[i&63] = l.alphabet[r&127], byte(r)
		tail = q
	}
	if l.check {
		s = l.qg.fold(s, digits[:l.length])
		body[l.digits+l.length] = l.ck[l.qg.zero[s]]
	}
	copy(out[l.codeLen-len(l.suffixKey):], l.suffixKey)
}

// checkSerial is Check for the serial style.
func (l *Layout) checkSerial(canonical string) (shape bool, err error) {
	if len(canonical) != l.codeLen {
		return false, nil
	}
	p := len(l.prefixKey)
	if canonical[:p] != l.prefixKey || canonical[l.codeLen-len(l.suffixKey):] != l.suffixKey {
		return false, nil
	}
	body := canonical[p : p+l.digits+l.length+b2i(l.check)]
	nonzero := false
	var s byte
	for i := 0; i < l.digits; i++ {
		c := body[i]
		if c < '0' || c > '9' {
			return false, nil
		}
		nonzero = nonzero || c != '0'
		if l.check {
			s = l.qg.op[(int(s)*qgStride+int(l.digitCk[c-'0']))&(len(l.qg.op)-1)]
		}
	}
	if !nonzero { // serials start at 1
		return false, nil
	}
	for i := l.digits; i < l.digits+l.length; i++ {
		d := l.decode[body[i]]
		if d == noDigit {
			return false, nil
		}
		if l.check {
			s = l.qg.op[(int(s)*qgStride+int(d))&(len(l.qg.op)-1)] // ck begins with the charset
		}
	}
	if !l.check {
		return true, nil
	}
	c := l.ckDecode[body[len(body)-1]]
	if c == noDigit {
		return false, nil
	}
	if l.qg.op[(int(s)*qgStride+int(c))&(len(l.qg.op)-1)] != 0 {
		return true, errCheckMismatch
	}
	return true, nil
}

// parseSerial reads the body of a serial code (already upper-cased, without
// separators; pos holds each byte's offset in the typed string s) and
// returns the sequence number and the tail value.
func (l *Layout) parseSerial(s string, body []byte, pos []int32) (seq, tail uint64, err error) {
	var serial uint64
	for i := 0; i < l.digits; i++ {
		c := body[i]
		if c < '0' || c > '9' {
			return 0, 0, invalidCode("%s at position %d is not a digit of the serial (the first %d characters "+
				"after the prefix)", describeChar(s, int(pos[i])), utf8.RuneCountInString(s[:pos[i]])+1, l.digits)
		}
		serial = serial*10 + uint64(c-'0')
	}
	if serial == 0 {
		return 0, 0, invalidCode("serial %0*d: serials start at %0*d", l.digits, 0, l.digits, 1)
	}
	for i := l.digits; i < l.digits+l.length; i++ {
		d := l.decode[body[i]]
		if d == noDigit {
			return 0, 0, invalidCode("%s at position %d is not in the charset of the tail",
				describeChar(s, int(pos[i])), utf8.RuneCountInString(s[:pos[i]])+1)
		}
		tail = tail*l.n + uint64(d)
	}
	if l.check {
		last := len(body) - 1
		if l.ckDecode[body[last]] == noDigit {
			return 0, 0, invalidCode("%s at position %d cannot be a check character",
				describeChar(s, int(pos[last])), utf8.RuneCountInString(s[:pos[last]])+1)
		}
		var f byte // every byte is a digit, a tail character or (the last) a check character
		for _, c := range body {
			f = l.qg.op[(int(f)*qgStride+int(l.ckDecode[c]))&(len(l.qg.op)-1)]
		}
		if f != 0 {
			return 0, 0, errCheckMismatch
		}
	}
	return serial - 1, tail, nil
}

// appendSerialDisplay is AppendDisplay for the serial style, given the
// code's run between prefix and suffix.
func (l *Layout) appendSerialDisplay(dst, canonical, run []byte) []byte {
	if strings.Trim(string(run[:l.digits]), "0") == "" { // serials start at 1
		return append(dst, canonical...)
	}
	for i, c := range run {
		switch {
		case i < l.digits && (c < '0' || c > '9'),
			i >= l.digits && i < l.digits+l.length && l.decode[c] == noDigit,
			i == l.digits+l.length && l.ckDecode[c] == noDigit:
			return append(dst, canonical...)
		}
	}
	dst = append(dst, l.prefix...)
	dst = append(dst, run[:l.digits]...)
	if l.sep != 0 {
		dst = append(dst, l.sep)
	}
	for _, c := range run[l.digits : l.digits+l.length] {
		dst = append(dst, l.display[c])
	}
	if l.check {
		dst = append(dst, l.ckDisplay[run[len(run)-1]])
	}
	return append(dst, l.suffix...)
}

// SerialOf returns the serial number of a canonical code of a serial layout
// (what its digits say, without checking the tail), or false when canonical
// does not have the shape of one.
func (l *Layout) SerialOf(canonical string) (uint64, bool) {
	if !l.serial || len(canonical) != l.codeLen || canonical[:len(l.prefixKey)] != l.prefixKey {
		return 0, false
	}
	var serial uint64
	for _, c := range []byte(canonical[len(l.prefixKey) : len(l.prefixKey)+l.digits]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		serial = serial*10 + uint64(c-'0')
	}
	return serial, serial > 0
}

// tailOf is the tail of sequence number seq: the MAC of its serial reduced
// to the tail space.
func (e *Engine) tailOf(seq uint64) uint64 { return e.tail.sum8(seq+1) % e.layout.tailSpace }

// appendSerial appends the canonical serial code of seq.
func (e *Engine) appendSerial(dst []byte, seq uint64) []byte {
	l := e.layout
	dst = slices.Grow(dst, l.codeLen)
	n := len(dst)
	dst = dst[:n+l.codeLen]
	l.writeSerial(dst[n:], seq, e.tailOf(seq))
	return dst
}

// ShortestTail is the shortest tail length of a serial format with f's
// charset that keeps a guess at a known serial within maxDensity (a tail
// space of at least 1/maxDensity, and at least MinSpace). It returns 0 when
// no tail up to MaxTailSpace does, or when the charset is invalid.
func ShortestTail(f promo.Format, maxDensity float64) int {
	n := uint64(charsetSize(f.Charset))
	if n == 0 {
		return 0
	}
	for t := minLength(n, MinSpace); t <= maxTailLength(n); t++ {
		if SeqLimit(pow(n, t), maxDensity) >= 1 {
			return t
		}
	}
	return 0
}

// FewestSerialDigits is the smallest number of serial digits that numbers
// count codes (10^d - 1 ≥ count), or 0 when count needs more than
// MaxSerialDigits.
func FewestSerialDigits(count int64) int {
	for d := 1; d <= MaxSerialDigits; d++ {
		if pow(10, d)-1 >= uint64(max(count, 0)) {
			return d
		}
	}
	return 0
}

// checkSerialCapacity is CheckCapacity for the serial style: the tail must
// keep a guess within the density limit, and the serial digits must number
// count codes.
func (l *Layout) checkSerialCapacity(count int64, d float64) error {
	e := &promo.Error{Code: promo.ECapacity}
	tailShort, tooMany := SeqLimit(l.tailSpace, d) < 1, uint64(count) > l.space
	switch {
	case tailShort && tooMany:
		e.Message = "the tail is too short for the density limit, and the serial digits cannot number this many codes"
	case tailShort:
		e.Message = "the tail is too short for the density limit"
	case tooMany:
		e.Message = "the serial digits cannot number this many codes"
	default:
		return nil
	}
	if tailShort {
		msg := fmt.Sprintf("a guess of the tail of a known serial hits 1 in %d, above the limit 1 in %.3g",
			l.tailSpace, 1/d)
		if t := ShortestTail(l.format, d); t > 0 {
			e.MinTailLength = t
			msg += fmt.Sprintf(": use a tailLength of at least %d", t)
		} else {
			msg += ": no tailLength of this charset is long enough; use a larger charset"
		}
		e.Fields = append(e.Fields, promo.FieldError{Field: FieldTailLength, Message: msg})
	}
	if tooMany {
		e.Fields = append(e.Fields, promo.FieldError{Field: FieldCodeCount, Message: fmt.Sprintf(
			"%d codes need serials up to %d; %d digits number at most %d", count, count, l.digits, l.space)})
		if k := FewestSerialDigits(count); k > 0 {
			e.MinSerialDigits = k
			e.Fields = append(e.Fields, promo.FieldError{Field: FieldSerialDigits, Message: fmt.Sprintf(
				"use at least %d serialDigits for %d codes", k, count)})
		}
	}
	return e
}
