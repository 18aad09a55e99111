package codes

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

var spring = promo.Format{Style: promo.StyleSerial, Charset: PresetAlnum, SerialDigits: 6, TailLength: 5,
	Prefix: "SPRING-", Separator: "-"}

// TestSerialTailIsTheDocumentedMAC recomputes tails from the documented
// construction with the reference implementations (crypto/hmac, the general
// SipHash-2-4): tail = SipHash-2-4(k, serial as 8 little-endian bytes) mod
// n^tailLength, k = the first 16 bytes of HMAC-SHA256(HMAC-SHA256(secret,
// counter name), "serial-tail"), written in the charset most significant
// digit first. And the tail key is none of the permutation's round keys of
// the same code space (domain separation).
func TestSerialTailIsTheDocumentedMAC(t *testing.T) {
	e := must(New(spring, []byte(knownAnswerSecret)))
	l := e.Layout()
	fk := hmac.New(sha256.New, []byte(knownAnswerSecret))
	fk.Write([]byte(l.CounterName()))
	m := hmac.New(sha256.New, fk.Sum(nil))
	m.Write([]byte("serial-tail"))
	k := m.Sum(nil)
	k0, k1 := binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:16])
	for _, seq := range []uint64{0, 1, 2, 122, 4242, 999_998} {
		var msg [8]byte
		binary.LittleEndian.PutUint64(msg[:], seq+1)
		v := sipHash24(k0, k1, msg[:]) % l.TailSpace()
		want := make([]byte, spring.TailLength)
		for i := len(want) - 1; i >= 0; i-- {
			want[i] = presets[PresetAlnum][v%31]
			v /= 31
		}
		code := must(e.Code(seq))
		tail := code[len("SPRING")+6 : len(code)-1]
		if tail != string(want) {
			t.Errorf("seq %d: tail %s, want %s", seq, tail, want)
		}
		if serial, ok := l.SerialOf(code); !ok || serial != seq+1 {
			t.Errorf("SerialOf(%s) = %d, %v", code, serial, ok)
		}
	}
	tk := deriveTailKey([]byte(knownAnswerSecret), l.CounterName())
	for i, rk := range deriveKeys([]byte(knownAnswerSecret), l.CounterName()) {
		if rk == tk {
			t.Fatalf("the tail key is round key %d", i)
		}
	}
}

// TestSerialProperties: over random serials of several formats, codes are
// distinct, Decode(Code(s)) = s through any re-typing, canonical order is
// serial order, and the check character passes.
func TestSerialProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, f := range []promo.Format{
		spring,
		{Style: promo.StyleSerial, Charset: PresetNumeric, SerialDigits: 9, TailLength: 7},
		{Style: promo.StyleSerial, Charset: PresetAlpha, SerialDigits: 18, TailLength: 8, Prefix: "x", Suffix: "/25", Separator: "."},
		{Style: promo.StyleSerial, Charset: "0123456789abcdef", SerialDigits: 3, TailLength: 6, CheckChar: boolp(false)},
		{Style: promo.StyleSerial, Charset: PresetAlnum, SerialDigits: 1, TailLength: 9},
	} {
		e := must(New(f, testSecret(r)))
		l := e.Layout()
		seen := map[string]uint64{}
		var seqs []uint64
		for range min(3000, l.Space()) {
			seqs = append(seqs, r.Uint64N(l.Space()))
		}
		seqs = append(seqs, 0, l.Space()-1)
		for _, seq := range seqs {
			c := must(e.Code(seq))
			if len(c) != l.CodeLen() {
				t.Fatalf("%s: %q has %d bytes, want %d", l.CounterName(), c, len(c), l.CodeLen())
			}
			if prev, ok := seen[c]; ok && prev != seq {
				t.Fatalf("%s: seq %d and %d both give %s", l.CounterName(), prev, seq, c)
			}
			seen[c] = seq
			if shape, err := l.Check(c); !shape || err != nil {
				t.Fatalf("%s: Check(%s) = %v, %v", l.CounterName(), c, shape, err)
			}
			for _, typed := range []string{c, l.Display(c), strings.ToLower(l.Display(c)), " " + l.Display(c) + " "} {
				if got, err := e.Decode(typed); err != nil || got != seq {
					t.Fatalf("%s: Decode(%q) = %d, %v; want %d", l.CounterName(), typed, got, err, seq)
				}
				if p, err := l.Parse(typed); err != nil || p != c {
					t.Fatalf("%s: Parse(%q) = %q, %v", l.CounterName(), typed, p, err)
				}
			}
		}
		sorted := slices.Sorted(maps.Keys(seen))
		for i := 1; i < len(sorted); i++ {
			if seen[sorted[i-1]] >= seen[sorted[i]] {
				t.Fatalf("%s: %s sorts before %s but has a later serial", l.CounterName(), sorted[i-1], sorted[i])
			}
		}
		if _, err := e.Code(l.Space()); err == nil {
			t.Errorf("%s: Code(Space) did not fail", l.CounterName())
		}
	}
}

