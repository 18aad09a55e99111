package codes

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

var winter = promo.Format{Charset: PresetAlnum, Length: 10, Prefix: "WNTR-", Separator: "-", GroupSize: 4}

func TestSecretRules(t *testing.T) {
	secret := []byte("short-but-secret-31-bytes-long!")
	_, err := New(winter, secret)
	if !promo.Is(err, promo.EInvalid) || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("31-byte secret: %v", err)
	}
	if strings.Contains(err.Error(), string(secret)) {
		t.Fatal("error shows the secret")
	}
	secret = []byte("a-secret-that-must-never-be-printed-anywhere")
	e := must(New(winter, secret))
	for _, s := range []string{fmt.Sprint(e), fmt.Sprintf("%v %+v %#v %s", e, e, e, e)} {
		if strings.Contains(s, "never") {
			t.Errorf("%q shows the secret", s)
		}
	}
	if _, err := New(promo.Format{Charset: "alnum"}, secret); !hasField(err, FieldLength) {
		t.Errorf("invalid format: %v", err)
	}
}

func TestDeterministicAndRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	secret := testSecret(r)
	e1, e2 := must(New(winter, secret)), must(New(winter, bytes.Clone(secret)))
	l := e1.Layout()
	buf := make([]byte, 0, l.CodeLen())
	for range 20000 {
		seq := r.Uint64N(l.Space())
		c := e1.AppendCode(buf[:0], seq)
		if len(c) != l.CodeLen() {
			t.Fatalf("code %q has %d bytes, want %d", c, len(c), l.CodeLen())
		}
		if c2 := must(e2.Code(seq)); c2 != string(c) {
			t.Fatalf("seq %d: %q then %q", seq, c, c2)
		}
		if got := must(e1.Decode(string(c))); got != seq {
			t.Fatalf("Decode(AppendCode(%d)) = %d", seq, got)
		}
		disp := l.Display(string(c))
		if got := must(e1.Decode(strings.ToLower(disp))); got != seq {
			t.Fatalf("Decode(%q) = %d, want %d", disp, got, seq)
		}
	}
	// Edges of the space.
	for _, seq := range []uint64{0, 1, l.Space() - 1} {
		if got := must(e1.Decode(must(e1.Code(seq)))); got != seq {
			t.Errorf("edge %d: %d", seq, got)
		}
	}
	if _, err := e1.Code(l.Space()); err == nil {
		t.Error("Code(Space) did not fail")
	}
}

// TestKeysGiveUnrelatedSequences: different secrets, or different formats
// under one secret, agree on about 1/31 of positions like random strings
// would, and never on a whole code.
func TestKeysGiveUnrelatedSequences(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	s1 := testSecret(r)
	s2 := bytes.Clone(s1)
	s2[0] ^= 1
	a := must(New(winter, s1))
	others := map[string]*Engine{
		"one bit of secret": must(New(winter, s2)),
		"other prefix":      must(New(promo.Format{Charset: PresetAlnum, Length: 10, Prefix: "WNTX-"}, s1)),
		"no check char":     must(New(promo.Format{Charset: PresetAlnum, Length: 10, Prefix: "WNTR-", CheckChar: boolp(false)}, s1)),
	}
	for name, b := range others {
		const n = 10000
		same, whole := 0, 0
		for seq := range uint64(n) {
			ca, cb := must(a.Code(seq))[4:14], must(b.Code(seq))[4:14] // after the canonical prefix WNTR
			if ca == cb {
				whole++
			}
			for i := range ca {
				if ca[i] == cb[i] {
					same++
				}
			}
		}
		// Random: 1/31 ≈ 3.2% of positions. A related sequence would be far higher.
		rate := float64(same) / (n * 10)
		if rate > 0.045 || whole > 0 {
			t.Errorf("%s: %.2f%% positional agreement, %d equal codes", name, 100*rate, whole)
		}
		t.Logf("%s: %.2f%% positional agreement (random: 3.23%%)", name, 100*rate)
	}
}

