// Package wire holds the JSON bodies of the Promotion API: the requests it
// takes and the answers it gives, as api/openapi.yaml (the published
// contract) describes them. The API decodes and encodes these types, and
// the typed client (pkg/client) sends and reads the same ones, so that a
// body's shape is written down once. It imports only the domain (pkg/promo)
// and the standard library, and keeps no state.
//
// Field order is the order of the bytes on the wire: where an answer was
// first written as a map, its fields stand in the order of their JSON names.
// A request field the API checks as it was sent (a count that must not be
// a string, a time that must name its field when it is not one) is kept raw
// (json.RawMessage); RawOf makes one from a value.
package wire

import (
	"encoding/json"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Problem is an error answer (RFC 9457, application/problem+json) with
// per-field detail.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Reason is the stable machine-readable reason of a refused code
	// operation (code_exhausted, expired, ...).
	Reason string `json:"reason,omitempty"`
	// Rule names the eligibility rule of a not_eligible refusal
	// (segments, countries, firstOrderOnly, minOrderAmount).
	Rule   string             `json:"rule,omitempty"`
	Errors []promo.FieldError `json:"errors,omitempty"`
	// MinLength is the shortest format.length that takes the requested
	// count, on a 422 whose format is too short (the "at least N" of the
	// format.length message).
	MinLength int `json:"minLength,omitempty"`
	// MinTailLength and MinSerialDigits are the same advice for a serial
	// format: the shortest format.tailLength for the density limit, the
	// fewest format.serialDigits for the count.
	MinTailLength   int `json:"minTailLength,omitempty"`
	MinSerialDigits int `json:"minSerialDigits,omitempty"`
}

// RawOf is *v as a raw request field; nil leaves the field out.
func RawOf[T any](v *T) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("wire: " + err.Error()) // the domain's values all encode
	}
	return b
}

// Null is a raw field that clears a setting (PATCH startsAt: null).
var Null = json.RawMessage("null")
