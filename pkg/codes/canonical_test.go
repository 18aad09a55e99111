package codes

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

func TestCanonical(t *testing.T) {
	long := strings.Repeat("A", MaxCodeLen)
	for _, tc := range []struct{ in, want string }{
		{"WNTR7KQ2M9XDP3X", "WNTR7KQ2M9XDP3X"},
		{"wntr-7kq2-m9xd-p3x", "WNTR7KQ2M9XDP3X"},
		{"  WNTR_7KQ2.M9XD p3x\r\n", "WNTR7KQ2M9XDP3X"},
		{"\u00a0wntr\u20097kq2\u3000m9xd\tp3x\u00a0", "WNTR7KQ2M9XDP3X"},
		{"-.-a_._", "A"},
		{"megadeth21", "MEGADETH21"},
		{"!#$%&'()*+,/:;<=>?@[\\]^`{|}~", "!#$%&'()*+,/:;<=>?@[\\]^`{|}~"},
		{long, long},
		{strings.Repeat("a-", MaxCodeLen), long},
	} {
		got, err := Canonical(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "empty"},
		{"  -_. \t", "empty"},
		{long + "A", "too long: more than 128"},
		{"AB\x00C", "control character 0x00 at position 3"},
		{"AB\x7fC", "control character 0x7f"},
		{"ABé", "character 'é' at position 3 is not printable ASCII"},
		{"AB\xff", "byte 0xff at position 3"},
		{"AB\u200bC", "not printable ASCII"}, // zero-width space is not whitespace
	} {
		_, err := Canonical(tc.in)
		if !promo.Is(err, promo.EInvalid) || !strings.HasPrefix(err.Error(), "invalid code: ") ||
			!strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Canonical(%q) = %v, want EInvalid saying %q", tc.in, err, tc.msg)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Canonical("WNTR7KQ2M9XDP3X") }); n != 0 {
		t.Errorf("Canonical of a canonical code allocates %.0f times", n)
	}
}

// FuzzCanonical: Canonical never panics, is idempotent, returns only
// canonical bytes, and agrees with Layout.Parse and Layout.Check.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"", "-", " wntr-7kq2-m9xd-p3x ", "WNTR7KQ2M9XDP3X", "a\u00a0b", "\xff", "é", "x\x00",
		strings.Repeat("ab-", 70), "PRE22B4D96HC4DX", "pre-22b4-d96h-c4dx"} {
		f.Add(s)
	}
	layouts := []*Layout{
		must(NewLayout(winter)),
		must(NewLayout(promo.Format{Charset: "bcdfghjkmnpqrstvwxz23456789!", Length: 9, Prefix: "pre-", Suffix: "x",
			Separator: "-", GroupSize: 4})),
		must(NewLayout(promo.Format{Charset: "0123456789", Length: 10, CheckChar: boolp(false)})),
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Canonical(s)
		if err != nil {
			if !promo.Is(err, promo.EInvalid) || !strings.HasPrefix(err.Error(), "invalid code: ") {
				t.Fatalf("Canonical(%q): %v", s, err)
			}
		} else {
			if len(c) == 0 || len(c) > MaxCodeLen {
				t.Fatalf("Canonical(%q) = %q: %d bytes", s, c, len(c))
			}
			for i := 0; i < len(c); i++ {
				if !canonicalByte(c[i]) {
					t.Fatalf("Canonical(%q) = %q holds %q", s, c, c[i])
				}
			}
			if again, err := Canonical(c); err != nil || again != c {
				t.Fatalf("Canonical(Canonical(%q)) = %q, %v; want %q", s, again, err, c)
			}
		}
		for _, l := range layouts {
			p, perr := l.Parse(s)
			if perr != nil && (!promo.Is(perr, promo.EInvalid) || !strings.HasPrefix(perr.Error(), "invalid code: ")) {
				t.Fatalf("Parse(%q): %v", s, perr)
			}
			if err != nil {
				if perr == nil {
					t.Fatalf("Parse(%q) = %q but Canonical refuses it: %v", s, p, err)
				}
				continue
			}
			shape, cerr := l.Check(c)
			switch {
			case perr == nil && (p != c || !shape || cerr != nil):
				t.Fatalf("Parse(%q) = %q; Canonical %q, Check = %v, %v", s, p, c, shape, cerr)
			case perr != nil && strings.Contains(perr.Error(), "check character mismatch") != (shape && cerr != nil):
				t.Fatalf("Parse(%q): %v; Check(%q) = %v, %v", s, perr, c, shape, cerr)
			case perr != nil && cerr == nil && shape:
				t.Fatalf("Parse(%q): %v; Check(%q) accepts", s, perr, c)
			}
		}
	})
}

