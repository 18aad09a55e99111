package codes_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// The capacity advice names a length that the next request accepts: for
// many counts, charsets, start lengths and group sizes, a refused format
// whose length is too short carries MinLength N and says "at least N", and
// the same format with length N is accepted for the same count (once; it was
// "at least 5" for length 3 and 1,000 codes, then "at least 7" for 5).
func TestCapacityAdviceIsAccepted(t *testing.T) {
	charsets := []string{codes.PresetAlnum, codes.PresetNumeric, codes.PresetAlpha, "ABCDEFGH2345", "XY", "0123456789ABCDEF"}
	counts := []int64{1, 2, 999, 1000, 1001, 50_000, 1_000_000, 5_000_000, 10_000_000, 100_000_000}
	checked := 0
	for _, cs := range charsets {
		for _, count := range counts {
			for length := 1; length <= 12; length++ {
				for _, group := range []int{0, 4, 6} {
					for _, check := range []bool{true, false} {
						f := promo.Format{Charset: cs, Length: length, CheckChar: &check}
						if group > 0 {
							f.Separator, f.GroupSize = "-", group
						}
						name := fmt.Sprintf("%s/%d codes/length %d/group %d/check %v", cs, count, length, group, check)
						_, err := codes.CheckFormatFor(f, count, 0)
						if err == nil {
							continue
						}
						var e *promo.Error
						if !asError(err, &e) {
							t.Fatalf("%s: %v is not a *promo.Error", name, err)
						}
						if e.MinLength == 0 {
							if isLengthTooShort(e) && codes.ShortestLength(f, count, 0) > 0 {
								t.Errorf("%s: refused as too short without a minLength: %v", name, err)
							}
							continue
						}
						k := e.MinLength
						msg, _ := fieldMessage(e, codes.FieldLength)
						if want := fmt.Sprintf("at least %d", k); !strings.Contains(msg, want) {
							t.Errorf("%s: format.length says %q, want %q", name, msg, want)
						}
						if k <= length {
							t.Errorf("%s: advice %d is not longer than the refused length", name, k)
						}
						f.Length = k
						// Other faults of the format (no check character exists
						// for 2 characters) stay; length and count must not.
						if _, err := codes.CheckFormatFor(f, count, 0); err != nil {
							var e2 *promo.Error
							if !asError(err, &e2) {
								t.Fatalf("%s: %v is not a *promo.Error", name, err)
							}
							_, lengthBad := fieldMessage(e2, codes.FieldLength)
							_, countBad := fieldMessage(e2, codes.FieldCodeCount)
							if promo.Is(err, promo.ECapacity) || lengthBad || countBad {
								t.Errorf("%s: the advised length %d is refused too: %v", name, k, err)
							}
						}
						checked++
					}
				}
			}
		}
	}
	if checked < 500 {
		t.Errorf("only %d refusals with advice were checked; the table lost its teeth", checked)
	}
	t.Logf("%d refusals: each advised length was accepted", checked)
}

func TestCapacityAdviceThreeForOneThousand(t *testing.T) {
	_, err := codes.CheckFormatFor(promo.Format{Charset: "alnum", Length: 3}, 1000, 0)
	var e *promo.Error
	if !asError(err, &e) || e.MinLength != 7 {
		t.Fatalf("alnum length 3 for 1,000 codes: %v (minLength %d), want minLength 7", err, e.MinLength)
	}
}

func asError(err error, e **promo.Error) bool {
	pe, ok := err.(*promo.Error)
	*e = pe
	return ok
}

func fieldMessage(e *promo.Error, field string) (string, bool) {
	for _, f := range e.Fields {
		if f.Field == field {
			return f.Message, true
		}
	}
	return "", false
}

func isLengthTooShort(e *promo.Error) bool {
	msg, ok := fieldMessage(e, codes.FieldLength)
	return ok && (strings.Contains(msg, "too short") || strings.Contains(msg, "at least"))
}
