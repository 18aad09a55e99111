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
