package codes

import (
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Known-answer vectors. A promotion's codes are a pure function of the secret,
// the counter name stored with it and its format, so the codes issued months
// ago and the ones a top-up generates today must come from the same function:
// a change to the key derivation, the permutation (round count, round
// function, cycle-walking), the rendering or the check character silently
// changes every existing promotion's codes and breaks top-ups against them.
// These answers were produced once by this engine; they are not to be
// regenerated to make a test pass. A new format gets new vectors; an
// intended change of the function needs a new counter version (codes/v2),
// never new answers for the old one.
//
// The secret is public and only for these tests.
const knownAnswerSecret = "promocodes known-answer vectors: not a real key"

var noCheck = false

// knownAnswers covers every charset kind the check character has a
// construction for: alnum (31, odd: linear), numeric (10: Damm's table), alpha
// (23, odd), 12 = 4·3 (GF(4) × Z3), 16 (GF(16)), 30 = 10·3 (Damm × Z3); each
// preset with and without the check character; prefixes, a suffix and every
// separator; a promotion keyed by its pre-canonical counter name; and the
// serial style (check alphabets of 33 and 10 characters, none).
var knownAnswers = []struct {
	name    string
	format  promo.Format
	counter string // as stored with the promotion; "" = the layout's own
	// wantCounter is the layout's counter name: promotions store it and
	// reserve their sequence numbers from it.
	wantCounter string
	space       uint64
	// codes are the display forms of sequence numbers 0, 1, 2, ...
	codes []string
	// more are display forms of sequence numbers far into the space.
	more map[uint64]string
	// values are display forms of body values (before the permutation): they
	// pin rendering and check character independently of the key.
	values map[uint64]string
}{
	{
		name:        "alnum 10, prefix, groups of 4, check",
		format:      promo.Format{Charset: PresetAlnum, Length: 10, Prefix: "WNTR-", Separator: "-", GroupSize: 4},
		wantCounter: `codes/v1:alnum:10:"WNTR":"":check`,
		space:       819628286980801,
		codes: []string{"WNTR-355H-W9XE-W8C", "WNTR-GEAR-AWUZ-STX", "WNTR-J98N-6YBG-HDT", "WNTR-8RCZ-N92S-XJZ",
			"WNTR-KQM2-H8FG-TWP", "WNTR-9896-SXCK-8YT", "WNTR-T54G-NP2S-H89", "WNTR-WC66-DUWC-GVX",
			"WNTR-D7X6-X6AZ-CQW", "WNTR-74YS-5M88-H8N"},
		more: map[uint64]string{1 << 20: "WNTR-J7X6-42Q2-R65", 409814143490400: "WNTR-5STF-39JD-WWK",
			819628286980800: "WNTR-G89J-VKH5-BPE"},
		values: map[uint64]string{0: "WNTR-2222-2222-222", 1: "WNTR-2222-2222-23Y", 30: "WNTR-2222-2222-2Z4",
			31: "WNTR-2222-2222-32W", 819628286980800: "WNTR-ZZZZ-ZZZZ-ZZ2"},
	},
	{
		name:        "alnum 10, keyed by its pre-canonical counter name",
		format:      promo.Format{Charset: PresetAlnum, Length: 10, Prefix: "WNTR-", Separator: "-", GroupSize: 4},
		counter:     `codes/v1:alnum:10:"WNTR-":"":check`,
		wantCounter: `codes/v1:alnum:10:"WNTR":"":check`,
		space:       819628286980801,
		codes: []string{"WNTR-3RUQ-MZMP-489", "WNTR-XJH6-P68Q-BAV", "WNTR-4GPD-RXND-T9N", "WNTR-24YK-DEMJ-9F3",
			"WNTR-5G4K-6GXU-MZ5", "WNTR-32WQ-NHRH-TTR", "WNTR-DVUX-K6RA-R6F", "WNTR-YK2A-Q2VS-6H4",
			"WNTR-JSR4-Z27D-FGS", "WNTR-W6DG-9PJW-53P"},
		more: map[uint64]string{1 << 20: "WNTR-YRKV-EUYK-TKV", 409814143490400: "WNTR-GMUY-R6VE-8M4",
			819628286980800: "WNTR-DR52-MR6J-8V2"},
	},
	{
		name:        "alnum 8, no check",
		format:      promo.Format{Charset: PresetAlnum, Length: 8, CheckChar: &noCheck},
		wantCounter: `codes/v1:alnum:8:"":"":nocheck`,
		space:       852891037441,
		codes: []string{"CW3GAYJJ", "TD8M5RJ5", "WKJNSVPD", "HJCF3XP6", "9U4MU5A4", "3GYK4VYY", "FXREEHBB",
			"WNWYUA5K", "ZVCJZNG5", "D7ETDDUB"},
		more:   map[uint64]string{1 << 20: "TYJAQNS6", 426445518720: "3SA28ZAJ", 852891037440: "H7S2WWED"},
		values: map[uint64]string{0: "22222222", 1: "22222223", 30: "2222222Z", 31: "22222232", 852891037440: "ZZZZZZZZ"},
	},
	{
		name:        "numeric 8, check",
		format:      promo.Format{Charset: PresetNumeric, Length: 8},
		wantCounter: `codes/v1:numeric:8:"":"":check`,
		space:       100000000,
		codes: []string{"173626142", "992404827", "536621310", "780268402", "736531426", "431997373", "354672473",
			"477012052", "549542853", "202445037"},
		more:   map[uint64]string{1 << 20: "494345432", 50000000: "727192957", 99999999: "989275294"},
		values: map[uint64]string{0: "000000000", 1: "000000013", 9: "000000092", 10: "000000101", 99999999: "999999999"},
	},
	{
		name:        "numeric 12, suffix, no check",
		format:      promo.Format{Charset: PresetNumeric, Length: 12, Suffix: "-EU", CheckChar: &noCheck},
		wantCounter: `codes/v1:numeric:12:"":"EU":nocheck`,
		space:       1000000000000,
		codes: []string{"119833984143-EU", "251358573424-EU", "518424788115-EU", "206793009767-EU", "293648312886-EU",
			"392727246374-EU", "906749696162-EU", "327395939324-EU", "325086136926-EU", "799409751759-EU"},
		more: map[uint64]string{1 << 20: "708386434668-EU", 500000000000: "279184193220-EU",
			999999999999: "116016673941-EU"},
		values: map[uint64]string{0: "000000000000-EU", 1: "000000000001-EU", 9: "000000000009-EU",
			10: "000000000010-EU", 999999999999: "999999999999-EU"},
	},
	{
		name:        "alpha 7, underscore groups of 4, check",
		format:      promo.Format{Charset: PresetAlpha, Length: 7, Separator: "_", GroupSize: 4},
		wantCounter: `codes/v1:alpha:7:"":"":check`,
		space:       3404825447,
		codes: []string{"FMJZ_TSJB", "YSKH_UEEB", "BFWA_CRYD", "XUQX_PPUS", "GTCU_WFDU", "YVJW_GHFZ", "XNDQ_JQQT",
			"RYUW_XNUM", "CKRG_SJTE", "PMBF_YHYE"},
		more:   map[uint64]string{1 << 20: "PSTV_ANPU", 1702412723: "UTUK_JHMC", 3404825446: "DDXT_DTTV"},
		values: map[uint64]string{0: "AAAA_AAAA", 1: "AAAA_AABY", 22: "AAAA_AAZC", 23: "AAAA_ABAW", 3404825446: "ZZZZ_ZZZB"},
	},
	{
		name:        "alpha 6, no check",
		format:      promo.Format{Charset: PresetAlpha, Length: 6, CheckChar: &noCheck},
		wantCounter: `codes/v1:alpha:6:"":"":nocheck`,
		space:       148035889,
		codes: []string{"BBCYBY", "WRMDMP", "UXFJZK", "CGFQBH", "ZRTQVW", "WHCVWM", "WCPUXF", "PMWUQR", "DWXWAK",
			"VBJPDP"},
		more:   map[uint64]string{1 << 20: "KCKUXB", 74017944: "NQJSCK", 148035888: "FEJXHT"},
		values: map[uint64]string{0: "AAAAAA", 1: "AAAAAB", 22: "AAAAAZ", 23: "AAAABA", 148035888: "ZZZZZZ"},
	},
	{
		name:        "custom 12 (GF(4) x Z3), lower case, groups of 5, check",
		format:      promo.Format{Charset: "abcdefgh2345", Length: 10, Separator: "-", GroupSize: 5},
		wantCounter: `codes/v1:"ABCDEFGH2345":10:"":"":check`,
		space:       61917364224,
		codes: []string{"523bd-452bf-g", "hdgg3-f33de-5", "eaa3f-hg3db-5", "3fh54-b3dhe-4", "23a3e-344ed-2",
			"5fbde-dgg32-g", "h24ca-5e343-5", "5hg4f-aed44-e", "add3b-d2ec4-c", "ca42g-af544-d"},
		more: map[uint64]string{1 << 20: "aehag-ff4g3-2", 30958682112: "53b2c-ddd5f-f",
			61917364223: "ggcbe-5e3db-3"},
		values: map[uint64]string{0: "aaaaa-aaaaa-a", 1: "aaaaa-aaaab-c", 11: "aaaaa-aaaa5-3", 12: "aaaaa-aaaba-d",
			61917364223: "55555-55555-b"},
	},
	{
		name:        "custom 16 (GF(16)), dotted lower-case prefix, check",
		format:      promo.Format{Charset: "0123456789ABCDEF", Length: 8, Prefix: "hx."},
		wantCounter: `codes/v1:"0123456789ABCDEF":8:"HX":"":check`,
		space:       4294967296,
		codes: []string{"hx.2CC32319A", "hx.32A1A3DC1", "hx.33E0E174B", "hx.715374327", "hx.D27CDE942",
			"hx.F4E206FF5", "hx.085B2E6A2", "hx.F7A660222", "hx.724B507CC", "hx.EFA681E8B"},
		more: map[uint64]string{1 << 20: "hx.79A56F62C", 2147483648: "hx.FF64EF8E9", 4294967295: "hx.3C5AB87D6"},
		values: map[uint64]string{0: "hx.000000000", 1: "hx.000000012", 15: "hx.0000000FD", 16: "hx.000000104",
			4294967295: "hx.FFFFFFFFE"},
	},
	{
		name:        "custom 30 (Damm x Z3), check",
		format:      promo.Format{Charset: "ABCDEFGHJKMNPQRSTUVWXYZ2345678", Length: 5},
		wantCounter: `codes/v1:"ABCDEFGHJKMNPQRSTUVWXYZ2345678":5:"":"":check`,
		space:       24300000,
		codes: []string{"6AN8CP", "TEVPYG", "DNJCVA", "Q5WNNG", "ZJRX2J", "EMWZCT", "FSPZJN", "7273SN", "4NNH6V",
			"V8DH4U"},
		more:   map[uint64]string{1 << 20: "58SWHD", 12150000: "Y43AC6", 24299999: "NPFXYD"},
		values: map[uint64]string{0: "AAAAAA", 1: "AAAABD", 29: "AAAA8Z", 30: "AAABAB", 24299999: "888888"},
	},
	// The serial style: the serial is seq+1, the tail the keyed MAC of the
	// serial, the check character over both in one alphabet (an alnum series'
	// may be a digit: 500000's is 1).
	{
		name: "serial, alnum tail 5, prefix, check",
		format: promo.Format{Style: promo.StyleSerial, Charset: PresetAlnum, SerialDigits: 6, TailLength: 5,
			Prefix: "SPRING-", Separator: "-"},
		wantCounter: `codes/v1:serial:6:alnum:5:"SPRING":"":check`,
		space:       999999,
		codes: []string{"SPRING-000001-F5TK4E", "SPRING-000002-WW5YXB", "SPRING-000003-TWN49Z", "SPRING-000004-PCSMXZ",
			"SPRING-000005-RNWA4J", "SPRING-000006-2A6DKK", "SPRING-000007-456EDC", "SPRING-000008-XNUZPN",
			"SPRING-000009-XQE7BK", "SPRING-000010-YHZ26N"},
		more: map[uint64]string{1024: "SPRING-001025-WFR7Y9", 499999: "SPRING-500000-R2W6E1",
			999998: "SPRING-999999-N25RE8"},
	},
	{
		name: "serial, numeric tail 6, suffix, no check",
		format: promo.Format{Style: promo.StyleSerial, Charset: PresetNumeric, SerialDigits: 4, TailLength: 6,
			Suffix: "-EU", CheckChar: &noCheck},
		wantCounter: `codes/v1:serial:4:numeric:6:"":"EU":nocheck`,
		space:       9999,
		codes: []string{"0001995783-EU", "0002217317-EU", "0003729333-EU", "0004207193-EU", "0005593850-EU",
			"0006974137-EU", "0007028803-EU", "0008367436-EU", "0009943959-EU", "0010827770-EU"},
		more: map[uint64]string{1024: "1025153378-EU", 4999: "5000616795-EU", 9998: "9999273422-EU"},
	},
	{
		name: "serial, lower-case alpha tail 5, dot, check",
		format: promo.Format{Style: promo.StyleSerial, Charset: "abcdefghjkmnpqrstuvwxyz", SerialDigits: 9,
			TailLength: 5, Separator: "."},
		wantCounter: `codes/v1:serial:9:alpha:5:"":"":check`,
		space:       999999999,
		codes: []string{"000000001.yubvyc", "000000002.pshqce", "000000003.zemqkz", "000000004.jeqbtx",
			"000000005.gvqeyf", "000000006.pecup4", "000000007.uyzwdj", "000000008.rbhzh8", "000000009.kpnqtd",
			"000000010.gsdkp3"},
		more: map[uint64]string{1024: "000001025.pyfve6", 499999999: "500000000.nzwfan", 999999998: "999999999.reremb"},
	},
}

// TestKnownAnswerCodes: the fixed secret, counter and format give the pinned
// codes for sequence numbers 0..9 and a few far into the space, through every
// path the services use (Code, AppendCode, the generator's AppendCodes, the
// display form), and each decodes back to its sequence number from its display
// form, its canonical form and a shopper's lower-case spelling.
func TestKnownAnswerCodes(t *testing.T) {
	for _, v := range knownAnswers {
		t.Run(v.name, func(t *testing.T) { checkKnownCodes(t, v.format, v.counter, v.wantCounter, v.space, v.codes, v.more) })
	}
}

// checkKnownCodes checks one vector's codes and returns how many it checked.
func checkKnownCodes(t *testing.T, f promo.Format, counter, wantCounter string, space uint64, codes []string,
	more map[uint64]string) int {
	t.Helper()
	l, err := NewLayout(f)
	if err != nil {
		t.Fatal(err)
	}
	if l.CounterName() != wantCounter || l.Space() != space {
		t.Errorf("counter %q space %d, want %q and %d: promotions store the counter name and reserve "+
			"from it", l.CounterName(), l.Space(), wantCounter, space)
	}
	e, err := NewForCounter(l, counter, []byte(knownAnswerSecret))
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{}
	for seq, c := range codes {
		want[uint64(seq)] = c
	}
	for seq, c := range more {
		want[seq] = c
	}
	for seq, display := range want {
		canonical, err := Canonical(display)
		if err != nil {
			t.Fatalf("seq %d: pinned %q: %v", seq, display, err)
		}
		got, err := e.Code(seq)
		if err != nil {
			t.Fatal(err)
		}
		if got != canonical {
			t.Errorf("Code(%d) = %q (%s), want %q: the codes of existing promotions changed",
				seq, got, l.Display(got), canonical)
			continue
		}
		if got := string(e.AppendCode(nil, seq)); got != canonical {
			t.Errorf("AppendCode(%d) = %q, want %q", seq, got, canonical)
		}
		if got := l.Display(canonical); got != display {
			t.Errorf("Display(%q) = %q, want %q", canonical, got, display)
		}
		for _, typed := range []string{display, canonical, strings.ToLower(display)} {
			if back, err := e.Decode(typed); err != nil || back != seq {
				t.Errorf("Decode(%q) = %d, %v; want %d", typed, back, err, seq)
			}
		}
	}
	// The generator's batch path, from 0 and from inside the run.
	for _, from := range []int{0, 3} {
		n := len(codes) - from
		batch := string(e.AppendCodes(nil, uint64(from), n))
		var joined strings.Builder
		for _, d := range codes[from:] {
			joined.WriteString(must(Canonical(d)))
		}
		if batch != joined.String() {
			t.Errorf("AppendCodes(%d, %d) = %q, want %q", from, n, batch, joined.String())
		}
	}
	return len(want)
}

// TestKnownAnswerRendering pins the body rendering and the check character on
// their own, before any permutation: value → display form, and the layout
// accepts each rendered code and refuses it with its check character changed.
// A failure here and in TestKnownAnswerCodes points at rendering or the check
// character; one only in TestKnownAnswerCodes at the key derivation or the
// permutation.
func TestKnownAnswerRendering(t *testing.T) {
	for _, v := range knownAnswers {
		if v.values != nil {
			t.Run(v.name, func(t *testing.T) { checkKnownRendering(t, v.format, v.values) })
		}
	}
}

// checkKnownRendering checks one vector's rendered values and returns how
// many it checked.
func checkKnownRendering(t *testing.T, f promo.Format, values map[uint64]string) int {
	t.Helper()
	l := must(NewLayout(f))
	for value, display := range values {
		got := string(l.appendValue(nil, value))
		if d := l.Display(got); d != display {
			t.Errorf("value %d renders %q, want %q", value, d, display)
			continue
		}
		if shape, err := l.Check(got); !shape || err != nil {
			t.Errorf("Check(%q) = %v, %v", got, shape, err)
		}
		if !l.check {
			continue
		}
		// The check character is the body's last character.
		p := len(l.prefixKey) + l.length
		for i := 0; i < len(l.canon); i++ {
			if l.canon[i] == got[p] {
				continue
			}
			typo := got[:p] + string(l.canon[i]) + got[p+1:]
			if _, err := l.Check(typo); err == nil {
				t.Errorf("%q (check character %q replaced by %q) passes Check", typo, got[p], l.canon[i])
			}
		}
	}
	return len(values)
}

// TestKnownAnswerFingerprint: promotions store the key's fingerprint, and a
// generator refuses a batch whose fingerprint is not its key's, so the
// fingerprint of a key must not change either.
func TestKnownAnswerFingerprint(t *testing.T) {
	if got := KeyFingerprint([]byte(knownAnswerSecret)); got != knownFingerprint {
		t.Errorf("KeyFingerprint = %q, want %q: every stored promotion would look keyed by another secret", got, knownFingerprint)
	}
}

const knownFingerprint = "1bb52312bb653f97"

// TestAdversarialCodeEngineKnownAnswers puts the known answers in the standing
// adversarial suite: a refactor that changes any existing promotion's codes
// (round count, round function, rendering, check character, key derivation)
// is the silent break it is there to catch. The database plays no part.
func TestAdversarialCodeEngineKnownAnswers(t *testing.T) {
	codes, values, checks := 0, 0, 0
	for _, v := range knownAnswers {
		codes += checkKnownCodes(t, v.format, v.counter, v.wantCounter, v.space, v.codes, v.more)
		values += checkKnownRendering(t, v.format, v.values)
		if v.format.HasCheckChar() {
			checks++
		}
	}
	if fp := KeyFingerprint([]byte(knownAnswerSecret)); fp != knownFingerprint {
		t.Errorf("KeyFingerprint = %q, want %q", fp, knownFingerprint)
	}
	outcome := "every one as pinned"
	if t.Failed() {
		outcome = "CHANGED (the differences are above)"
	}
	t.Logf("adversarial: code engine known answers [no database]: %d formats (%d with a check character), "+
		"%d codes both ways, %d rendered values and the key fingerprint: %s",
		len(knownAnswers), checks, codes, values, outcome)
}
