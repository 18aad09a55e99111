package promo

import (
	"errors"
	"fmt"
	"strings"
)

// ErrorCode classifies a domain error. One function in the API maps codes to
// HTTP statuses; the generator uses them to tell a poison event (park it) from
// a transient fault (retry it).
type ErrorCode string

const (
	EInvalid      ErrorCode = "invalid"        // bad input: 422 (400 for malformed requests)
	ENotFound     ErrorCode = "not_found"      // 404
	EConflict     ErrorCode = "conflict"       // 409: idempotency-key reuse, existing vanity code, used-up code
	EGone         ErrorCode = "gone"           // 410: expired promotion
	ECapacity     ErrorCode = "capacity"       // 422: the format's code space cannot take the requested count
	EUnauthorized ErrorCode = "unauthorized"   // 401
	EForbidden    ErrorCode = "forbidden"      // 403
	ETooLarge     ErrorCode = "too_large"      // 413
	EMoved        ErrorCode = "progress_moved" // a chunk commit lost a race: another worker advanced the batch
	ERateLimited  ErrorCode = "rate_limited"   // 429: too many failed look-ups from one client
	EInternal     ErrorCode = "internal"       // 500
)

// FieldError names one offending input field, in the JSON path of the request
// ("format.length", "codeCount").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the domain error. Message is safe to show to the caller; it never
// holds secrets or DSNs.
type Error struct {
	Code    ErrorCode
	Message string
	Fields  []FieldError
	// MinLength, on a format whose length cannot hold the requested count,
	// is the shortest format.length that does (the problem's minLength).
	MinLength int
	// MinTailLength and MinSerialDigits are the same advice for a serial
	// format: the shortest format.tailLength that keeps a guess within the
	// density limit, the fewest format.serialDigits that number the count.
	MinTailLength   int
	MinSerialDigits int
	// Reason is the stable machine-readable reason of a refused code
	// operation (redemption, validation); "" for other errors.
	Reason Reason
	// Rule names the eligibility rule a not_eligible refusal failed.
	Rule string
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	parts := make([]string, 0, len(e.Fields))
	for _, f := range e.Fields {
		parts = append(parts, f.Field+": "+f.Message)
	}
	if e.Message == "" {
		return strings.Join(parts, "; ")
	}
	return e.Message + ": " + strings.Join(parts, "; ")
}

// Errorf builds an *Error with a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf builds an invalid-input *Error naming one field.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Message: "invalid request",
		Fields: []FieldError{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// Code returns the ErrorCode of err, or EInternal when err is not (and does
// not wrap) an *Error. A nil err has no code ("").
func Code(err error) ErrorCode {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// Is reports whether err carries the given code.
func Is(err error, code ErrorCode) bool { return err != nil && Code(err) == code }

// Refusal builds the error for a code operation refused for reason, with the
// ErrorCode (and so the HTTP status) that reason has.
func Refusal(reason Reason, format string, args ...any) *Error {
	return &Error{Code: reason.ErrorCode(), Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the refusal reason err carries, or "".
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