// TestSerialForgedTailRefused: a changed tail character is refused. With the
// check character left as it was, the check character catches it offline
// (Check and Parse, no key); with the check character recomputed to fit (what
// a guesser who knows the algorithm does), only the key can tell: Decode
// refuses it, and so does every other tail of that serial but the one.
func TestSerialForgedTailRefused(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	e := must(New(spring, testSecret(r)))
	l := e.Layout()
	p := len("SPRING")
	for range 200 {
		code := []byte(must(e.Code(r.Uint64N(l.Space()))))
		i := p + 6 + r.IntN(spring.TailLength)
		orig := code[i]
		for code[i] == orig {
			code[i] = l.canon[r.IntN(len(l.canon))]
		}
		if shape, err := l.Check(string(code)); !shape || !errors.Is(err, errCheckMismatch) {
			t.Fatalf("%s: Check = %v, %v; want a check character mismatch", code, shape, err)
		}
		if _, err := e.Decode(string(code)); !promo.Is(err, promo.EInvalid) {
			t.Fatalf("%s: Decode accepted a changed tail", code)
		}
		fixCheck(l, code)
		if shape, err := l.Check(string(code)); !shape || err != nil {
			t.Fatalf("%s: the recomputed check character does not fit: %v, %v", code, shape, err)
		}
		if _, err := e.Decode(string(code)); !errors.Is(err, errTailMismatch) {
			t.Fatalf("%s: Decode = %v, want the tail mismatch", code, err)
		}
	}
	// Every tail of one serial: exactly one decodes.
	small := must(newLayout(promo.Format{Style: promo.StyleSerial, Charset: "ABCDEFG", SerialDigits: 2, TailLength: 3}, 1))
	se := must(NewWithLayout(small, testSecret(r)))
	code := []byte(must(se.Code(41)))
	valid := 0
	for v := range small.TailSpace() {
		for i := 2; i < 5; i++ {
			code[6-i] = small.canon[v%7]
			v /= 7
		}
		fixCheck(small, code)
		if _, err := se.Decode(string(code)); err == nil {
			valid++
		}
	}
	if valid != 1 {
		t.Errorf("%d of %d tails of serial 42 decode, want 1", valid, small.TailSpace())
	}
}

// fixCheck sets the last character of a canonical serial code (no suffix) to
// the check character its serial and tail need.
func fixCheck(l *Layout, code []byte) {
	body := code[len(l.prefixKey) : len(code)-1]
	var s byte
	for _, c := range body {
		s = l.qg.op[int(s)*qgStride+int(l.ckDecode[c])]
	}
	code[len(code)-1] = l.ck[l.qg.zero[s]]
}

// TestSerialCheckCharDetectsErrors is exhaustive over a sample of codes:
// every single-character substitution anywhere in the serial, the tail or
// the check character (by any character that keeps the code's shape), and
// every adjacent transposition of different characters, the last serial
// digit with the first tail character included, is rejected by Check and
// Parse. A transposition that breaks the shape (a letter into the serial) is
// no code at all.
func TestSerialCheckCharDetectsErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	for _, f := range []promo.Format{
		spring,
		{Style: promo.StyleSerial, Charset: PresetNumeric, SerialDigits: 5, TailLength: 6},  // 10: Damm's table
		{Style: promo.StyleSerial, Charset: PresetAlpha, SerialDigits: 4, TailLength: 5},    // 23 + 10 = 33
		{Style: promo.StyleSerial, Charset: "23456789", SerialDigits: 4, TailLength: 7},     // 8 + 2 = 10
		{Style: promo.StyleSerial, Charset: "ABCDEF012345", SerialDigits: 4, TailLength: 6}, // 12 + 4 = 16
	} {
		e := must(New(f, testSecret(r)))
		l := e.Layout()
		p, k := len(l.prefixKey), l.digits+l.length+1
		all := l.ck
		for range 40 {
			code := []byte(must(e.Code(r.Uint64N(l.Space()))))
			for i := p; i < p+k; i++ {
				orig := code[i]
				for j := 0; j < len(all); j++ {
					if all[j] == orig {
						continue
					}
					code[i] = all[j]
					shape, err := l.Check(string(code))
					if shape && err == nil {
						t.Fatalf("%s: substitution %c at %d accepted (%s)", l.CounterName(), all[j], i, code)
					}
					if _, err := l.Parse(string(code)); err == nil {
						t.Fatalf("%s: Parse accepted substitution at %d", l.CounterName(), i)
					}
				}
				code[i] = orig
			}
			for i := p; i+1 < p+k; i++ {
				if code[i] == code[i+1] {
					continue
				}
				code[i], code[i+1] = code[i+1], code[i]
				if shape, err := l.Check(string(code)); shape && err == nil {
					t.Fatalf("%s: transposition at %d accepted (%s)", l.CounterName(), i, code)
				}
				if _, err := l.Parse(string(code)); err == nil {
					t.Fatalf("%s: Parse accepted transposition at %d", l.CounterName(), i)
				}
				code[i], code[i+1] = code[i+1], code[i]
			}
		}
	}
}

