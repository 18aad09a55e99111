package contract

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// ConnectionLost reports whether err says the database could not be reached
// or the connection to it was lost or closed (refused, reset, broken pipe, a
// network error, an unexpected end of stream, a pool closed by shutdown):
// the part of each store's Unavailable that no driver owns. Such a request
// was not wrong; it may succeed when retried.
func ConnectionLost(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) ||
		strings.Contains(err.Error(), "sql: database is closed") // database/sql's unexported errDBClosed
}
