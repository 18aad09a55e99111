package codes

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Charset presets. Each is upper-case and free of look-alikes.
const (
	PresetAlnum   = "alnum"   // 2-9 and A-Z without I, L, O: 31 characters
	PresetNumeric = "numeric" // 0-9: 10 characters
	PresetAlpha   = "alpha"   // A-Z without I, L, O: 23 characters
)

var presets = map[string]string{
	PresetAlnum:   "23456789ABCDEFGHJKMNPQRSTUVWXYZ",
	PresetNumeric: "0123456789",
	PresetAlpha:   "ABCDEFGHJKMNPQRSTUVWXYZ",
}

// Limits of a format.
const (
	// MinSpace is the smallest code space a format may have: below it even a
	// handful of codes would be guessable.
	MinSpace = 1_000_000
	// MaxSpace is the largest: sequence numbers are int64 in the stores.
	MaxSpace = math.MaxInt64
	// MaxAffixLen bounds the prefix and the suffix, in bytes.
	MaxAffixLen = 32
	maxCharset  = 94 // printable ASCII without space
)

// Field names, as JSON paths of the create-promotion request.
const (
	FieldCharset   = "format.charset"
	FieldLength    = "format.length"
	FieldPrefix    = "format.prefix"
	FieldSuffix    = "format.suffix"
	FieldSeparator = "format.separator"
	FieldGroupSize = "format.groupSize"
	FieldCheckChar = "format.checkChar"
	FieldCodeCount = "codeCount"
	// The serial style's fields.
	FieldStyle        = "format.style"
	FieldSerialDigits = "format.serialDigits"
	FieldTailLength   = "format.tailLength"
)

// Layout is a compiled, validated Format without a key: everything about a
// code except which sequence number it stands for. It parses and checks
// codes, renders the display form, and computes check characters. A Layout
// is immutable and safe for concurrent use.
//
// The canonical form, what the database stores and every look-up uses, is
// Canonical(display form): prefix + body + check character + suffix with the
// separator characters (SeparatorChars) removed and letters upper-cased.
// Every canonical code of a layout has CodeLen bytes. The display form keeps
// the prefix and suffix as the admin wrote them, the body in the charset's own
// case, and puts the separator after every GroupSize characters of
// body + check character: the check character counts as the last character of
// the last group (10 body characters in groups of 4 display as
// "WNTR-7KQ2-M9XD-P3X" with X the check character; canonical
// "WNTR7KQ2M9XDP3X").
type Layout struct {
	format promo.Format // as given, CheckChar resolved
	chars  string       // the charset's characters as given (display case); digit i is chars[i]
	canon  string       // chars upper-cased: the canonical characters
	preset string       // preset name, or "" for a custom charset
	n      uint64       // len(chars)
	length int          // body characters
	check  bool
	sep    byte // 0 when there is no separator
	group  int
	prefix string // as written (display form)
	suffix string
	// prefixKey and suffixKey are the canonical prefix and suffix: separators
	// removed, upper-cased.
	prefixKey, suffixKey string
	space                uint64
	codeLen              int
	counter              string
	decode               [256]byte // canonical byte → digit, or noDigit
	display              [256]byte // canonical byte of the charset → its display form
	div                  divider   // division by n
	qg                   *quasigroup
	// Rendering: the body is produced as two halves of half and
	// length-half digits (divHalf divides by n^half). alphabet is chars
	// padded to 128 so a masked index needs no bounds check; it holds the
	// canonical (upper-case) characters.
	half     int
	divHalf  divider
	alphabet [128]byte
	// linear: the quasigroup is x∘y = (2x+y) mod n (n odd), so the fold over
	// digits d_0..d_{L-1} is Σ 2^(L-1-i)·d_i mod n; weight[i] = 2^(L-1-i) mod n.
	// A sum of independent products is faster than L dependent table loads.
	linear bool
	weight [64]uint64

	// The serial style (serial.go): length is the tail's length and space
	// the number of serials, 10^digits - 1.
	serial bool
	digits int
	// tailSpace is n^length, the values a tail can take.
	tailSpace uint64
	// ck is the check character's alphabet for the serial style: the
	// canonical charset followed by the decimal digits it lacks, so that one
	// character has one value wherever it stands (a swap of a digit of the
	// serial with a character of the tail is a swap of values, which the
	// check character detects).
	ck        string
	ckDecode  [256]byte
	ckDisplay [256]byte
	// digitCk maps a serial digit to its value in ck (a tail digit is its
	// own value: ck begins with the charset).
	digitCk [10]byte
}

