package api

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/promocodes/promocodes/pkg/promo"
)

// MaxJSONDepth is the deepest nesting of objects and arrays a request body
// may have: {"metadata":{"a":[1]}} nests 3 deep. Deeper bodies are refused
// with 422 at the first token past the limit, before anything else reads them.
const MaxJSONDepth = 32

// MaxJSONArray is the most elements one array of a request body may hold.
// No request needs more (segments: 50, a rule's countries: 250, and
// metadata is a small object), and the decoder that reads a body into its
// request allocates per element: 250,000 one-letter segments in a 1 MB
// body cost 27 MB to decode before the segment limit could refuse them.
// A longer array is refused with 422 at its first element past the limit.
const MaxJSONArray = 4096

// scanJSON reads one JSON value from r as it arrives, in time linear in its
// size and memory bounded by its longest token (the jsontext tokenizer keeps
// one frame per open level and builds no path unless it fails), and refuses
// what no handler should see: nesting deeper than MaxJSONDepth, an array of
// more than MaxJSONArray elements, a NUL (a raw
// byte or \u0000, which PostgreSQL refuses in text), invalid UTF-8 (raw
// bytes or an unpaired surrogate escape), all 422 naming the field; a name
// repeated in one object (encoding/json would keep the last silently, other
// parsers the first, so {"codeCount":10,"codeCount":10000000} could be read
// against its sender's intent) and any other syntax error, 400. A read error
// is returned as it is (wrapped); an empty body is errEmptyBody. prefix is
// the JSON path of the value within the request ("format.").
//
// A null is refused too (422, naming the field, as a value out of range is;
// once the whole body has scanned well, so the errors above come first)
// unless its JSON pointer is one of nullable ("/startsAt": PATCH clears a
// bound with it) or lies inside the top-level metadata object (free-form):
// encoding/json would read it as an absent field, which the document does
// not allow, so {"active": null} must not pass for a PATCH that changes
// nothing.
func scanJSON(r io.Reader, prefix string, nullable []string) error {
	dec := jsontext.NewDecoder(r)
	if dec.PeekKind() == 0 { // nothing but whitespace, or a read error
		if _, err := dec.ReadToken(); err != io.EOF {
			return scanError(prefix, err)
		}
		return &promo.Error{Code: errEmptyBody}
	}
	var (
		metadata bool  // the top-level member being read is metadata
		nullErr  error // the first null where none may stand
	)
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return scanError(prefix, err)
		}
		if dec.StackDepth() > MaxJSONDepth {
			return promo.FieldErrorf(jsonField(prefix, dec.StackPointer()),
				"nests deeper than %d levels of objects and arrays", MaxJSONDepth)
		}
		if kind, n := dec.StackIndex(dec.StackDepth()); kind == '[' && n > MaxJSONArray {
			p := dec.StackPointer()
			return promo.FieldErrorf(jsonField(prefix, p[:strings.LastIndexByte(string(p), '/')]),
				"holds more than %d elements", MaxJSONArray)
		}
		switch tok.Kind() {
		case '"':
			str := tok.String()
			if strings.IndexByte(str, 0) >= 0 {
				return promo.FieldErrorf(jsonField(prefix, dec.StackPointer()), "must not contain NUL characters")
			}
			if dec.StackDepth() == 1 {
				if kind, n := dec.StackIndex(1); kind == '{' && n%2 == 1 { // a name
					metadata = str == "metadata"
				}
			}
		case 'n':
			if nullErr == nil && (dec.StackDepth() < 2 || !metadata) {
				if p := dec.StackPointer(); !slices.Contains(nullable, string(p)) {
					nullErr = &promo.Error{Code: promo.EInvalid,
						Message: "invalid request: null is not a value of this field (leave the field out instead)",
						Fields:  []promo.FieldError{{Field: fieldOrBody(jsonField(prefix, p)), Message: "must not be null"}}}
				}
			}
		}
		if dec.StackDepth() == 0 { // the one value is complete: only whitespace may follow
			if _, err := dec.ReadToken(); err != io.EOF {
				if isReadError(err) {
					return err
				}
				return &promo.Error{Code: errMalformed, Message: "malformed JSON: trailing data after the JSON value"}
			}
			return nullErr
		}
	}
}

// errEmptyBody marks a body with no JSON value at all.
const errEmptyBody promo.ErrorCode = "empty_body"

// isReadError reports whether err came from reading the body, not from its
// contents.
func isReadError(err error) bool {
	var se *jsontext.SyntacticError
	return err != nil && err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &se)
}

// scanError turns the tokenizer's error into the problem the caller sees.
func scanError(prefix string, err error) error {
	if isReadError(err) {
		return fmt.Errorf("read the request body: %w", err)
	}
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) {
		return &promo.Error{Code: errMalformed, Message: "malformed JSON: unexpected end of the body"}
	}
	field := fieldOrBody(jsonField(prefix, se.JSONPointer))
	msg := se.Err.Error()
	switch {
	case se.Err == jsontext.ErrDuplicateName:
		return duplicateKeyError(jsonField(prefix, se.JSONPointer))
	case strings.Contains(msg, `'\x00'`):
		return &promo.Error{Code: promo.EInvalid, Message: "invalid request: the body holds a NUL byte",
			Fields: []promo.FieldError{{Field: field, Message: "must not contain NUL characters"}}}
	case strings.Contains(msg, "UTF-8") || strings.Contains(msg, "surrogate"):
		return &promo.Error{Code: promo.EInvalid, Message: "invalid request: the body is not valid UTF-8",
			Fields: []promo.FieldError{{Field: field, Message: "must be valid UTF-8"}}}
	}
	return &promo.Error{Code: errMalformed, Message: "malformed JSON: " + strings.TrimPrefix(se.Error(), "jsontext: ")}
}

// jsonField turns a JSON pointer (/format/length) into the dotted field name
// problem documents use (format.length), after prefix.
func jsonField(prefix string, p jsontext.Pointer) string {
	var b strings.Builder
	b.WriteString(prefix)
	for tok := range p.Tokens() {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), ".") {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return strings.TrimSuffix(b.String(), ".")
}

func fieldOrBody(field string) string {
	if field == "" {
		return "body"
	}
	return field
}

// duplicateKeyError is the problem for a body with a repeated key.
func duplicateKeyError(path string) error {
	return &promo.Error{Code: errMalformed, Message: "malformed JSON: duplicate key",
		Fields: []promo.FieldError{{Field: path, Message: "appears more than once in the same object"}}}
}
