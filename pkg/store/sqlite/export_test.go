package sqlite

// SingleWriter says that one write lock covers the whole database
// (storetest.SingleWriter).
func (s *Store) SingleWriter() bool { return true }
