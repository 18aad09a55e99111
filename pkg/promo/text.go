package promo

import (
	"fmt"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// BadText checks a free-text field (a name, a reason): valid UTF-8 without
// control characters (NUL, which PostgreSQL refuses in text, and the rest of
// C0, DEL, C1) or line and paragraph separators. It returns "" or what is
// wrong.
func BadText(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	for i, r := range s {
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) {
			return fmt.Sprintf("must not contain control characters; found %U at byte %d", r, i)
		}
	}
	return ""
}

// CheckText checks a free-text field of at most max characters (BadText),
// which must not be empty when required; the error is EInvalid naming field.
// Characters are counted as UTF-16 code units, as SQL Server's nvarchar(n)
// columns count them (a character outside the Basic Multilingual Plane, such
// as an emoji, is two), so that a limit means the same on every database and
// a value within it always fits its column.
func CheckText(field, v string, max int, required bool) error {
	switch {
	case v == "" && required:
		return FieldErrorf(field, "is required")
	case !utf8.ValidString(v):
		return FieldErrorf(field, "must be valid UTF-8")
	case UTF16Len(v) > max:
		return FieldErrorf(field, "must be at most %d characters (UTF-16 code units: an emoji counts two)", max)
	}
	if msg := BadText(v); msg != "" {
		return FieldErrorf(field, "%s", msg)
	}
	return nil
}

// UTF16Len is the length of v in UTF-16 code units.
func UTF16Len(v string) int {
	n := 0
	for _, r := range v {
		n += utf16.RuneLen(r)
	}
	return n
}
