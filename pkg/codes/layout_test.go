package codes

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

func boolp(b bool) *bool { return &b }

func TestPresets(t *testing.T) {
	for name, want := range map[string]int{PresetAlnum: 31, PresetNumeric: 10, PresetAlpha: 23} {
		if got := len(presets[name]); got != want {
			t.Errorf("%s has %d characters, want %d", name, got, want)
		}
		for _, c := range "01ILO" {
			if name != PresetNumeric && strings.ContainsRune(presets[name], c) {
				t.Errorf("%s contains the look-alike %q", name, c)
			}
		}
	}
}

func TestInvalidFormats(t *testing.T) {
	for _, tc := range []struct {
		name  string
		f     promo.Format
		field string
		msg   string // substring of the field's message
	}{
		{"no charset", promo.Format{Length: 10}, FieldCharset, "required"},
		{"one char", promo.Format{Charset: "A", Length: 30}, FieldCharset, "at least 2"},
		{"duplicate", promo.Format{Charset: "ABCA", Length: 20}, FieldCharset, `'A' appears more than once`},
		{"space in charset", promo.Format{Charset: "AB C", Length: 20}, FieldCharset, "not printable"},
		{"non-ascii charset", promo.Format{Charset: "ABCé", Length: 20}, FieldCharset, "not printable"},
		{"preset case", promo.Format{Charset: "ALNUM", Length: 10}, FieldCharset, "preset"},
		{"zero length", promo.Format{Charset: "alnum"}, FieldLength, "at least 1"},
		{"too short", promo.Format{Charset: "alnum", Length: 3}, FieldLength, "at least 5"},
		{"too short numeric", promo.Format{Charset: "numeric", Length: 5}, FieldLength, "at least 6"},
		{"too long", promo.Format{Charset: "alnum", Length: 13}, FieldLength, "maximum length for a charset of 31 characters is 12"},
		{"too long numeric", promo.Format{Charset: "numeric", Length: 19}, FieldLength, "is 18"},
		{"prefix space", promo.Format{Charset: "alnum", Length: 10, Prefix: "WN TR"}, FieldPrefix, "position 3"},
		{"prefix long", promo.Format{Charset: "alnum", Length: 10, Prefix: strings.Repeat("P", 33)}, FieldPrefix, "at most 32"},
		{"suffix tab", promo.Format{Charset: "alnum", Length: 10, Suffix: "\t"}, FieldSuffix, "not printable"},
		{"separator letter", promo.Format{Charset: "alnum", Length: 10, Separator: "A", GroupSize: 4}, FieldSeparator, `must be one of "-_."`},
		{"separator slash", promo.Format{Charset: "alnum", Length: 10, Separator: "/", GroupSize: 4}, FieldSeparator, "ignored"},
		{"separator two chars", promo.Format{Charset: "alnum", Length: 10, Separator: "--", GroupSize: 4}, FieldSeparator, "must be one of"},
		{"separator space", promo.Format{Charset: "alnum", Length: 10, Separator: " ", GroupSize: 4}, FieldSeparator, "must be one of"},
		{"dash in charset", promo.Format{Charset: "AB-CD", Length: 20, CheckChar: boolp(false)}, FieldCharset, "separator character"},
		{"dot in charset", promo.Format{Charset: "0123.56789", Length: 20}, FieldCharset, "'.' at position 5 is a separator"},
		{"underscore in charset", promo.Format{Charset: "_ABC", Length: 20}, FieldCharset, "matched with separators ignored"},
		{"both cases", promo.Format{Charset: "aAbB", Length: 20, CheckChar: boolp(false)}, FieldCharset, "case-insensitively"},
		{"both cases later", promo.Format{Charset: "abcdefgH2345h", Length: 10}, FieldCharset, `'H' and 'h' are both`},
		{"group without separator", promo.Format{Charset: "alnum", Length: 10, GroupSize: 4}, FieldGroupSize, "no separator"},
		{"separator without group", promo.Format{Charset: "alnum", Length: 10, Separator: "-"}, FieldGroupSize, "at least 1"},
		{"negative group", promo.Format{Charset: "alnum", Length: 10, Separator: "-", GroupSize: -1}, FieldGroupSize, "negative"},
		{"group too big", promo.Format{Charset: "alnum", Length: 10, Separator: "-", GroupSize: 11}, FieldGroupSize, "never appear"},
		{"check 6", promo.Format{Charset: "ABCDEF", Length: 10}, FieldCheckChar, "order 6"},
		{"check 14", promo.Format{Charset: "ABCDEFGHJKMNPQ", Length: 8}, FieldCheckChar, "checkChar to false"},
		{"check 2", promo.Format{Charset: "AB", Length: 30}, FieldCheckChar, "order 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLayout(tc.f)
			var pe *promo.Error
			if !errors.As(err, &pe) || pe.Code != promo.EInvalid {
				t.Fatalf("err = %v, want an EInvalid *promo.Error", err)
			}
			for _, fe := range pe.Fields {
				if fe.Field == tc.field {
					if !strings.Contains(fe.Message, tc.msg) {
						t.Errorf("%s: %q does not say %q", fe.Field, fe.Message, tc.msg)
					}
					return
				}
			}
			t.Errorf("no error on %s in %v", tc.field, err)
		})
	}
}

