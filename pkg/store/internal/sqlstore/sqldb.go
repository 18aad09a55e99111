package sqlstore

import (
	"context"
	"database/sql"
)

// SQLDB is the database/sql executor: a pool whose transactions begin with
// Opts (SQLite's write pool takes BEGIN IMMEDIATE from its DSN).
type SQLDB struct {
	sqlQuerier
	db   *sql.DB
	opts *sql.TxOptions
}

// NewSQLDB returns the executor of db.
func NewSQLDB(db *sql.DB, opts *sql.TxOptions) SQLDB {
	return SQLDB{sqlQuerier: sqlQuerier{db}, db: db, opts: opts}
}

// Ping checks that the pool reaches the database.
func (d SQLDB) Ping(ctx context.Context) error { return d.db.PingContext(ctx) }

// Begin begins a transaction.
func (d SQLDB) Begin(ctx context.Context) (*SQLTx, error) {
	tx, err := d.db.BeginTx(ctx, d.opts)
	if err != nil {
		return nil, err
	}
	return &SQLTx{sqlQuerier: sqlQuerier{tx}, Tx: tx}, nil
}

// SQLTx is a database/sql transaction; bulk paths use Tx directly.
type SQLTx struct {
	sqlQuerier
	Tx *sql.Tx
}

// Commit commits the transaction.
func (t *SQLTx) Commit(context.Context) error { return t.Tx.Commit() }

// Rollback rolls it back (a no-op after Commit).
func (t *SQLTx) Rollback(context.Context) error { return t.Tx.Rollback() }

// sqlQuerier adapts *sql.DB and *sql.Tx to Querier.
type sqlQuerier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (q sqlQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	rows, err := q.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q sqlQuerier) QueryRow(ctx context.Context, query string, args ...any) Row {
	return q.q.QueryRowContext(ctx, query, args...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }
