package api_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// anyCode returns one code of a set, the smallest for a stable test.
func anyCode(t *testing.T, set map[string]bool) string {
	t.Helper()
	best := ""
	for c := range set {
		if best == "" || c < best {
			best = c
		}
	}
	if best == "" {
		t.Fatal("no code generated")
	}
	return best
}

// TestVanityCodesShareTheCanonicalForm: one typed string names at most one
// code, generated or vanity. A vanity code that is a generated code with
// separators is refused (naming the canonical form); one equal to a generated
// code in another case conflicts, including the codes of a lower-case custom
// charset, which are stored upper-case.
func TestVanityCodesShareTheCanonicalForm(t *testing.T) {
	e := newEnv(t, envConfig{Open: true, BatchCodeCount: 100}, nil)
	ctx := context.Background()

	// Generated alnum codes, displayed as 222M-5H4H-JVD, stored 222M5H4HJVD.
	g := e.create(`{"name":"plain","codeCount":20,"format":{"charset":"alnum","length":10,"separator":"-","groupSize":4}}`)
	generated := anyCode(t, generate(t, e, g.ID, testSecret, 20))
	layout, err := codes.NewLayout(promo.Format{Charset: "alnum", Length: 10, Separator: "-", GroupSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	display := layout.Display(generated)
	if !strings.Contains(display, "-") || strings.Contains(generated, "-") {
		t.Fatalf("generated %q, display %q", generated, display)
	}

	// Lower-case custom charset: displayed 22b4d96hc4d, stored 22B4D96HC4D.
	lc := e.create(`{"name":"lower","codeCount":20,"format":{"charset":"23456789bcdfghjkmnpqrstvwxz","length":10}}`)
	lower := anyCode(t, generate(t, e, lc.ID, testSecret, 20))
	if strings.ToUpper(lower) != lower {
		t.Fatalf("generated code %q of a lower-case charset is not stored upper-case", lower)
	}
	if info, err := e.store.GetCode(ctx, lower); err != nil || info.PromotionID == 0 {
		t.Fatalf("GetCode(%q) = %+v, %v", lower, info, err)
	}
	r := e.do(http.MethodGet, "/v1/promotions/"+lc.ID+"/codes", "", nil)
	recs, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil || len(recs) != 21 {
		t.Fatalf("export: %d rows, %v", len(recs), err)
	}
	for _, rec := range recs[1:] {
		if rec[0] != strings.ToLower(rec[0]) {
			t.Errorf("export shows %q, want the charset's lower case", rec[0])
		}
	}
	before := e.rows()

	for _, tc := range []struct {
		name, code string
		status     int
		detail     string
	}{
		{"generated with its separators", display, 422, `"` + generated + `"`},
		{"generated with other separators", strings.ReplaceAll(display, "-", "."), 422, "canonical form"},
		{"generated with an inner space", generated[:4] + " " + generated[4:], 422, `"` + generated + `"`},
		{"generated", generated, 409, ""},
		{"generated in lower case", strings.ToLower(generated), 409, ""},
		{"lower-case charset, upper case", lower, 409, ""},
		{"lower-case charset, as displayed", strings.ToLower(lower), 409, ""},
		{"lower-case charset, with a separator", strings.ToLower(lower[:5]) + "_" + strings.ToLower(lower[5:]), 422, lower},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(`{"name":"vanity","code":"`+tc.code+`"}`, nil)
			wantProblem(t, r, tc.status, "code")
			if tc.detail != "" && !strings.Contains(string(r.body), strings.ReplaceAll(tc.detail, `"`, `\"`)) {
				t.Errorf("problem does not name %s: %s", tc.detail, r.body)
			}
			if got := e.rows(); got != before {
				t.Errorf("a refused vanity code wrote: %+v, before %+v", got, before)
			}
		})
	}

	// Lower case is accepted and folded; the stored code is canonical.
	v := e.create(`{"name":"vanity","code":" MegaDeth21 "}`)
	if st := e.status(v.ID); st.Code != "MEGADETH21" {
		t.Errorf("vanity stored as %q, want MEGADETH21", st.Code)
	}
	if _, err := e.store.GetCode(ctx, "MEGADETH21"); err != nil {
		t.Errorf("GetCode(MEGADETH21): %v", err)
	}
}

// TestExportOfAFormatRefusedSinceCreation: a promotion stored with a format
// that is refused now (a case-sensitive charset, accepted before canonical
// codes) still exports, its codes in canonical form.
func TestExportOfAFormatRefusedSinceCreation(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	ctx := context.Background()
	check := false
	f := promo.Format{Charset: "abcdefghABCDEFGH", Length: 8, CheckChar: &check}
	p, _, err := e.store.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "old",
		Kind: promo.KindGenerated, CodeCount: 2, Format: &f, MaxUsagePerCode: 1, PerUserLimit: 1,
		CounterName: `codes/v1:"abcdefghABCDEFGH":8:"":"":nocheck`}, BatchSize: 10, SeqLimit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CommitChunk(ctx, promo.Chunk{Batch: promo.BatchRef{PromotionID: p.ID}, Count: 2,
		Codes: []byte("AABBCCDDHHGGFFEE"), CodeLen: 8, CounterName: p.CounterName}); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodGet, "/v1/promotions/"+p.IDString()+"/codes", "", nil)
	if r.StatusCode != http.StatusOK || string(r.body) != "code\nAABBCCDD\nHHGGFFEE\n" {
		t.Errorf("export = %d %q, want the two canonical codes", r.StatusCode, r.body)
	}
}