const noDigit = 0xff

// NewLayout validates f and compiles it. Every problem is reported, each with
// its field: the error is a *promo.Error with code promo.EInvalid.
func NewLayout(f promo.Format) (*Layout, error) {
	return newLayout(f, MinSpace)
}

// newLayout is NewLayout with a configurable minimum space, so tests can
// build layouts with small spaces and check them exhaustively.
func newLayout(f promo.Format, minSpace uint64) (*Layout, error) {
	var errs []promo.FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, promo.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	l := &Layout{format: f, length: f.Length, check: f.HasCheckChar(), prefix: f.Prefix, suffix: f.Suffix}
	check := f.HasCheckChar()
	l.format.CheckChar = &check

	// Style.
	switch f.Style {
	case "", promo.StyleRandom:
		l.format.Style = "" // one way to write the default, so that requests that mean the same are the same
	case promo.StyleSerial:
		l.serial = true
	default:
		bad(FieldStyle, "must be %q (the default) or %q, got %q", promo.StyleRandom, promo.StyleSerial,
			truncateText(f.Style, 40))
	}

	// Charset.
	charsetOK := false
	switch {
	case f.Charset == "":
		bad(FieldCharset, "is required: %q, %q, %q, or the characters of a custom charset",
			PresetAlnum, PresetNumeric, PresetAlpha)
	case presets[f.Charset] != "":
		l.preset, l.chars = f.Charset, presets[f.Charset]
		charsetOK = true
	default:
		if msg := checkCustomCharset(f.Charset); msg != "" {
			bad(FieldCharset, "%s", msg)
		} else {
			l.chars = f.Charset
			charsetOK = true
		}
	}

	// Separator and group size.
	switch {
	case f.Separator == "":
	case len(f.Separator) != 1 || !isSeparator(f.Separator[0]):
		bad(FieldSeparator, "must be one of %q, got %q: codes are matched with every one of these "+
			"characters ignored, so only they can separate groups without changing the code", SeparatorChars, f.Separator)
	default:
		l.sep = f.Separator[0]
	}
	switch {
	case l.serial:
		if f.GroupSize != 0 {
			bad(FieldGroupSize, "is not used by style %q: the separator stands between the serial and the tail; "+
				"drop groupSize", promo.StyleSerial)
		}
	case f.GroupSize < 0:
		bad(FieldGroupSize, "must not be negative, got %d", f.GroupSize)
	case f.GroupSize > 0 && f.Separator == "":
		bad(FieldGroupSize, "is set (%d) but there is no separator; set format.separator or drop groupSize", f.GroupSize)
	case f.GroupSize == 0 && f.Separator != "":
		bad(FieldGroupSize, "must be at least 1 when a separator is set")
	case f.GroupSize > 0 && f.Length > 0 && f.GroupSize >= f.Length+b2i(check):
		bad(FieldGroupSize, "%d leaves a single group of %d characters, so the separator would never appear; "+
			"use a smaller groupSize or no separator", f.GroupSize, f.Length+b2i(check))
	default:
		l.group = f.GroupSize
	}

	// Prefix and suffix: constant text, printable ASCII without whitespace.
	for _, a := range []struct{ field, v string }{{FieldPrefix, f.Prefix}, {FieldSuffix, f.Suffix}} {
		if len(a.v) > MaxAffixLen {
			bad(a.field, "is %d bytes long; at most %d are allowed", len(a.v), MaxAffixLen)
			continue
		}
		for i := 0; i < len(a.v); i++ {
			if !printable(a.v[i]) {
				bad(a.field, "character %q at position %d is not printable ASCII (letters, digits, "+
					"punctuation; no spaces)", a.v[i], i+1)
				break
			}
		}
	}

	// Length and the size of the space.
	switch {
	case l.serial:
		l.validateSerial(f, charsetOK, minSpace, bad)
	case f.SerialDigits != 0 || f.TailLength != 0:
		for _, a := range []struct {
			field string
			v     int
		}{{FieldSerialDigits, f.SerialDigits}, {FieldTailLength, f.TailLength}} {
			if a.v != 0 {
				bad(a.field, "is only used by style %q; a code of the default style has format.length characters",
					promo.StyleSerial)
			}
		}
	}
	switch {
	case l.serial:
	case f.Length < 1:
		bad(FieldLength, "must be at least 1, got %d", f.Length)
	case charsetOK:
		n := uint64(len(l.chars))
		maxLen := maxLength(n)
		minLen := minLength(n, minSpace)
		switch {
		case f.Length > maxLen:
			bad(FieldLength, "%d is too long: %d^%d codes exceed the 2^63-1 sequence numbers a format may have; "+
				"the maximum length for a charset of %d characters is %d", f.Length, n, f.Length, n, maxLen)
		case f.Length < minLen:
			bad(FieldLength, "%d is too short: %d^%d = %d codes are fewer than the minimum of %d; "+
				"use a length of at least %d", f.Length, n, f.Length, pow(n, f.Length), minSpace, minLen)
		default:
			l.space = pow(n, f.Length)
		}
	}

	// Check character.
	if check && charsetOK {
		order := len(l.chars)
		if l.serial {
			order = len(serialCheckAlphabet(canonicalAffix(l.chars)))
		}
		if msg := checkOrderError(order); msg != "" {
			if l.serial {
				msg = fmt.Sprintf("the check character of a serial code runs over the charset and the digits "+
					"0-9 together (%d characters): %s", order, msg)
			}
			bad(FieldCheckChar, "%s", msg)
		}
	}

	if len(errs) > 0 {
		return nil, &promo.Error{Code: promo.EInvalid, Message: "invalid code format", Fields: errs}
	}

	l.n = uint64(len(l.chars))
	l.div = newDivider(l.n)
	l.half = l.length / 2
	if l.half > 0 {
		l.divHalf = newDivider(pow(l.n, l.half))
	}
	if check && !l.serial { // the serial style's check character is compiled by compileSerial
		l.qg = newQuasigroup(len(l.chars))
		l.linear = l.n%2 == 1
		w := uint64(1)
		for i := l.length - 1; i >= 0; i-- {
			l.weight[i] = w
			w = 2 * w % l.n
		}
	}
	l.canon = canonicalAffix(l.chars) // a charset holds no separator: only upper-cases
	for i := range l.decode {
		l.decode[i] = noDigit
	}
	for i := 0; i < len(l.canon); i++ {
		l.decode[l.canon[i]] = byte(i)
		l.display[l.canon[i]] = l.chars[i]
	}
	copy(l.alphabet[:], l.canon)
	l.prefixKey, l.suffixKey = canonicalAffix(l.prefix), canonicalAffix(l.suffix)
	l.codeLen = len(l.prefixKey) + l.digits + l.length + b2i(check) + len(l.suffixKey)
	// The counter name identifies the canonical code space, so it is built
	// from canonical parts: formats whose canonical codes are the same set
	// (prefix "WNTR-" or "WNTR", charset "abc..." or "ABC...") share it. For a
	// format whose parts were canonical already it is what it was before
	// canonical forms existed, so existing counters and keys stay valid.
	cs := l.preset
	for p, chars := range presets {
		if chars == l.canon {
			cs = p // a custom charset equal to a preset is the same code space
		}
	}
	if cs == "" {
		cs = strconv.Quote(l.canon)
	}
	chk := "nocheck"
	if check {
		chk = "check"
	}
	l.counter = "codes/v1:" + cs + ":" + strconv.Itoa(l.length) + ":" + strconv.Quote(l.prefixKey) + ":" +
		strconv.Quote(l.suffixKey) + ":" + chk
	if l.serial {
		// "serial" is neither a preset nor a quoted custom charset, so no
		// format of the random style has this name.
		l.counter = "codes/v1:serial:" + strconv.Itoa(l.digits) + ":" + cs + ":" + strconv.Itoa(l.length) + ":" +
			strconv.Quote(l.prefixKey) + ":" + strconv.Quote(l.suffixKey) + ":" + chk
		l.compileSerial()
	}
	return l, nil
}

