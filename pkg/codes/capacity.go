package codes

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/promocodes/promocodes/pkg/promo"
)

// DefaultMaxDensity bounds issued/space, the chance that one guess hits an
// issued code.
const DefaultMaxDensity = 1e-6

// normDensity resolves the density default (0) and rejects nonsense.
func normDensity(d float64) (float64, error) {
	switch {
	case d == 0:
		return DefaultMaxDensity, nil
	case math.IsNaN(d) || d < 0 || d > 1:
		return 0, promo.Errorf(promo.EInvalid, "max density must be in (0, 1], got %g", d)
	}
	return d, nil
}

// SeqLimit is the number of sequence numbers that may ever be issued from a
// code space of the given size: ⌊space × maxDensity⌋, computed exactly. All
// promotions sharing a counter (a CounterName) share it; the store enforces it.
// maxDensity 0 means DefaultMaxDensity; an invalid one (negative, NaN, > 1)
// gives 0.
func SeqLimit(space uint64, maxDensity float64) uint64 {
	d, err := normDensity(maxDensity)
	if err != nil {
		return 0
	}
	// The density as the decimal it prints as: 1e-6 means one in a million,
	// not the binary float just below it.
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(d, 'g', -1, 64))
	if !ok {
		r = new(big.Rat).SetFloat64(d)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).SetUint64(space)))
	q := new(big.Int).Quo(r.Num(), r.Denom())
	return q.Uint64() // ≤ space, so it fits
}

// resolvedDensity is d with the default applied, for messages.
func resolvedDensity(d float64) float64 {
	if d == 0 {
		return DefaultMaxDensity
	}
	return d
}

// GuessProbability is the chance that one guess (a syntactically valid code
// picked without the key) is an issued code: issued/space.
func GuessProbability(issued, space uint64) float64 {
	if space == 0 {
		return 1
	}
	return float64(issued) / float64(space)
}

// charsetSize resolves a Format's charset to its size, or 0 if invalid.
func charsetSize(cs string) int {
	if p, ok := presets[cs]; ok {
		return len(p)
	}
	if cs == "" || checkCustomCharset(cs) != "" {
		return 0
	}
	return len(cs)
}

// ShortestLength is the shortest body length for f's charset whose space
// holds count codes within maxDensity (and is at least MinSpace). It returns 0
// when no length does (the count is too large for any space of at most
// MaxSpace codes) or when the charset is invalid.
//
// The length also keeps f's separator groups valid (groupSize below the
// body plus check character), so a request that only changes format.length
// to the answer is accepted.
//
// It is for the random style; a serial format has no length (0): see
// ShortestTail and FewestSerialDigits.
func ShortestLength(f promo.Format, count int64, maxDensity float64) int {
	n := uint64(charsetSize(f.Charset))
	if n == 0 || count < 0 || f.IsSerial() {
		return 0
	}
	k := minLength(n, MinSpace)
	if f.GroupSize > 0 {
		k = max(k, f.GroupSize+1-b2i(f.HasCheckChar()))
	}
	for ; k <= maxLength(n); k++ {
		if SeqLimit(pow(n, k), maxDensity) >= uint64(count) {
			return k
		}
	}
	return 0
}

// CheckFormatFor validates f for a promotion of count codes: the format
// errors of NewLayout and the capacity check of CheckCapacity, in one error.
// When the length is too short, for the space minimum or for the density,
// the format.length message names the shortest length that takes count codes
// ("use a length of at least N") and the error carries N as MinLength, so
// that advice never leads to a second refusal. count < 1 checks the format
// alone.
//
// It also holds new formats to a rule that stored ones predate: the
// separator may set a prefix or suffix off from the body ("WNTR-" before it,
// "-EU" after it) but may not stand inside one ("W-NTR"), where it would read
// as a group boundary of the body and vanish from the canonical form.
func CheckFormatFor(f promo.Format, count int64, maxDensity float64) (*Layout, error) {
	l, err := NewLayout(f)
	if err == nil && len(f.Separator) == 1 {
		var e promo.Error
		for _, a := range []struct {
			field, v, inner string
		}{
			{FieldPrefix, f.Prefix, strings.TrimSuffix(f.Prefix, f.Separator)},
			{FieldSuffix, f.Suffix, strings.TrimPrefix(f.Suffix, f.Separator)},
		} {
			if strings.Contains(a.inner, f.Separator) {
				e.Fields = append(e.Fields, promo.FieldError{Field: a.field, Message: fmt.Sprintf(
					"must not contain the separator %q except where it meets the body (%q is fine): codes "+
						"would seem to have another group", f.Separator, exampleAffix(a.field, a.v, f.Separator))})
			}
		}
		if len(e.Fields) > 0 {
			e.Code, e.Message = promo.EInvalid, "invalid code format"
			return nil, &e
		}
	}
	if err != nil {
		var e *promo.Error
		if !errors.As(err, &e) {
			return nil, err
		}
		k := 0
		if count >= 1 {
			k = ShortestLength(f, count, maxDensity)
		}
		t := 0
		if f.IsSerial() {
			t = ShortestTail(f, maxDensity) // whatever the count: the tail alone sets the guess probability
		}
		for i, fe := range e.Fields {
			switch {
			case fe.Field == FieldLength && f.Length >= 1 && f.Length < k && k > 0:
				e.Fields[i].Message = fmt.Sprintf("%d is too short for %d codes: use a length of at least %d",
					f.Length, count, k)
				e.MinLength = k
			case fe.Field == FieldTailLength && f.TailLength >= 1 && f.TailLength < t:
				e.Fields[i].Message = fmt.Sprintf("%d is too short for the density limit %g: use a tailLength "+
					"of at least %d", f.TailLength, resolvedDensity(maxDensity), t)
				e.MinTailLength = t
			}
		}
		return nil, e
	}
	if count < 1 {
		return l, nil
	}
	return l, l.CheckCapacity(count, maxDensity)
}