// randomFormat returns a valid format: a preset or a custom charset of
// random size and case, prefix and suffix of any printable characters
// (separators and lower case included), any separator and group size.
func randomFormat(r *rand.Rand) promo.Format {
	var f promo.Format
	n := 0
	if r.IntN(3) == 0 {
		names := []string{PresetAlnum, PresetNumeric, PresetAlpha}
		f.Charset = names[r.IntN(3)]
		n = len(presets[f.Charset])
	} else {
		lowerMode := r.IntN(3) // 0 upper, 1 lower, 2 each letter either
		var pool []byte
		for c := byte('!'); c < 0x7f; c++ {
			switch {
			case isSeparator(c) || (c >= 'a' && c <= 'z'):
			case c >= 'A' && c <= 'Z' && (lowerMode == 1 || lowerMode == 2 && r.IntN(2) == 0):
				pool = append(pool, c|0x20)
			default:
				pool = append(pool, c)
			}
		}
		r.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		n = 2 + r.IntN(len(pool)-1)
		f.Charset = string(pool[:n])
		if _, isPreset := presets[f.Charset]; isPreset || checkCustomCharset(f.Charset) != "" {
			return randomFormat(r)
		}
	}
	check := checkOrderError(n) == "" && r.IntN(5) != 0
	f.CheckChar = &check
	lo := minLength(uint64(n), MinSpace)
	f.Length = lo + r.IntN(min(maxLength(uint64(n)), lo+4)-lo+1)
	affix := func() string {
		if r.IntN(2) == 0 {
			return ""
		}
		b := make([]byte, 1+r.IntN(MaxAffixLen))
		for i := range b {
			b[i] = byte('!' + r.IntN(0x7f-'!'))
		}
		return string(b)
	}
	f.Prefix, f.Suffix = affix(), affix()
	if run := f.Length + b2i(check); run > 1 && r.IntN(3) != 0 {
		f.Separator = string(SeparatorChars[r.IntN(len(SeparatorChars))])
		f.GroupSize = 1 + r.IntN(run-1)
	}
	return f
}

// retype types a display form the way a shopper might: random case, some
// separators dropped, separators and spaces added anywhere.
func retype(r *rand.Rand, d string) string {
	var b strings.Builder
	for i := 0; i < len(d); i++ {
		if r.IntN(4) == 0 {
			b.WriteString([]string{"-", "_", ".", " ", "\t", "\u00a0", "--"}[r.IntN(7)])
		}
		c := d[i]
		if isSeparator(c) && r.IntN(2) == 0 {
			continue
		}
		if isLetter(c) && r.IntN(2) == 0 {
			c ^= 0x20
		}
		b.WriteByte(c)
	}
	return b.String()
}

// TestCanonicalFormProperty, over many random formats and codes: generated
// codes are canonical, Check accepts them, the display form and any
// re-typing of it parse back to the code, decode to its sequence number, and
// Canonical gives the code too; a substituted character is a typo to Check.
func TestCanonicalFormProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for range 400 {
		f := randomFormat(r)
		l, err := NewLayout(f)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		e := must(NewWithLayout(l, testSecret(r)))
		for range 25 {
			seq := r.Uint64N(l.Space())
			c := must(e.Code(seq))
			if got, err := Canonical(c); err != nil || got != c {
				t.Fatalf("%+v: code %q is not canonical: %q, %v", f, c, got, err)
			}
			if shape, err := l.Check(c); !shape || err != nil {
				t.Fatalf("%+v: Check(%q) = %v, %v", f, c, shape, err)
			}
			d := l.Display(c)
			if got, err := Canonical(d); err != nil || got != c {
				t.Fatalf("%+v: Canonical(Display(%q) = %q) = %q, %v", f, c, d, got, err)
			}
			for _, in := range []string{d, retype(r, d), retype(r, d), strings.ToLower(d), c} {
				if got, err := l.Parse(in); err != nil || got != c {
					t.Fatalf("%+v: Parse(%q) = %q, %v; want %q", f, in, got, err, c)
				}
				if got, err := Canonical(in); err != nil || got != c {
					t.Fatalf("%+v: Canonical(%q) = %q, %v; want %q", f, in, got, err, c)
				}
				if got, err := e.Decode(in); err != nil || got != seq {
					t.Fatalf("%+v: Decode(%q) = %d, %v; want %d", f, in, got, err, seq)
				}
			}
			// One body character replaced by another of the charset.
			p := len(l.prefixKey) + r.IntN(l.length+b2i(l.check))
			b := []byte(c)
			b[p] = l.canon[(int(l.decode[b[p]])+1+r.IntN(len(l.canon)-1))%len(l.canon)]
			shape, err := l.Check(string(b))
			if !shape || (err == nil) == l.check {
				t.Fatalf("%+v: Check(%q) after a substitution in %q = %v, %v", f, b, c, shape, err)
			}
		}
	}
}

