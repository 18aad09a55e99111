package configkey

import (
	"errors"
	"testing"
	"time"
)

func TestPlaceMovesAndPrefixesKeys(t *testing.T) {
	var l List
	l.Add("workers", "must be in 1..256, got %d", 0)
	l.Add("secret", "too short")
	l.NotNegative(map[string]time.Duration{"b": -time.Second, "a": -time.Second, "ok": time.Second})
	l.Set(map[string]string{"errorTopic": "", "deadTopic": "d"})
	l.Join(errors.New("no key"))
	got := Place(l.Err(), "generator", map[string]string{"secret": "codes.secret", "errorTopic": "kafka.topics.error"}).Error()
	want := "generator.workers: must be in 1..256, got 0\n" +
		"codes.secret: too short\n" +
		"generator.a: must not be negative, got -1s\n" +
		"generator.b: must not be negative, got -1s\n" +
		"kafka.topics.error: must be set\n" +
		"generator: no key"
	if got != want {
		t.Errorf("Place:\n%s\nwant:\n%s", got, want)
	}
	if Place(nil, "x", nil) != nil || Prefix("x", nil) != nil {
		t.Error("Place of nil is not nil")
	}
}

func TestUniqueKeepsTheFirstOfEachMessage(t *testing.T) {
	a := Prefix("codes", Errorf("secret", "too short"))
	b := Place(Errorf("secret", "too short"), "generator", map[string]string{"secret": "codes.secret"})
	got := Unique(errors.Join(a, b, Errorf("x", "y")))
	if n := len(Split(got)); n != 2 || got.Error() != "codes.secret: too short\nx: y" {
		t.Errorf("Unique = %q (%d errors), want codes.secret once and x", got, n)
	}
	var ke *Error
	if !errors.As(Split(got)[0], &ke) || ke.Key != "codes.secret" {
		t.Errorf("the placed error is not an *Error with its full key: %#v", Split(got)[0])
	}
}