// CheckCapacity validates f and refuses a count of codes that would push
// issued/space above maxDensity (0 means DefaultMaxDensity). Format errors are
// EInvalid; too many codes is ECapacity on codeCount and format.length, telling
// the shortest length that fits. It looks at this count alone; the store
// enforces SeqLimit across all promotions that share the counter.
func CheckCapacity(f promo.Format, count int64, maxDensity float64) error {
	l, err := NewLayout(f)
	if err != nil {
		return err
	}
	return l.CheckCapacity(count, maxDensity)
}

// CheckCapacity is CheckCapacity for a compiled layout.
func (l *Layout) CheckCapacity(count int64, maxDensity float64) error {
	d, err := normDensity(maxDensity)
	if err != nil {
		return err
	}
	if count < 1 {
		return promo.FieldErrorf(FieldCodeCount, "must be at least 1, got %d", count)
	}
	if l.serial {
		return l.checkSerialCapacity(count, d)
	}
	limit := SeqLimit(l.space, d)
	if uint64(count) <= limit {
		return nil
	}
	e := &promo.Error{Code: promo.ECapacity, Message: "the code space is too small for this many codes",
		Fields: []promo.FieldError{{Field: FieldCodeCount, Message: fmt.Sprintf(
			"%d codes in %d possible ones would let one guess in %.3g hit a code; the limit is 1 in %.3g, "+
				"so this format takes at most %d codes", count, l.space, float64(l.space)/float64(count), 1/d, limit)}}}
	if k := ShortestLength(l.format, count, d); k > 0 {
		e.MinLength = k
		e.Fields = append(e.Fields, promo.FieldError{Field: FieldLength, Message: fmt.Sprintf(
			"use a length of at least %d for %d codes", k, count)})
	} else {
		e.Fields = append(e.Fields, promo.FieldError{Field: FieldLength, Message: fmt.Sprintf(
			"no length of this charset holds %d codes at density %g: use a larger charset or fewer codes",
			count, d)})
	}
	return e
}

// GuessProbability is the per-guess success probability once issued codes
// of this layout exist. For the serial style it is 1/TailSpace whatever the
// number issued: serials are visible and consecutive, so a guesser can pick
// an issued one and has only the tail to guess.
func (l *Layout) GuessProbability(issued uint64) float64 {
	if l.serial {
		if issued == 0 {
			return 0
		}
		return 1 / float64(l.tailSpace)
	}
	return GuessProbability(issued, l.space)
}

// SeqLimit is how many sequence numbers the layout's counter may hand out
// over all promotions at maxDensity (0 means DefaultMaxDensity): SeqLimit of
// the space for the random style; for the serial style every serial
// (Space) when the tail keeps a guess within maxDensity, else none.
func (l *Layout) SeqLimit(maxDensity float64) uint64 {
	if l.serial {
		if SeqLimit(l.tailSpace, maxDensity) < 1 {
			return 0
		}
		return l.space
	}
	return SeqLimit(l.space, maxDensity)
}

// exampleAffix is v without inner separators, set off from the body.
func exampleAffix(field, v, sep string) string {
	v = strings.ReplaceAll(v, sep, "")
	if field == FieldPrefix {
		return v + sep
	}
	return sep + v
}
