package redemption_test

import (
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// TestSerialCodes: codes of a serial format are validated and redeemed like
// any others (typed in any case, with or without separators, answered in
// display form); the offline catalog refuses a mistyped serial or tail by
// its check character without a database look-up, and a tail forged with a
// fitting check character reaches the database, which does not know it.
func TestSerialCodes(t *testing.T) {
	cs := &countingStore{store: openStore(t, "sqlite", 4)}
	h := newHarnessOn(t, cs, noGuessLimit, zaptest.NewLogger(t))
	f := promo.Format{Style: promo.StyleSerial, Charset: codes.PresetAlnum, SerialDigits: 6, TailLength: 5,
		Prefix: "SPRING-", Separator: "-"}
	_, list := h.seed(promotionSpec{n: 20, maxUsage: 1, perUser: 1, format: f})
	code := list[7] // SPRING-000008-XXXXXC
	if !strings.HasPrefix(code, "SPRING-000008-") {
		t.Fatalf("seeded code %s", code)
	}
	if r, v := h.validate(strings.ToLower(strings.ReplaceAll(code, "-", "")), "alice"); r.status != http.StatusOK ||
		v.Code != code || v.Status != "redeemable" {
		t.Fatalf("validate = %d %s", r.status, r.body)
	}
	canon := strings.ReplaceAll(code, "-", "")
	l, err := codes.NewLayout(f)
	if err != nil {
		t.Fatal(err)
	}
	before := cs.lookups.Load()
	// A digit of the serial mistyped, a tail character mistyped, the check
	// character mistyped.
	typos := []string{
		canon[:8] + "9" + canon[9:],
		canon[:14] + string(other(canon[14])) + canon[15:],
		canon[:len(canon)-1] + string(other(canon[len(canon)-1])),
	}
	for _, typo := range typos {
		if typo == canon {
			t.Fatalf("typo %s is the code", typo)
		}
		wantReason(t, "validate "+typo, h.do("GET", "/v1/codes/"+typo, redeemToken, "", nil), 422, "invalid_code")
		r, _ := h.redeem(typo, "alice", nil)
		wantReason(t, "redeem "+typo, r, 422, "invalid_code")
	}
	if n := cs.lookups.Load() - before; n != 0 {
		t.Errorf("typos of serial codes reached the database %d times, want 0", n)
	}
	// A forged tail whose check character fits: only the key could tell, so
	// the database answers.
	forged := []byte(canon[:13] + string(other(canon[13])) + canon[14:])
	for _, c := range []byte(l.Charset() + "01") {
		forged[len(forged)-1] = c
		if shape, err := l.Check(string(forged)); shape && err == nil {
			break
		}
	}
	wantReason(t, "forged tail", h.do("GET", "/v1/codes/"+string(forged), redeemToken, "", nil), 404, "code_not_found")
	if n := cs.lookups.Load() - before; n != 1 {
		t.Errorf("the forged tail reached the database %d times, want 1", n)
	}
	r, _ := h.redeem(strings.ToLower(code), "alice", nil)
	if r.status != http.StatusCreated {
		t.Fatalf("redeem %s: %d %s", code, r.status, r.body)
	}
}

// other is a character of the alnum charset other than c.
func other(c byte) byte {
	if c == '7' {
		return '8'
	}
	return '7'
}
