package codes

import (
	"errors"
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

// FuzzParse: Parse never panics, and whatever it accepts is canonical and
// round-trips through the display form and through Decode/AppendCode, for a
// layout of each style.
func FuzzParse(f *testing.F) {
	e := must(New(winter, []byte("fuzz-secret-fuzz-secret-fuzz-secret!")))
	l := e.Layout()
	addCodes(f, e, 5, 1_000_003)
	for _, s := range []string{"", "-", "WNTR-", "WNTR-7KQ2-M9XD-P3X", " wntr-7kq2-m9xd-p3x ", "WNTR-\xff\xfe", "WNTR--------------",
		"WNTR-7KQ2-M9XD-P3XX", "é"} {
		f.Add(s)
	}
	other := must(newLayout(promo.Format{Charset: "abcD!", Length: 9, Prefix: "-x", Separator: "-", GroupSize: 3}, 1))
	se := must(New(spring, []byte("fuzz-secret-fuzz-secret-fuzz-secret!")))
	sl := se.Layout()
	addCodes(f, se, 3, 100_003)
	for _, s := range []string{"SPRING-000000-EADP8H", "spring-000001-eadp8h", "SPRING-0000O1-EADP8H", "SPRING-000001-EADP801"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, l := range []*Layout{l, other, sl} {
			c, err := l.Parse(s)
			if err != nil {
				if !promo.Is(err, promo.EInvalid) {
					t.Fatalf("Parse(%q): %v is not EInvalid", s, err)
				}
				continue
			}
			if len(c) != l.CodeLen() {
				t.Fatalf("Parse(%q) = %q: %d bytes, want %d", s, c, len(c), l.CodeLen())
			}
			if again, err := l.Parse(l.Display(c)); err != nil || again != c {
				t.Fatalf("Parse(Display(%q)) = %q, %v", c, again, err)
			}
			if again, err := l.Parse(c); err != nil || again != c {
				t.Fatalf("Parse(%q) = %q, %v: canonical is not a fixed point", c, again, err)
			}
			if k, err := Canonical(s); err != nil || k != c {
				t.Fatalf("Canonical(%q) = %q, %v; Parse gave %q", s, k, err, c)
			}
			if shape, err := l.Check(c); !shape || err != nil {
				t.Fatalf("Check(%q) = %v, %v", c, shape, err)
			}
		}
		if c, err := l.Parse(s); err == nil {
			seq, err := e.Decode(s)
			if err != nil || seq >= l.Space() || must(e.Code(seq)) != c {
				t.Fatalf("Decode(%q) = %d, %v; does not re-encode to %q", s, seq, err, c)
			}
		}
		// A serial code that parses decodes only if its tail is the key's,
		// and then re-encodes to itself.
		if c, err := sl.Parse(s); err == nil {
			if seq, err := se.Decode(s); err == nil && (seq >= sl.Space() || must(se.Code(seq)) != c) {
				t.Fatalf("Decode(%q) = %d; does not re-encode to %q", s, seq, c)
			} else if err != nil && !errors.Is(err, errTailMismatch) {
				t.Fatalf("Decode(%q): %v, but Parse accepted it", s, err)
			}
		}
	})
}

// addCodes seeds f with n codes of e, step sequence numbers apart, in
// canonical and display form.
func addCodes(f *testing.F, e *Engine, n, step uint64) {
	for seq := range n {
		c := must(e.Code(seq * step))
		f.Add(c)
		f.Add(e.Layout().Display(c))
	}
}
