package sqlserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"slices"
	"strings"
	"sync"
	"testing"
)

// gooseServer answers goose's own statements on the recording driver, so
// that Migrate runs without a server: the application lock is granted, the
// version table holds what was inserted into it.
func gooseServer() *fakeServer {
	var (
		mu       sync.Mutex
		versions []int64
	)
	return &fakeServer{answer: func(q string, args []any) ([][]driver.Value, error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(q, "INSERT INTO goose_db_version"):
			versions = append(versions, args[0].(int64))
		case strings.Contains(q, "sp_getapplock"):
			return row(int64(0)), nil
		case strings.HasPrefix(q, "SELECT version_id, is_applied FROM goose_db_version"):
			var rows [][]driver.Value
			for i := len(versions) - 1; i >= 0; i-- { // ORDER BY id DESC
				rows = append(rows, []driver.Value{versions[i], true})
			}
			return rows, nil
		case strings.HasPrefix(q, "SELECT MAX(version_id) FROM goose_db_version"):
			return row(slices.Max(versions)), nil
		}
		return nil, nil // no version table yet: no rows
	}}
}

func TestMigrateSplitsTheMigrationAsIntended(t *testing.T) {
	srv := gooseServer()
	s := newStore(sql.OpenDB(srv), nil)
	defer s.Close()
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	var stmts, got []string
	for _, c := range srv.calls {
		if q := strings.TrimSpace(c.query); !strings.HasPrefix(q, "BEGIN ") && q != "COMMIT" && q != "ROLLBACK" {
			stmts = append(stmts, q)
		}
	}
	for _, q := range stmts {
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
		"CREATE INDEX redemptions_by_code", "CREATE INDEX redemptions_by_user_id",
		// 00013_personal_codes
		"ALTER TABLE codes", "CREATE INDEX codes_by_user", "CREATE INDEX redemption_segments_by_promotion",
		"CREATE INDEX idempotency_keys_by_age"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("migration statements:\n%s\nwant\n%s\nall recorded:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"),
			strings.Join(stmts, "\n---\n"))
	}
	for _, q := range stmts {
		if strings.Contains(q, "DROP TABLE") {
			t.Errorf("Up ran a Down statement: %q", q)
		}
		if strings.Contains(q, "+goose") {
			t.Errorf("a goose annotation reached the server: %q", q)
		}
	}
	// goose creates its version table before it locks (retrying if another
	// process races it); the schema changes run under the lock.
	lock := slices.IndexFunc(stmts, func(q string) bool { return strings.Contains(q, "sp_getapplock") })
	first := slices.IndexFunc(stmts, func(q string) bool { return strings.HasPrefix(q, "CREATE TABLE counters") })
	if lock < 0 || first < lock || !strings.Contains(stmts[len(stmts)-1], "sp_releaseapplock") {
		t.Errorf("the migration did not run under the application lock (lock at %d, first statement at %d, last %q)",
			lock, first, stmts[len(stmts)-1])
	}
}
