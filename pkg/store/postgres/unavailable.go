package postgres

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// Unavailable reports whether err means PostgreSQL cannot serve the request
// now rather than that the request was wrong: it cannot be reached or the
// connection was lost (a connect error, a reset or closed connection, the
// pool closed), the server is shutting down, starting or out of connections
// (SQLSTATE 57P01-57P03, 53300, class 08), or a server-side bound ended the
// statement or session (57014 statement_timeout, 55P03 lock_timeout, 25P03
// idle_in_transaction_session_timeout). The API answers these 503 with
// Retry-After, never 500.
func (s *Store) Unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "53300", "57014", "55P03", "25P03":
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, puddle.ErrClosedPool) ||
		contract.ConnectionLost(err)
}
