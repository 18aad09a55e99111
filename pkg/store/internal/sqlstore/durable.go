package sqlstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Syncer makes a connection's commits durable after they return: a write
// connection that commits without flushing (SQLite's writer at
// synchronous=NORMAL: the commit is in the WAL file, in the OS's cache) is
// followed, before anything it wrote is acknowledged, by Wait, which
// returns once a flush (fsync of the WAL) that started after the commit has
// completed. Concurrent waits share flushes, so one fsync covers every
// commit before it. A group commit takes a Ticket after its commit and
// waits for it on another goroutine: the writer goes on to the next group
// while the flush runs, instead of holding the database's one write lock
// through it (docs/store.md, "Group commit on SQLite").
//
// A failed flush fails every wait from then on: after a failed fsync
// the OS may have dropped the pages it could not write, and a later fsync
// can succeed without them, so nothing written since the last good flush
// can be called durable. The store must be reopened.
//
// Concurrency: safe for concurrent use.
type Syncer struct {
	flush func() error

	mu      sync.Mutex
	started uint64        // flushes started
	done    uint64        // the flushes completed: all those started before the running one
	running bool          // a flush is running
	wake    chan struct{} // closed when a flush completes
	err     error         // the first failed flush's error

	flushes atomic.Int64 // completed (Flushes)
}

// NewSyncer returns a Syncer whose flush makes every commit before it
// durable.
func NewSyncer(flush func() error) *Syncer {
	return &Syncer{flush: flush, wake: make(chan struct{})}
}

// Ticket names the flush that makes the commits before the call durable:
// the next one to start.
func (s *Syncer) Ticket() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started + 1
}

// Wait returns once the commits before the call are durable, or the flush's
// error (or ctx's: the commits may be durable or not).
func (s *Syncer) Wait(ctx context.Context) error { return s.WaitFor(ctx, s.Ticket()) }

// WaitFor returns once flush ticket (Ticket) has completed. With no flush
// running, the caller runs it.
func (s *Syncer) WaitFor(ctx context.Context, ticket uint64) error {
	s.mu.Lock()
	for {
		switch {
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return err
		case s.done >= ticket:
			s.mu.Unlock()
			return nil
		case !s.running:
			// Started now, after the commits that took ticket: it covers
			// them.
			s.running = true
			s.started++
			s.mu.Unlock()
			err := s.flush()
			s.mu.Lock()
			s.running = false
			s.done = s.started
			if err != nil && s.err == nil {
				s.err = fmt.Errorf("flush commits to disk (the store must be reopened): %w", err)
			}
			s.flushes.Add(1)
			close(s.wake)
			s.wake = make(chan struct{})
			continue
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("wait for the commit's flush to disk: %w", ctx.Err())
		}
		s.mu.Lock()
	}
}

// Flushes reports the flushes completed.
func (s *Syncer) Flushes() int64 { return s.flushes.Load() }