func TestValidFormats(t *testing.T) {
	for _, f := range []promo.Format{
		{Charset: "alnum", Length: 5},
		{Charset: "alnum", Length: 12},
		{Charset: "numeric", Length: 18, CheckChar: boolp(false)},
		{Charset: "alpha", Length: 10, Prefix: "WNTR-", Suffix: "/25", Separator: "-", GroupSize: 4},
		{Charset: "alpha", Length: 10, Prefix: "w.n_t-r", Separator: ".", GroupSize: 3},
		{Charset: "alpha", Length: 10, Prefix: "---", Suffix: "_"}, // canonical prefix and suffix are empty
		{Charset: "abcdefghjkmnpqrstuvwxyz23456789", Length: 10},
		{Charset: "ABCDEFGHJKMNPQ", Length: 8, CheckChar: boolp(false)},
		{Charset: "abcdefgh", Length: 7},
		{Charset: "Alnm", Length: 10}, // not a preset name, four letters
	} {
		if _, err := NewLayout(f); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
}

func TestLayoutShape(t *testing.T) {
	l := must(NewLayout(promo.Format{Charset: "alnum", Length: 10, Prefix: "WNTR-", Separator: "-", GroupSize: 4}))
	if l.Space() != 819628286980801 { // 31^10
		t.Errorf("space %d", l.Space())
	}
	if l.CodeLen() != 4+10+1 { // canonical prefix WNTR
		t.Errorf("CodeLen %d", l.CodeLen())
	}
	if got, want := l.CounterName(), `codes/v1:alnum:10:"WNTR":"":check`; got != want {
		t.Errorf("CounterName %q, want %q", got, want)
	}
	// One canonical code space, one counter: separator, group size, the
	// separators and the case of the prefix, and a custom charset equal to a
	// preset (in either case) are not part of the identity.
	for _, f := range []promo.Format{
		{Charset: presets[PresetAlnum], Length: 10, Prefix: "WNTR"},
		{Charset: "alnum", Length: 10, Prefix: "w-n.t_r"},
		{Charset: strings.ToLower(presets[PresetAlnum]), Length: 10, Prefix: "Wntr.", Separator: "_", GroupSize: 3},
	} {
		if got := must(NewLayout(f)).CounterName(); got != l.CounterName() {
			t.Errorf("%+v: CounterName %q, want %q", f, got, l.CounterName())
		}
	}
	l3 := must(NewLayout(promo.Format{Charset: "alnum", Length: 10, Prefix: "WNTR-", CheckChar: boolp(false)}))
	if l3.CounterName() == l.CounterName() {
		t.Error("check char not in CounterName")
	}
	l4 := must(NewLayout(promo.Format{Charset: "ABCDE12", Length: 10, Suffix: `":"`}))
	if got, want := l4.CounterName(), `codes/v1:"ABCDE12":10:"":"\":\"":check`; got != want {
		t.Errorf("CounterName %q, want %q", got, want)
	}
	l5 := must(NewLayout(promo.Format{Charset: "abcde12", Length: 10, Suffix: `":"`}))
	if l5.CounterName() != l4.CounterName() {
		t.Errorf("lower-case charset: CounterName %q, want %q", l5.CounterName(), l4.CounterName())
	}
}

// oldCounterName is CounterName as it was before canonical forms: the
// charset, prefix and suffix as written.
func oldCounterName(l *Layout) string {
	cs := l.preset
	for p, chars := range presets {
		if chars == l.chars {
			cs = p
		}
	}
	if cs == "" {
		cs = strconv.Quote(l.chars)
	}
	chk := "nocheck"
	if l.check {
		chk = "check"
	}
	return "codes/v1:" + cs + ":" + strconv.Itoa(l.length) + ":" + strconv.Quote(l.prefix) + ":" +
		strconv.Quote(l.suffix) + ":" + chk
}

// TestCounterNameUnchangedWhereCanonicalFormIs: for formats whose charset,
// prefix and suffix were canonical already, the counter name (and so the
// counter and the permutation keys) is byte for byte what it was; for the
// others it is not.
func TestCounterNameUnchangedWhereCanonicalFormIs(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	same, changed := 0, 0
	for range 2000 {
		f := randomFormat(r)
		l, err := NewLayout(f)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		canonicalParts := l.chars == l.canon && l.prefix == l.prefixKey && l.suffix == l.suffixKey
		if got := l.CounterName() == oldCounterName(l); got != canonicalParts {
			t.Fatalf("%+v: CounterName %q, before %q", f, l.CounterName(), oldCounterName(l))
		}
		if canonicalParts {
			same++
		} else {
			changed++
		}
	}
	if same < 100 || changed < 100 {
		t.Errorf("sample too skewed: %d unchanged, %d changed", same, changed)
	}
}

func TestParseAndDisplay(t *testing.T) {
	l := must(NewLayout(promo.Format{Charset: "alnum", Length: 8, Prefix: "WNTR-", Separator: "-", GroupSize: 4}))
	body := "7KQ2M9XD"
	digits := make([]byte, len(body))
	for i := range body {
		digits[i] = l.decode[body[i]]
	}
	check := string(l.chars[l.checkDigit(digits)])
	canonical := "WNTR" + body + check
	display := l.Display(canonical)
	if want := "WNTR-7KQ2-M9XD-" + check; display != want {
		t.Fatalf("display %q, want %q", display, want)
	}
	for _, in := range []string{
		canonical, display, "  " + display + "\n", strings.ToLower(display), "wntr7kq2m9xd" + check,
		"-W-N-T-R-7-K-Q-2-M-9-X-D-" + check + "-", "WNTR_7KQ2.M9XD " + check, "\u00a0WNTR 7KQ2\tM9XD\u3000" + check,
	} {
		got, err := l.Parse(in)
		if err != nil || got != canonical {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, canonical)
		}
	}
	bad := func(c string) string { return string(l.chars[(int(l.decode[c[0]])+1)%31]) }
	for _, tc := range []struct{ in, msg string }{
		{"", "invalid code: wrong length: 0 characters without separators and spaces, want 13"},
		{display + "A", "wrong length: 14"},
		{"XNTR-7KQ2-M9XD-" + check, `wrong prefix: want "WNTR-"`},
		{"WNTR-7KQ2-M9XO-" + check, `character 'O' at position 14 is not in the charset`},
		{"WNTR-7KQ2-M9X\xff-" + check, `byte 0xff at position 14`},
		{"WNTR-7KQ2-M9Xé-" + check, `wrong length`},
		{"WNTR-7KQ2-M9é-" + check, `character 'é' at position 13`},
		{"WNTR-7KQ2-M9XD-" + bad(check), "invalid code: check character mismatch"},
		{"WNTR-K7Q2-M9XD-" + check, "check character mismatch"},
	} {
		_, err := l.Parse(tc.in)
		if !promo.Is(err, promo.EInvalid) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Parse(%q) = %v, want EInvalid saying %q", tc.in, err, tc.msg)
		}
	}
}

