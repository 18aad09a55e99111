package sqlite

import (
	"errors"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// Unavailable reports whether err means the database cannot serve the
// request now rather than that the request was wrong: the store is closed
// (shutdown), its file cannot be opened or read or written (SQLITE_CANTOPEN,
// SQLITE_IOERR), or its lock stayed taken past the busy timeout
// (SQLITE_BUSY, SQLITE_LOCKED). The API answers these 503 with Retry-After,
// never 500.
func (s *Store) Unavailable(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) {
		switch e.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
			return true
		}
	}
	return contract.ConnectionLost(err)
}
