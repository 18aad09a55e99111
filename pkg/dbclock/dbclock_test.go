package dbclock

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

type sourceFunc func(ctx context.Context) (time.Time, error)

func (f sourceFunc) Now(ctx context.Context) (time.Time, error) { return f(ctx) }

// A host two hours off, either way, reads the database's time.
func TestClockFollowsTheDatabase(t *testing.T) {
	for _, skew := range []time.Duration{2 * time.Hour, -2 * time.Hour} {
		db := sourceFunc(func(context.Context) (time.Time, error) { return time.Now(), nil })
		c := New(db, func() time.Time { return time.Now().Add(skew) }, zaptest.NewLogger(t))
		if got := c.Now().Sub(time.Now()); got < skew-time.Second || got > skew+time.Second {
			t.Fatalf("before a sync: %v off, want the host's %v", got, skew)
		}
		if err := c.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		if off := c.Offset(); off < skew-time.Second || off > skew+time.Second {
			t.Errorf("offset %v, want about %v", off, skew)
		}
		time.Sleep(20 * time.Millisecond)
		if got := c.Now().Sub(time.Now()); got < -50*time.Millisecond || got > 50*time.Millisecond {
			t.Errorf("host %v: reading %v off the database's clock", skew, got)
		}
	}
}

func TestFailedSyncKeepsTheLastReading(t *testing.T) {
	fail := false
	db := sourceFunc(func(context.Context) (time.Time, error) {
		if fail {
			return time.Time{}, errors.New("database down")
		}
		return time.Now().Add(-time.Hour), nil
	})
	c := New(db, nil, zaptest.NewLogger(t))
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	fail = true
	if err := c.Sync(context.Background()); err == nil {
		t.Fatal("a failed read synced")
	}
	if got := time.Since(c.Now()); got < time.Hour-time.Second || got > time.Hour+time.Second {
		t.Errorf("after a failed sync the clock reads %v behind, want the database's hour", got)
	}
}