func checkCustomCharset(cs string) string {
	for p := range presets {
		if strings.EqualFold(cs, p) {
			return fmt.Sprintf("%q looks like the preset %q; preset names are lower-case", cs, p)
		}
	}
	if len(cs) > maxCharset {
		return fmt.Sprintf("a custom charset has at most %d characters (printable ASCII without space), got %d bytes",
			maxCharset, len(cs))
	}
	var seen [256]bool
	for i := 0; i < len(cs); i++ {
		c := cs[i]
		if !printable(c) {
			return fmt.Sprintf("character %q at position %d is not printable ASCII (letters, digits, "+
				"punctuation; no spaces); a custom charset lists its characters literally", c, i+1)
		}
		if isSeparator(c) {
			return fmt.Sprintf("character %q at position %d is a separator character (one of %q): codes are "+
				"matched with separators ignored, so a charset must not contain one", c, i+1, SeparatorChars)
		}
		if seen[c] {
			return fmt.Sprintf("character %q appears more than once (again at position %d)", c, i+1)
		}
		if isLetter(c) && seen[c^0x20] {
			return fmt.Sprintf("%q and %q are both in the charset: codes are matched case-insensitively, "+
				"so a charset may hold each letter in one case only", c^0x20, c)
		}
		seen[c] = true
	}
	if len(cs) < 2 {
		return fmt.Sprintf("a custom charset needs at least 2 distinct characters, got %q "+
			"(or use a preset: %q, %q, %q)", cs, PresetAlnum, PresetNumeric, PresetAlpha)
	}
	return ""
}