func TestLowerCaseCharsetAndAffixes(t *testing.T) {
	// A lower-case custom charset displays lower-case; its canonical codes
	// are upper-case, as are the canonical prefix and suffix.
	l := must(NewLayout(promo.Format{Charset: "abcdefgh", Length: 7, Prefix: "Pre-", Suffix: ".x",
		Separator: "_", GroupSize: 4}))
	c := string(l.appendValue(nil, 12345))
	if c[:3] != "PRE" || c[len(c)-1:] != "X" || strings.ToUpper(c) != c || len(c) != l.CodeLen() || len(c) != 3+7+1+1 {
		t.Fatalf("canonical %q", c)
	}
	d := l.Display(c)
	if !strings.HasPrefix(d, "Pre-") || !strings.HasSuffix(d, ".x") || strings.ToLower(d[4:len(d)-2]) != d[4:len(d)-2] ||
		d[4+4] != '_' {
		t.Errorf("display %q of %q", d, c)
	}
	for _, in := range []string{c, d, strings.ToUpper(d), strings.ToLower(d), strings.ToLower(c)} {
		if got, err := l.Parse(in); err != nil || got != c {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, c)
		}
	}
	if got, err := Canonical(d); err != nil || got != c {
		t.Errorf("Canonical(%q) = %q, %v; want %q", d, got, err, c)
	}
	// Display leaves what is not a code of the layout alone.
	for _, s := range []string{"", "PRE", "XRE" + c[3:], c[:len(c)-1] + "Y", c[:4] + "Z" + c[5:], strings.ToLower(c)} {
		if got := l.Display(s); got != s {
			t.Errorf("Display(%q) = %q", s, got)
		}
	}
}

