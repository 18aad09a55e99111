package sqlserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
)

// recorder is a database/sql driver that accepts every statement and records
// it: enough to run goose's Provider through Migrate without a server, and to
// see exactly which statements the migration file is split into.
type recorder struct {
	mu       sync.Mutex
	stmts    []string
	versions []int64 // rows inserted into goose's version table
}

func (r *recorder) Connect(context.Context) (driver.Conn, error) { return &recConn{r: r}, nil }
func (r *recorder) Driver() driver.Driver                        { return nil }

func (r *recorder) record(q string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stmts = append(r.stmts, strings.TrimSpace(q))
}

type recConn struct{ r *recorder }

func (c *recConn) Prepare(q string) (driver.Stmt, error) { return &recStmt{c: c, q: q}, nil }
func (c *recConn) Close() error                          { return nil }
func (c *recConn) Begin() (driver.Tx, error)             { return recTx{}, nil }

type recTx struct{}

func (recTx) Commit() error   { return nil }
func (recTx) Rollback() error { return nil }

type recStmt struct {
	c *recConn
	q string
}

func (s *recStmt) Close() error  { return nil }
func (s *recStmt) NumInput() int { return -1 }
func (s *recStmt) Exec(args []driver.Value) (driver.Result, error) {
	r := s.c.r
	r.record(s.q)
	if strings.HasPrefix(s.q, "INSERT INTO goose_db_version") {
		r.mu.Lock()
		r.versions = append(r.versions, args[0].(int64))
		r.mu.Unlock()
	}
	return driver.RowsAffected(1), nil
}
func (s *recStmt) Query([]driver.Value) (driver.Rows, error) {
	r := s.c.r
	r.record(s.q)
	switch {
	case strings.Contains(s.q, "sp_getapplock"):
		return &recRows{cols: []string{""}, vals: [][]driver.Value{{int64(0)}}}, nil
	case strings.HasPrefix(s.q, "SELECT version_id, is_applied FROM goose_db_version"):
		r.mu.Lock()
		defer r.mu.Unlock()
		rows := &recRows{cols: []string{"version_id", "is_applied"}}
		for i := len(r.versions) - 1; i >= 0; i-- { // ORDER BY id DESC
			rows.vals = append(rows.vals, []driver.Value{r.versions[i], true})
		}
		return rows, nil
	case strings.HasPrefix(s.q, "SELECT MAX(version_id) FROM goose_db_version"):
		r.mu.Lock()
		defer r.mu.Unlock()
		return &recRows{cols: []string{""}, vals: [][]driver.Value{{slices.Max(r.versions)}}}, nil
	}
	return &recRows{cols: []string{"a", "b"}}, nil // no version table yet: no rows
}

type recRows struct {
	cols []string
	vals [][]driver.Value
}

func (r *recRows) Columns() []string { return r.cols }
func (r *recRows) Close() error      { return nil }
func (r *recRows) Next(dest []driver.Value) error {
	if len(r.vals) == 0 {
		return io.EOF
	}
	copy(dest, r.vals[0])
	r.vals = r.vals[1:]
	return nil
}

func TestMigrateSplitsTheMigrationAsIntended(t *testing.T) {
	rec := &recorder{}
	s := newStore(sql.OpenDB(rec), nil)
	defer s.Close()
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	var got []string
	for _, q := range rec.stmts {
		if strings.HasPrefix(q, "CREATE TABLE counters") || strings.HasPrefix(q, "CREATE TABLE promotions") ||
			strings.HasPrefix(q, "CREATE UNIQUE INDEX") || strings.HasPrefix(q, "CREATE TABLE batches") ||
			strings.HasPrefix(q, "CREATE INDEX") || strings.HasPrefix(q, "CREATE TABLE codes") ||
			strings.HasPrefix(q, "ALTER TABLE codes") {
			got = append(got, strings.Fields(q)[0]+" "+strings.Fields(q)[1]+" "+strings.Fields(q)[2])
		}
	}
	want := []string{"CREATE TABLE counters", "CREATE TABLE promotions", "CREATE UNIQUE INDEX",
		"CREATE TABLE batches", "CREATE INDEX batches_unpublished", "CREATE TABLE codes",
		"CREATE INDEX codes_promotion_id", "ALTER TABLE codes",
		// 00002_redemptions
		"CREATE INDEX redemptions_by_promotion", "CREATE INDEX redemptions_by_user", "CREATE INDEX events_unpublished",
		// 00007_lifecycle
		"ALTER TABLE codes", "CREATE INDEX reservations_held_by_code", "CREATE INDEX reservations_held_by_user",
		"CREATE INDEX reservations_by_expiry", "CREATE INDEX audit_log_by_promotion",
		// 00008_promotion_totals
		"CREATE INDEX events_uncounted",
		// 00010_lifecycle_guards
		"CREATE UNIQUE INDEX",
		// 00011_redemption_lookups
		"CREATE INDEX redemptions_by_code", "CREATE INDEX redemptions_by_user_id"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("migration statements:\n%s\nwant\n%s\nall recorded:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"),
			strings.Join(rec.stmts, "\n---\n"))
	}
	for _, q := range rec.stmts {
		if strings.Contains(q, "DROP TABLE") {
			t.Errorf("Up ran a Down statement: %q", q)
		}
		if strings.Contains(q, "+goose") {
			t.Errorf("a goose annotation reached the server: %q", q)
		}
	}
	// goose creates its version table before it locks (retrying if another
	// process races it); the schema changes run under the lock.
	lock := slices.IndexFunc(rec.stmts, func(q string) bool { return strings.Contains(q, "sp_getapplock") })
	first := slices.IndexFunc(rec.stmts, func(q string) bool { return strings.HasPrefix(q, "CREATE TABLE counters") })
	if lock < 0 || first < lock || !strings.Contains(rec.stmts[len(rec.stmts)-1], "sp_releaseapplock") {
		t.Errorf("the migration did not run under the application lock (lock at %d, first statement at %d, last %q)",
			lock, first, rec.stmts[len(rec.stmts)-1])
	}
}
