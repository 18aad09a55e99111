package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/promocodes/promocodes/pkg/promo"
)

// duplicateKey finds the first object key that appears twice in the same
// JSON object of body, anywhere in it, and returns its path ("format.length").
// encoding/json keeps the last of duplicate keys silently, so a request such
// as {"codeCount":10,"codeCount":10000000} would be read in a way its sender
// may not mean (and other parsers keep the first). Malformed JSON gives "":
// decodeStrict reports it.
func duplicateKey(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object  bool
		keys    map[string]bool
		wantKey bool // in an object: the next string token is a key
		path    string
		key     string // the last key read, the path of the value being read
	}
	var stack []*frame
	child := func() string { // path of a value nested in the top frame
		if len(stack) == 0 {
			return ""
		}
		top := stack[len(stack)-1]
		if !top.object {
			return top.path
		}
		if top.path == "" {
			return top.key
		}
		return top.path + "." + top.key
	}
	valueDone := func() {
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, wantKey: true, path: child()})
			case '[':
				stack = append(stack, &frame{path: child()})
			case '}', ']':
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if top := len(stack) - 1; top >= 0 && stack[top].object && stack[top].wantKey {
				f := stack[top]
				if f.keys[t] {
					if f.path == "" {
						return t
					}
					return f.path + "." + t
				}
				f.keys[t], f.key, f.wantKey = true, t, false
				continue
			}
			valueDone()
		default:
			valueDone()
		}
		if len(stack) == 0 {
			return ""
		}
	}
}

// badText checks a free-text field (a name): valid UTF-8 without control
// characters (NUL, which PostgreSQL refuses in text, and the rest of C0, DEL,
// C1) or line and paragraph separators. It returns "" or what is wrong.
func badText(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	for i, r := range s {
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) {
			return fmt.Sprintf("must not contain control characters; found %U at byte %d", r, i)
		}
	}
	return ""
}

// duplicateKeyError is the problem for a body with a repeated key.
func duplicateKeyError(path string) error {
	return &promo.Error{Code: errMalformed, Message: "malformed JSON: duplicate key",
		Fields: []promo.FieldError{{Field: path, Message: "appears more than once in the same object"}}}
}
