// Package configkey names configuration errors by their key. Each component
// validates its own Config once, naming its own fields ("workers",
// "db.lockTimeout"); the wiring that builds the component's Config from the
// whole configuration places those keys there ("generator.workers",
// "generator.db.lockTimeout"), so that one rule lives in one place and every
// message still names the key an operator sets. It keeps no state.
package configkey

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Error is one refused setting. Key is its path within the Config that
// refused it.
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string { return e.Key + ": " + e.Msg }

// Errorf returns the *Error of key.
func Errorf(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// List collects the errors of one Validate.
type List []error

// Add records that key is refused.
func (l *List) Add(key, format string, args ...any) { *l = append(*l, Errorf(key, format, args...)) }

// Join records every error of err (a joined error counts as several).
func (l *List) Join(err error) { *l = append(*l, Split(err)...) }

// NotNegative refuses each duration that is negative, in key order.
func (l *List) NotNegative(durations map[string]time.Duration) {
	for _, key := range slices.Sorted(maps.Keys(durations)) {
		if d := durations[key]; d < 0 {
			l.Add(key, "must not be negative, got %s", d)
		}
	}
}

// Set refuses each value that is empty, in key order.
func (l *List) Set(values map[string]string) {
	for _, key := range slices.Sorted(maps.Keys(values)) {
		if values[key] == "" {
			l.Add(key, "must be set")
		}
	}
}

// Err is every recorded error joined, or nil.
func (l List) Err() error { return errors.Join(l...) }

// Split is the errors a joined error holds (err itself otherwise; none for
// nil).
func Split(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Split(e)...)
		}
		return out
	}
	return []error{err}
}

// Place puts the keys of err (one Config's Validate) where they are in the
// whole configuration: a key listed in moved becomes what it maps to, any
// other key gets prefix + "." in front ("" leaves it). An error without a
// key is kept, under prefix.
func Place(err error, prefix string, moved map[string]string) error {
	var out List
	for _, e := range Split(err) {
		var ke *Error
		switch {
		case errors.As(e, &ke):
			key, ok := moved[ke.Key]
			if !ok {
				key = join(prefix, ke.Key)
			}
			out = append(out, &Error{Key: key, Msg: ke.Msg})
		case prefix != "":
			out = append(out, fmt.Errorf("%s: %w", prefix, e))
		default:
			out = append(out, e)
		}
	}
	return out.Err()
}

// Prefix is Place without moved keys.
func Prefix(prefix string, err error) error { return Place(err, prefix, nil) }

// Unique drops the errors whose message repeats an earlier one (two
// components that read one key, such as codes.secret, refuse it alike).
func Unique(err error) error {
	var out List
	seen := map[string]bool{}
	for _, e := range Split(err) {
		if msg := e.Error(); !seen[msg] {
			seen[msg] = true
			out = append(out, e)
		}
	}
	return out.Err()
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	if key == "" {
		return prefix
	}
	return prefix + "." + strings.TrimPrefix(key, ".")
}