// truncateText shortens s to at most n bytes for an error message.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// printable reports whether c is printable ASCII other than space.
func printable(c byte) bool { return c > ' ' && c < 0x7f }

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pow returns n^k, or 0 when it exceeds MaxSpace.
func pow(n uint64, k int) uint64 {
	p := uint64(1)
	for range k {
		hi, lo := bits.Mul64(p, n)
		if hi != 0 || lo > MaxSpace {
			return 0
		}
		p = lo
	}
	return p
}

// maxLength is the largest k with n^k ≤ MaxSpace.
func maxLength(n uint64) int {
	k := 0
	for pow(n, k+1) != 0 {
		k++
	}
	return k
}

// minLength is the smallest k with n^k ≥ minSpace.
func minLength(n, minSpace uint64) int {
	k := 0
	for p := uint64(1); p < minSpace; p *= n {
		k++
	}
	return k
}

// Format returns the format the layout was built from, with CheckChar set.
func (l *Layout) Format() promo.Format { return l.format }

// Charset returns the characters of the body, digit i being Charset()[i].
func (l *Layout) Charset() string { return l.chars }

// Space is the number of sequence numbers the layout renders: for the
// random style the number of distinct codes, |charset|^length; for the
// serial style the number of serials, 10^serialDigits - 1 (serial s is
// sequence number s-1).
func (l *Layout) Space() uint64 { return l.space }

// CodeLen is the byte length of every canonical code (at most MaxCodeLen).
func (l *Layout) CodeLen() int { return l.codeLen }

// CounterName is the identity of the canonical code space: canonical charset,
// length, canonical prefix and suffix, and whether there is a check
// character. Separator, group size, and the case and separators the admin
// wrote are not part of it: they do not change the canonical form. Formats
// with the same CounterName share the sequence counter and the permutation.
func (l *Layout) CounterName() string { return l.counter }

// checkDigit returns the check character's digit for body digits.
func (l *Layout) checkDigit(digits []byte) byte { return l.qg.zero[l.qg.fold(0, digits)] }
