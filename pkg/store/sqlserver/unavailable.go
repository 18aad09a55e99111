package sqlserver

import "github.com/promocodes/promocodes/pkg/store/internal/contract"

// Server error numbers that mean "not now" rather than "not this".
const (
	errCannotOpenDB    = 4060  // cannot open database (offline, restoring)
	errServiceBusy     = 40501 // the service is currently busy
	errDBUnavailable   = 40613 // database not currently available
	errServiceError    = 40197 // the service encountered an error processing the request (failover)
	errTooManySessions = 10928 // resource limit reached (sessions, workers)
)

// Unavailable reports whether err means SQL Server cannot serve the request
// now rather than that the request was wrong: it cannot be reached or the
// connection was lost or closed, the database is offline or failing over,
// out of sessions, or a lock wait ran out. The API answers these 503 with
// Retry-After, never 500.
func (s *Store) Unavailable(err error) bool {
	return hasErrorNumber(err, errLockTimeout, errCannotOpenDB, errServiceBusy, errDBUnavailable, errServiceError,
		errTooManySessions) || contract.ConnectionLost(err)
}