func TestCheck(t *testing.T) {
	l := must(NewLayout(promo.Format{Charset: "abcdefghjkmnpqrstuvwxyz23456789", Length: 10, Prefix: "Wntr-",
		Suffix: ".25", Separator: "-", GroupSize: 4}))
	e := must(NewWithLayout(l, []byte("check-test-secret-check-test-secret")))
	c := must(e.Code(42))
	if c[:4] != "WNTR" || c[len(c)-2:] != "25" {
		t.Fatalf("canonical %q", c)
	}
	typo := []byte(c)
	typo[6] = l.canon[(int(l.decode[typo[6]])+1)%31]
	swapped := []byte(c)
	swapped[13], swapped[14] = swapped[14], swapped[13] // last body character and check character
	for _, tc := range []struct {
		in    string
		shape bool
		typo  bool
	}{
		{c, true, false},
		{string(typo), true, true},
		{string(swapped), true, swapped[13] != swapped[14]},
		{"", false, false},
		{c[:len(c)-1], false, false},
		{c + "5", false, false},
		{"X" + c[1:], false, false},         // prefix
		{c[:len(c)-1] + "6", false, false},  // suffix
		{strings.ToLower(c), false, false},  // not canonical
		{c[:5] + "O" + c[6:], false, false}, // not in the charset
		{c[:5] + "-" + c[6:], false, false}, // separator
		{l.Display(c), false, false},        // display form
	} {
		shape, err := l.Check(tc.in)
		if shape != tc.shape || (err != nil) != tc.typo {
			t.Errorf("Check(%q) = %v, %v; want shape %v, typo %v", tc.in, shape, err, tc.shape, tc.typo)
		}
		if err != nil && (!promo.Is(err, promo.EInvalid) ||
			!strings.HasPrefix(err.Error(), "invalid code: check character mismatch")) {
			t.Errorf("Check(%q): %v", tc.in, err)
		}
	}
	noCheck := must(NewLayout(promo.Format{Charset: "numeric", Length: 8, CheckChar: boolp(false)}))
	if shape, err := noCheck.Check("12345678"); !shape || err != nil {
		t.Errorf("no check character: %v, %v", shape, err)
	}
	if shape, _ := noCheck.Check("1234567A"); shape {
		t.Error("no check character: A accepted")
	}
	for _, in := range []string{c, string(typo), "X" + c[1:]} {
		if n := testing.AllocsPerRun(100, func() { _, _ = l.Check(in) }); n != 0 {
			t.Errorf("Check(%q) allocates %.0f times", in, n)
		}
	}
}

// BenchmarkCheck is the look-up path's code check: Canonical of a typed
// display form, then Check.
func BenchmarkCheck(b *testing.B) {
	e := benchEngine(b)
	l := e.Layout()
	c, _ := e.Code(12345)
	b.Run("canonical", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if shape, err := l.Check(c); !shape || err != nil {
				b.Fatal(shape, err)
			}
		}
	})
	typed := strings.ToLower(l.Display(c))
	b.Run("typed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k, err := Canonical(typed)
			if err != nil {
				b.Fatal(err)
			}
			if shape, err := l.Check(k); !shape || err != nil {
				b.Fatal(shape, err)
			}
		}
	})
}