func TestSerialInvalidFormats(t *testing.T) {
	s := func(mod func(*promo.Format)) promo.Format {
		f := spring
		mod(&f)
		return f
	}
	for _, tc := range []struct {
		name  string
		f     promo.Format
		field string
		msg   string
	}{
		{"unknown style", s(func(f *promo.Format) { f.Style = "Serial" }), FieldStyle, `"random" (the default) or "serial"`},
		{"length given", s(func(f *promo.Format) { f.Length = 10 }), FieldLength, "not used by style"},
		{"group size", s(func(f *promo.Format) { f.GroupSize = 3 }), FieldGroupSize, "between the serial and the tail"},
		{"no digits", s(func(f *promo.Format) { f.SerialDigits = 0 }), FieldSerialDigits, "at least 1"},
		{"19 digits", s(func(f *promo.Format) { f.SerialDigits = 19 }), FieldSerialDigits, "at most 18"},
		{"no tail", s(func(f *promo.Format) { f.TailLength = 0 }), FieldTailLength, "at least 1"},
		{"short tail", s(func(f *promo.Format) { f.TailLength = 4 }), FieldTailLength, "use a tailLength of at least 5"},
		{"long tail", s(func(f *promo.Format) { f.TailLength = 10 }), FieldTailLength, "maximum tailLength for a charset of 31 characters is 9"},
		{"no charset", s(func(f *promo.Format) { f.Charset = "" }), FieldCharset, "required"},
		// 4 characters and the 10 digits: 14, which has no check character here.
		{"check 14", s(func(f *promo.Format) { f.Charset, f.TailLength = "WXYZ", 10 }), FieldCheckChar, "digits 0-9 together (14 characters)"},
		{"separator", s(func(f *promo.Format) { f.Separator = "/" }), FieldSeparator, "must be one of"},
		{"digits on random", promo.Format{Charset: "alnum", Length: 10, SerialDigits: 6}, FieldSerialDigits, `only used by style "serial"`},
		{"tail on random", promo.Format{Charset: "alnum", Length: 10, TailLength: 4}, FieldTailLength, `only used by style "serial"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLayout(tc.f)
			var pe *promo.Error
			if !errors.As(err, &pe) || pe.Code != promo.EInvalid {
				t.Fatalf("err = %v, want an EInvalid *promo.Error", err)
			}
			msg, ok := fieldMessageOf(pe, tc.field)
			if !ok || !strings.Contains(msg, tc.msg) {
				t.Errorf("%s: %q (in %v) does not say %q", tc.field, msg, err, tc.msg)
			}
		})
	}
	off := false
	if _, err := NewLayout(promo.Format{Style: promo.StyleSerial, Charset: "WXYZ", SerialDigits: 4, TailLength: 10,
		CheckChar: &off}); err != nil {
		t.Errorf("without a check character the 14-character alphabet is fine: %v", err)
	}
	if l := must(NewLayout(promo.Format{Style: promo.StyleRandom, Charset: "alnum", Length: 10})); l.Format().Style != "" ||
		l.CounterName() != must(NewLayout(promo.Format{Charset: "alnum", Length: 10})).CounterName() {
		t.Errorf("style random is not the default: %+v %s", l.Format(), l.CounterName())
	}
}

func fieldMessageOf(e *promo.Error, field string) (string, bool) {
	for _, f := range e.Fields {
		if f.Field == field {
			return f.Message, true
		}
	}
	return "", false
}

// TestSerialCapacity: the tail sets the guess probability and the digits the
// count; the advice names the tailLength for the density and the digits for
// the count, and following it is accepted.
func TestSerialCapacity(t *testing.T) {
	l := must(NewLayout(spring))
	if l.Space() != 999_999 || l.TailSpace() != 28_629_151 || l.CodeLen() != 6+6+5+1 {
		t.Fatalf("space %d, tail space %d, code length %d", l.Space(), l.TailSpace(), l.CodeLen())
	}
	if g := l.GuessProbability(1000); g != 1/28_629_151.0 || l.GuessProbability(0) != 0 {
		t.Errorf("guess probability %g", g)
	}
	if l.SeqLimit(1e-6) != 999_999 || l.SeqLimit(1e-8) != 0 {
		t.Errorf("SeqLimit %d at 1e-6, %d at 1e-8", l.SeqLimit(1e-6), l.SeqLimit(1e-8))
	}
	if err := l.CheckCapacity(999_999, 0); err != nil {
		t.Errorf("999,999 codes: %v", err)
	}
	for _, tc := range []struct {
		count        int64
		density      float64
		tail, digits int
	}{
		{1_000_000, 1e-6, 0, 7},
		{1000, 1e-9, 7, 0},
		{10_000_000, 1e-9, 7, 8},
		{1000, 1e-14, 9, 0}, // 31^9 = 2.6e13 < 1e14: no tail is long enough
	} {
		err := l.CheckCapacity(tc.count, tc.density)
		var e *promo.Error
		if !errors.As(err, &e) || e.Code != promo.ECapacity {
			t.Fatalf("%d codes at %g: %v, want ECapacity", tc.count, tc.density, err)
		}
		if tc.density == 1e-14 {
			if msg, _ := fieldMessageOf(e, FieldTailLength); !strings.Contains(msg, "larger charset") || e.MinTailLength != 0 {
				t.Errorf("%d codes at %g: %v", tc.count, tc.density, err)
			}
			continue
		}
		if e.MinTailLength != tc.tail || e.MinSerialDigits != tc.digits {
			t.Errorf("%d codes at %g: advice tail %d digits %d, want %d %d: %v", tc.count, tc.density,
				e.MinTailLength, e.MinSerialDigits, tc.tail, tc.digits, err)
		}
		f := spring
		if tc.tail > 0 {
			f.TailLength = tc.tail
		}
		if tc.digits > 0 {
			f.SerialDigits = tc.digits
		}
		if _, err := CheckFormatFor(f, tc.count, tc.density); err != nil {
			t.Errorf("the advised format %+v is refused: %v", f, err)
		}
	}
	// Too short for the space minimum and for a stricter density: the
	// advice is the density's.
	f := spring
	f.TailLength = 3
	_, err := CheckFormatFor(f, 10, 1e-9)
	var e *promo.Error
	if !errors.As(err, &e) || e.MinTailLength != 7 {
		t.Fatalf("tail 3 at 1e-9: %v", err)
	}
	if msg, _ := fieldMessageOf(e, FieldTailLength); !strings.Contains(msg, "at least 7") {
		t.Errorf("tail 3 at 1e-9: %q", msg)
	}
	if ShortestTail(spring, 0) != 5 || ShortestTail(promo.Format{Charset: PresetNumeric}, 1e-9) != 9 ||
		ShortestTail(promo.Format{Charset: "bad charset"}, 0) != 0 {
		t.Error("ShortestTail")
	}
	if FewestSerialDigits(9) != 1 || FewestSerialDigits(10) != 2 || FewestSerialDigits(999_999_999_999_999_999) != 18 ||
		FewestSerialDigits(1_000_000_000_000_000_000) != 0 {
		t.Error("FewestSerialDigits")
	}
	if ShortestLength(spring, 1000, 0) != 0 {
		t.Error("ShortestLength of a serial format")
	}
}

func TestSerialAppendCodes(t *testing.T) {
	e := must(New(spring, []byte(knownAnswerSecret)))
	l := e.Layout()
	var want []byte
	for seq := uint64(500); seq < 700; seq++ {
		want = e.AppendCode(want, seq)
	}
	if got := e.AppendCodes(nil, 500, 200); !bytes.Equal(got, want) {
		t.Fatal("AppendCodes differs from AppendCode")
	}
	buf := make([]byte, 0, l.CodeLen())
	if n := testing.AllocsPerRun(100, func() { buf = e.AppendCode(buf[:0], 77) }); n != 0 {
		t.Errorf("AppendCode allocates %v times", n)
	}
	for _, c := range []string{"SPRING000000EADP8H", "SPRING0000A1EADP8H", "SPRING000001EADP8", "SPRING000001EADP8I"} {
		if shape, _ := l.Check(c); shape {
			t.Errorf("Check(%s): shape true", c)
		}
		if _, err := l.Parse(c); err == nil {
			t.Errorf("Parse(%s) accepted", c)
		}
		if l.Display(c) != c {
			t.Errorf("Display(%s) = %s", c, l.Display(c))
		}
	}
	if _, err := l.Parse("spring-000000-eadp8h"); err == nil || !strings.Contains(err.Error(), "serials start at 000001") {
		t.Errorf("serial 0: %v", err)
	}
	if _, err := l.Parse("spring-00a001-eadp8h"); err == nil || !strings.Contains(err.Error(), "'a' at position 10 is not a digit") {
		t.Errorf("letter in the serial: %v", err)
	}
}
