package codes

import (
	"unicode"
	"unicode/utf8"

	"github.com/promocodes/promocodes/pkg/promo"
)

// SeparatorChars are the characters a shopper may type between the
// characters of a code: they are never part of a code. A format's separator
// is one of them, and no charset may contain one.
const SeparatorChars = "-_."

// MaxCodeLen bounds a canonical code, in bytes. The longest a valid format can
// produce is 32 (prefix) + 62 (body of a 2-character charset, no check
// character) + 32 (suffix) = 126 bytes; vanity codes are shorter.
const MaxCodeLen = 128

// Canonical returns the one form of a code that the database stores and every
// look-up uses: whitespace (ASCII and Unicode) and separator characters
// (SeparatorChars) removed wherever they are, ASCII letters upper-cased. So
// "wntr-7kq2 m9xd-p3x" and "WNTR7KQ2M9XDP3X" are the same code. It refuses,
// with a *promo.Error of code promo.EInvalid and a message starting
// "invalid code: ", a result that is empty or longer than MaxCodeLen, and any
// other byte outside printable ASCII. It knows nothing about formats: whether
// the result can be a code of a given format is Layout.Check's question.
//
// Canonical is idempotent, and does not allocate when s is already canonical.
func Canonical(s string) (string, error) {
	if len(s) > 0 && len(s) <= MaxCodeLen {
		i := 0
		for i < len(s) && canonicalByte(s[i]) {
			i++
		}
		if i == len(s) {
			return s, nil
		}
	}
	var buf [MaxCodeLen]byte
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError || !unicode.IsSpace(r) {
				return "", invalidCode("%s at position %d is not printable ASCII", describeChar(s, i),
					utf8.RuneCountInString(s[:i])+1)
			}
			i += size
			continue
		}
		i++
		switch {
		case isSpace(c) || isSeparator(c):
			continue
		case !printable(c):
			return "", invalidCode("control character 0x%02x at position %d", c, utf8.RuneCountInString(s[:i-1])+1)
		case n == MaxCodeLen:
			return "", invalidCode("too long: more than %d characters without separators and spaces", MaxCodeLen)
		}
		buf[n] = upper(c)
		n++
	}
	if n == 0 {
		return "", invalidCode("empty: nothing but separators (%s) and spaces", SeparatorChars)
	}
	return string(buf[:n]), nil
}

// canonicalByte reports whether c may appear in a canonical code: printable
// ASCII, not a separator, not a lower-case letter.
func canonicalByte(c byte) bool {
	return printable(c) && !isSeparator(c) && (c < 'a' || c > 'z')
}

func isSeparator(c byte) bool { return c == '-' || c == '_' || c == '.' }

// isSpace reports ASCII whitespace.
func isSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// canonicalAffix is a prefix or suffix (printable ASCII, validated) in
// canonical form: separators removed, upper-cased. It may be empty.
func canonicalAffix(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isSeparator(c) && !isSpace(c) {
			b = append(b, upper(c))
		}
	}
	return string(b)
}

// errCheckMismatch is shared so that Check does not allocate even when it
// refuses a typo. Callers must not modify it.
var errCheckMismatch = &promo.Error{Code: promo.EInvalid,
	Message: "invalid code: check character mismatch: a character is mistyped or two neighbours are swapped"}

// Check tells whether canonical, a string already in canonical form (the
// output of Canonical), is a code of this layout. shape is false when it
// cannot be one: wrong length, prefix or suffix, or a character outside the
// charset. shape is true and err nil for a valid code; shape is true and err a
// *promo.Error (promo.EInvalid, "invalid code: check character mismatch ...")
// when only the check character disagrees: a typo. Check does not allocate.
func (l *Layout) Check(canonical string) (shape bool, err error) {
	if l.serial {
		return l.checkSerial(canonical)
	}
	if len(canonical) != l.codeLen {
		return false, nil
	}
	p := len(l.prefixKey)
	if canonical[:p] != l.prefixKey || canonical[l.codeLen-len(l.suffixKey):] != l.suffixKey {
		return false, nil
	}
	body := canonical[p : p+l.length+b2i(l.check)]
	if !l.check {
		for i := 0; i < len(body); i++ {
			if l.decode[body[i]] == noDigit {
				return false, nil
			}
		}
		return true, nil
	}
	if l.linear {
		// The fold is Σ weight[i]·d_i over the body, then s∘c = 2s + c.
		var acc uint64
		for i := 0; i < l.length; i++ {
			d := l.decode[body[i]]
			if d == noDigit {
				return false, nil
			}
			acc += l.weight[i&63] * uint64(d)
		}
		c := l.decode[body[l.length]]
		if c == noDigit {
			return false, nil
		}
		_, s := l.div.divmod(acc)
		if _, s = l.div.divmod(2*s + uint64(c)); s != 0 {
			return true, errCheckMismatch
		}
		return true, nil
	}
	var s byte
	for i := 0; i < len(body); i++ {
		d := l.decode[body[i]]
		if d == noDigit {
			return false, nil
		}
		s = l.qg.op[(int(s)*qgStride+int(d))&(len(l.qg.op)-1)]
	}
	if s != 0 {
		return true, errCheckMismatch
	}
	return true, nil
}
