package sqlstore

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// Unavailable reports whether err means the database cannot serve the
// request now rather than that the request was wrong: the dialect's
// classifier (a server shutting down, out of connections, a lock or
// statement bound, a busy file), or a lost connection. The API answers these
// 503 with Retry-After, never 500.
func (s *Core[T]) Unavailable(err error) bool {
	return err != nil && (s.d.Unavailable(err) || connectionLost(err))
}

// LockTimeout reports whether err is a lock wait that ran out of the
// dialect's lock timeout: whoever holds the lock is still at it, or frozen.
func (s *Core[T]) LockTimeout(err error) bool { return err != nil && s.d.LockTimeout(err) }

// connectionLost reports whether err says the database could not be reached
// or the connection to it was lost or closed (refused, reset, broken pipe, a
// network error, an unexpected end of stream, a pool closed by shutdown):
// what no driver owns. Such a request was not wrong; it may succeed when
// retried.
func connectionLost(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) ||
		strings.Contains(err.Error(), "sql: database is closed") // database/sql's unexported errDBClosed
}
