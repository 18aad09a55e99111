package sqlite

// SingleWriter says that one write lock covers the whole database
// (storetest.SingleWriter).
func (s *Store) SingleWriter() bool { return true }

// GroupStats reports the redemption groups written, their members, the
// redemptions waiting for one, and whether one is being written.
func (s *Store) GroupStats() (groups, members int64, pending int, busy bool) {
	st := s.group.Stats()
	return st.Groups, st.Members, st.Pending, st.Inflight > 0
}

// GroupStatements reports the savepoints the redemption groups took and the
// statements they ran.
func (s *Store) GroupStatements() (savepoints, statements int64) {
	st := s.group.Stats()
	return st.Savepoints, st.Statements
}

// GroupInserts reports the multi-row inserts of the groups' audit rows and
// events.
func (s *Store) GroupInserts() int64 { return s.group.Stats().Inserts }

// HoldFlushes makes the store's WAL flushes wait: each one, as it begins,
// sends on flushing and waits for release (closed: no more waiting).
func (s *Store) HoldFlushes() (flushing <-chan struct{}, release func()) {
	began, gate := make(chan struct{}, 1024), make(chan struct{})
	s.wal.mu.Lock()
	s.wal.before = func() {
		began <- struct{}{}
		<-gate
	}
	s.wal.mu.Unlock()
	return began, func() { close(gate) }
}

// Flushes reports the WAL flushes done.
func (s *Store) Flushes() int64 { return s.sync.Flushes() }

// FailFlushes makes the store's WAL flushes fail with err from now on (nil:
// flush again); it can be called while a flush is held (HoldFlushes).
func (s *Store) FailFlushes(err error) {
	if err == nil {
		s.wal.fail.Store(nil)
		return
	}
	s.wal.fail.Store(&err)
}

// RawDB opens path with a connection pool of the test's own (rawDB).
var RawDB = rawDB