// TestSmallSpaceExhaustive builds a full engine on a 4-digit numeric space
// (10^4 < MinSpace, so through the internal constructor) and checks every
// sequence number: distinct codes, all parse, all decode back.
func TestSmallSpaceExhaustive(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, f := range []promo.Format{
		{Charset: PresetNumeric, Length: 4},
		{Charset: PresetNumeric, Length: 4, Prefix: "N", Separator: "-", GroupSize: 2, CheckChar: boolp(false)},
		{Charset: "ABCDE", Length: 5, Suffix: "!"},
	} {
		l := must(newLayout(f, 1))
		e := must(NewWithLayout(l, testSecret(r)))
		seen := make(map[string]bool, l.Space())
		for seq := range l.Space() {
			c := must(e.Code(seq))
			if seen[c] {
				t.Fatalf("%+v: code %q twice", f, c)
			}
			seen[c] = true
			if got := must(e.Decode(l.Display(c))); got != seq {
				t.Fatalf("%+v: Decode(%q) = %d, want %d", f, c, got, seq)
			}
		}
		if uint64(len(seen)) != l.Space() {
			t.Fatalf("%d codes for space %d", len(seen), l.Space())
		}
	}
}

func TestAppendCodeNoAlloc(t *testing.T) {
	e := must(New(winter, testSecret(rand.New(rand.NewPCG(1, 1)))))
	buf := make([]byte, 0, 64)
	seq := uint64(0)
	if n := testing.AllocsPerRun(1000, func() { buf = e.AppendCode(buf[:0], seq); seq++ }); n != 0 {
		t.Errorf("AppendCode allocates %.1f times per code", n)
	}
}

// TestAppendCodesMatchesAppendCode: the two-lane batch gives exactly the
// codes of single calls, for every batch size up to 70 and at the end of the
// space.
func TestAppendCodesMatchesAppendCode(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, f := range []promo.Format{winter, {Charset: PresetNumeric, Length: 7, Suffix: "Z"}} {
		e := must(New(f, testSecret(r)))
		space := e.Layout().Space()
		for n := 0; n <= 70; n++ {
			for _, seq := range []uint64{0, r.Uint64N(space - 100), space - uint64(n)} {
				got := e.AppendCodes([]byte("x"), seq, n)
				want := []byte("x")
				for i := range uint64(n) {
					want = e.AppendCode(want, seq+i)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%+v: AppendCodes(%d, %d) differs from AppendCode", f, seq, n)
				}
			}
		}
	}
}

// TestNewForCounter: an engine keyed by a promotion's stored counter name
// keeps that counter's permutation (a promotion created when prefix "WNTR-"
// had its own counter goes on with its old codes, now canonical), and an
// empty name means the layout's own.
func TestNewForCounter(t *testing.T) {
	secret := testSecret(rand.New(rand.NewPCG(17, 18)))
	l := must(NewLayout(winter))
	const old = `codes/v1:alnum:10:"WNTR-":"":check`
	eOld, eNew, eDefault := must(NewForCounter(l, old, secret)), must(NewWithLayout(l, secret)), must(NewForCounter(l, "", secret))
	if !strings.Contains(eOld.String(), old) || eNew.String() != "codes.Engine("+l.CounterName()+")" {
		t.Errorf("String: %s, %s", eOld, eNew)
	}
	differ := 0
	for seq := range uint64(100) {
		co, cn := must(eOld.Code(seq)), must(eNew.Code(seq))
		if cn != must(eDefault.Code(seq)) {
			t.Fatalf("seq %d: empty counter name is not the layout's", seq)
		}
		if co[:4] != "WNTR" || len(co) != l.CodeLen() {
			t.Fatalf("seq %d: %q is not canonical", seq, co)
		}
		if must(eOld.Decode(l.Display(co))) != seq {
			t.Fatalf("seq %d: %q does not decode with its engine", seq, co)
		}
		if co != cn {
			differ++
		}
	}
	if differ < 95 {
		t.Errorf("only %d of 100 codes differ between the old and the new counter's permutation", differ)
	}
}