func TestCapacity(t *testing.T) {
	if got := SeqLimit(819628286980801, 1e-6); got != 819628286 {
		t.Errorf("SeqLimit alnum 10 = %d", got)
	}
	if got := SeqLimit(1_000_000, 0); got != 1 {
		t.Errorf("SeqLimit(1e6, default) = %d", got)
	}
	if got := SeqLimit(1e18, 1); got != 1e18 {
		t.Errorf("SeqLimit(1e18, 1) = %d", got)
	}
	if got := SeqLimit(1e9, -1); got != 0 {
		t.Errorf("SeqLimit with bad density = %d", got)
	}
	if p := GuessProbability(5_000_000, 819628286980801); math.Abs(p-6.1e-9) > 1e-10 {
		t.Errorf("GuessProbability = %g", p)
	}
	f := promo.Format{Charset: "alnum", Length: 5, Prefix: "WNTR-"}
	if err := CheckCapacity(f, 28, 0); err != nil { // 31^5·1e-6 = 28.6
		t.Errorf("28 codes: %v", err)
	}
	if err := CheckCapacity(f, 29, 0); !promo.Is(err, promo.ECapacity) {
		t.Errorf("29 codes: %v", err)
	}
	err := CheckCapacity(f, 5_000_000, 0)
	var pe *promo.Error
	if !errors.As(err, &pe) || pe.Code != promo.ECapacity || !hasField(err, FieldCodeCount) || !hasField(err, FieldLength) ||
		!strings.Contains(err.Error(), "use a length of at least 9") {
		t.Errorf("5M codes at length 8: %v", err)
	}
	if got := ShortestLength(f, 5_000_000, 0); got != 9 {
		t.Errorf("ShortestLength = %d", got)
	}
	if err := CheckCapacity(promo.Format{Charset: "alnum", Length: 9}, 5_000_000, 0); err != nil {
		t.Errorf("5M at length 9: %v", err)
	}
	if err := CheckCapacity(f, 0, 0); !hasField(err, FieldCodeCount) || !promo.Is(err, promo.EInvalid) {
		t.Errorf("0 codes: %v", err)
	}
	if err := CheckCapacity(promo.Format{Charset: "numeric", Length: 10}, 1e13, 0); !strings.Contains(err.Error(), "no length") {
		t.Errorf("1e13 numeric: %v", err)
	}
	if err := CheckCapacity(f, 10, math.NaN()); !promo.Is(err, promo.EInvalid) {
		t.Errorf("NaN density: %v", err)
	}
	if err := CheckCapacity(promo.Format{Charset: "alnum"}, 10, 0); !hasField(err, FieldLength) {
		t.Errorf("invalid format: %v", err)
	}
}

func TestDivider(t *testing.T) {
	for d := uint64(2); d < 3000; d++ {
		dv := newDivider(d)
		for _, x := range []uint64{0, 1, d - 1, d, d + 1, 1<<63 - 1, 1<<63 - d, 123456789123456789, 1<<62 + 12345} {
			if q, r := dv.divmod(x); q != x/d || r != x%d {
				t.Fatalf("%d / %d = %d r %d", x, d, q, r)
			}
		}
	}
	for _, d := range []uint64{31 * 31 * 31 * 31 * 31, 1e9, 1<<62 + 1, 1<<63 - 1} {
		dv := newDivider(d)
		for x := uint64(1<<63 - 1); x > 1<<20; x = x/3*2 + 7 {
			if q, r := dv.divmod(x); q != x/d || r != x%d {
				t.Fatalf("%d / %d = %d r %d", x, d, q, r)
			}
		}
	}
}

// TestMaxCodeLen: no valid format has a canonical code longer than
// MaxCodeLen.
func TestMaxCodeLen(t *testing.T) {
	longest := 0
	for n := 2; n <= maxCharset; n++ {
		body := maxLength(uint64(n))
		if checkOrderError(n) == "" {
			body++
		}
		longest = max(longest, 2*MaxAffixLen+body)
	}
	if longest > MaxCodeLen {
		t.Errorf("a format can have %d-byte codes, MaxCodeLen is %d", longest, MaxCodeLen)
	}
	f := promo.Format{Charset: "AB", Length: 62, Prefix: strings.Repeat("P", 32), Suffix: strings.Repeat("S", 32), CheckChar: boolp(false)}
	if l := must(NewLayout(f)); l.CodeLen() != longest || longest != 126 {
		t.Errorf("longest format: CodeLen %d, computed %d", l.CodeLen(), longest)
	}
}

func TestLengthOne(t *testing.T) {
	l := must(newLayout(promo.Format{Charset: PresetAlnum, Length: 1}, 1))
	for v := range l.Space() {
		c := string(l.appendValue(nil, v))
		if got, err := l.Parse(c); err != nil || got != c || c[0] != l.chars[v] {
			t.Fatalf("v %d: %q, %q, %v", v, c, got, err)
		}
	}
}
