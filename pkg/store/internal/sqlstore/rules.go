package sqlstore

// The rules every store applies the same way, whatever its SQL: the domain
// errors of the store contract and the bounds of its pages. What a request
// must hold is checked by its promo type's Validate.

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/promocodes/promocodes/pkg/promo"
)

// maxReplaceRounds bounds the collision replacement loop of a chunk commit:
// a real code space needs one round almost always, so hitting the bound
// means a broken Replace (say, one that renders the same code for every seq).
const maxReplaceRounds = 64

// checkReservation returns the ECapacity error when reserving n numbers at
// start would move the counter past limit, nil otherwise.
func checkReservation(start, n int64, limit uint64) error {
	if start >= 0 && uint64(start)+uint64(n) <= limit {
		return nil
	}
	var left uint64
	if start >= 0 && uint64(start) < limit {
		left = limit - uint64(start)
	}
	return &promo.Error{Code: promo.ECapacity, Message: "the code format's space is exhausted",
		Fields: []promo.FieldError{{Field: "codeCount",
			Message: fmt.Sprintf("this format can issue only %d more codes, %d requested", left, n)}}}
}

// idempotencyConflict is the error for a reused Idempotency-Key.
func idempotencyConflict() error {
	return &promo.Error{Code: promo.EConflict, Reason: promo.ReasonIdempotencyConflict, Message: "idempotency key reused",
		Fields: []promo.FieldError{{Field: "Idempotency-Key",
			Message: "already used for a different request"}}}
}

// promotionNotFound is the error for an unknown promotion id.
func promotionNotFound(id int64) error {
	return promo.Errorf(promo.ENotFound, "no promotion %d", id)
}

// batchNotFound is the error for an unknown batch of a known promotion.
func batchNotFound(ref promo.BatchRef) error {
	return promo.Errorf(promo.ENotFound, "no batch %d/%d", ref.PromotionID, ref.BatchNo)
}

// codeNotFound is the error for an unknown code (reason code_not_found).
func codeNotFound() error { return promo.Refusal(promo.ReasonCodeNotFound, "no such code") }

// truncateError makes s valid UTF-8 (PostgreSQL rejects anything else) and
// cuts it to at most promo.MaxErrorHeader bytes, on a rune boundary.
func truncateError(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= promo.MaxErrorHeader {
		return s
	}
	s = s[:promo.MaxErrorHeader]
	for i := 0; i < utf8.UTFMax && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}

// defaultPendingLimit is PendingBatches' limit when the caller passes 0 or less.
const defaultPendingLimit = 100

// clampLimit is n, or def when n is 0 or less, at most max.
func clampLimit(n, def, max int) int {
	if n <= 0 {
		return def
	}
	return min(n, max)
}

// activeFilter encodes ListFilter.Active for the list queries: 0 any, 1
// active only, 2 inactive only (one integer parameter in every dialect).
func activeFilter(a *bool) int {
	switch {
	case a == nil:
		return 0
	case *a:
		return 1
	}
	return 2
}

// defaultRollupBatch bounds one rollup transaction when the caller passes 0.
const defaultRollupBatch = 1000

// reservationNotFound is the error of an unknown reservation id.
func reservationNotFound(id string) error {
	return promo.Refusal(promo.ReasonReservationNotFound, "no reservation %q", id)
}

// promotionDeleted refuses a change to a promotion being deleted.
func promotionDeleted(id int64) error {
	return promo.Refusal(promo.ReasonPromotionDeleted,
		"promotion %d is deleted (its deletion was requested): it takes no change", id)
}

// pageLimit is an audit page's size: 100 for 0 or less, at most 1,000.
func pageLimit(n int) int { return clampLimit(n, 100, 1000) }
