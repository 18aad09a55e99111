// Package dbclock gives a process the database's clock without a round trip
// per reading. Times that several processes compare — a reservation's
// expiry written by one API replica and counted by another, a promotion's
// window, the sweeper's retention — must come from one clock, and the
// database's is the one every replica shares: a replica whose own clock is
// two hours off would otherwise hold uses for hours or count others'
// reservations as expired and redeem past a code's limit.
//
// A Clock reads the database's time (Source.Now) at Sync and then advances
// it by this process's monotonic clock, so a step of the host's wall clock
// changes nothing; Run syncs again every Interval to follow the slow drift
// of the two oscillators. The error of a reading is half the round trip of
// the last sync plus the drift since (milliseconds).
//
// Concurrency: Now and Offset may be called from any goroutine; Sync and
// Run from one.
package dbclock

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Source reads the database's clock (each store's Now).
type Source interface {
	Now(ctx context.Context) (time.Time, error)
}

// Interval is how often Run syncs.
const Interval = time.Minute

// Clock is the database's clock as this process keeps it. Build it with New.
type Clock struct {
	src   Source
	local func() time.Time
	log   *zap.Logger

	mu     sync.Mutex
	synced bool
	db     time.Time // the database's time at local reading at
	at     time.Time // the local reading, with its monotonic part
}

// New returns a Clock on src. local is this host's clock (nil: time.Now);
// only the time elapsed on it is used once synced. Until the first Sync
// succeeds the Clock reads local.
func New(src Source, local func() time.Time, log *zap.Logger) *Clock {
	if local == nil {
		local = time.Now
	}
	return &Clock{src: src, local: local, log: log}
}

// Now is the database's time now.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced {
		return c.local()
	}
	return c.db.Add(c.local().Sub(c.at))
}

// Offset is how far this host's clock is ahead of the database's (negative:
// behind), as of the last sync; zero before it.
func (c *Clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced {
		return 0
	}
	return c.at.Round(0).Sub(c.db)
}

// Sync reads the database's clock once. The reading is taken to be from the
// middle of the round trip.
func (c *Clock) Sync(ctx context.Context) error {
	t0 := c.local()
	db, err := c.src.Now(ctx)
	if err != nil {
		return err
	}
	t1 := c.local()
	c.mu.Lock()
	c.db, c.at, c.synced = db.Add(t1.Sub(t0)/2), t1, true
	c.mu.Unlock()
	return nil
}

// Run syncs every Interval until ctx ends; a failed sync keeps the last
// reading (the monotonic clock carries it) and is retried at the next tick.
// It logs when the host's clock is off by more than a second, and again
// whenever that changes by more than a second.
func (c *Clock) Run(ctx context.Context) error {
	var logged time.Duration // the offset last logged; none logged while within a second of 0
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.Sync(sctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			c.log.Debug("reading the database clock failed; keeping the last reading", zap.Error(err))
		default:
			if off := c.Offset(); off-logged > time.Second || logged-off > time.Second {
				c.log.Warn("this host's clock differs from the database's; times are taken from the database",
					zap.Duration("host_ahead_by", off.Round(time.Millisecond)))
				logged = off
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
