//go:build integration

package sqlite

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// useCodeJoined is the code's UPDATE as it was written before its
// promotion's conditions moved to a scalar subquery: UPDATE ... FROM
// promotions with sqlstore.CodeUsable, the conditions PostgreSQL's
// statement has.
const useCodeJoined = `UPDATE codes SET used = used + 1
FROM promotions p
WHERE ` + "%s" + `
RETURNING promotion_id, used,
  (SELECT max_usage_per_code FROM promotions WHERE id = codes.promotion_id),
  (SELECT per_user_limit FROM promotions WHERE id = codes.promotion_id),
  (SELECT coalesce(eligibility, '') FROM promotions WHERE id = codes.promotion_id)`

// TestAdversarialUseCodeConditions: SQLite's UseCode, UseCodeLoad and
// LockCode against the join with sqlstore.CodeUsable on every combination
// of the conditions at their edges (active or not, being deleted or not,
// starts and expiry before, at and after now or none, uses below, at and
// past the maximum, a maximum of 0, revoked or not, unbound, bound to the
// user or to another), and a code whose promotion row is gone: the same
// rows match, returning the same values.
func TestAdversarialUseCodeConditions(t *testing.T) {
	// The grid below varies every column CodeUsable reads: a condition on
	// another column (a new refusal reason) must be varied too.
	varied := map[string]bool{"c.code": true, "c.promotion_id": true, "c.used": true, "c.revoked_at": true,
		"c.user_id": true, "p.id": true, "p.max_usage_per_code": true, "p.active": true, "p.delete_requested_at": true,
		"p.starts_at": true, "p.expires_at": true}
	for _, col := range regexp.MustCompile(`\b[cp]\.[a-z_]+`).FindAllString(sqlstore.CodeUsable, -1) {
		if !varied[col] {
			t.Errorf("sqlstore.CodeUsable reads %s, which this test does not vary: add it to the grid", col)
		}
	}
	ctx := context.Background()
	_, path := migratedFile(t)
	db := rawDB(t, path)
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := func(d time.Duration) string { return sqlstore.FormatTime(now.Add(d)) }
	type edge struct {
		name string
		val  any
	}
	times := []edge{{"none", nil}, {"before", at(-time.Second)}, {"at", at(0)}, {"after", at(time.Second)}}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("BEGIN")
	var codes []string
	n := 0
	for _, active := range []int{0, 1} {
		for _, deleting := range []any{nil, at(-time.Hour)} {
			for _, starts := range times {
				for _, expires := range times {
					for _, maxUses := range []int{0, 1, 2} {
						n++
						res, err := conn.ExecContext(ctx, `INSERT INTO promotions (name, kind, code_count, max_usage_per_code,
							per_user_limit, starts_at, expires_at, created_at, active, delete_requested_at)
							VALUES (?, 'vanity', 1, ?, 1, ?, ?, ?, ?, ?)`, fmt.Sprintf("uc%d", n), maxUses, starts.val,
							expires.val, at(0), active, deleting)
						if err != nil {
							t.Fatal(err)
						}
						id, _ := res.LastInsertId()
						for _, used := range []int{0, 1, 2} {
							for _, revoked := range []any{nil, at(-time.Hour)} {
								for _, owner := range []any{nil, "u", "v"} {
									code := fmt.Sprintf("UC%d-%d-%v-%v", n, used, revoked != nil, owner)
									exec(`INSERT INTO codes (code, promotion_id, used, revoked_at, user_id) VALUES (?, ?, ?, ?, ?)`,
										code, id, used, revoked, owner)
									codes = append(codes, code)
								}
							}
						}
					}
				}
			}
		}
	}
	exec(`INSERT INTO codes (code, promotion_id, used) VALUES ('UC-ORPHAN', 987654321, 0)`)
	codes = append(codes, "UC-ORPHAN")
	exec("COMMIT")

	joined := fmt.Sprintf(useCodeJoined, strings.NewReplacer("c.", "codes.", "$", "?", "p.active\n", "p.active = 1\n").Replace(sqlstore.CodeUsable))
	run := func(q, code string) (string, error) {
		if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
			return "", err
		}
		defer conn.ExecContext(ctx, "ROLLBACK") //nolint:errcheck // undoes the use
		rows, err := conn.QueryContext(ctx, q, code, sqlstore.FormatTime(now), "u")
		if err != nil {
			return "", err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var out []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return "", err
			}
			out = append(out, fmt.Sprint(vals[:5]...))
		}
		return strings.Join(out, ";"), rows.Err()
	}
	matched := 0
	for _, name := range []string{"UseCode", "UseCodeLoad", "LockCode"} {
		q := map[string]string{"UseCode": statements.UseCode, "UseCodeLoad": statements.UseCodeLoad, "LockCode": statements.LockCode}[name]
		want := joined
		if name == "LockCode" {
			want = strings.Replace(joined, "SET used = used + 1", "SET used = used", 1)
		}
		diffs := 0
		for _, code := range codes {
			got, err := run(q, code)
			if err != nil {
				t.Fatalf("%s on %s: %v", name, code, err)
			}
			exp, err := run(want, code)
			if err != nil {
				t.Fatalf("the join on %s: %v", code, err)
			}
			if got != exp {
				diffs++
				if diffs <= 10 {
					t.Errorf("%s on %s: %q, the join with CodeUsable %q", name, code, got, exp)
				}
			}
			if got != "" && name == "UseCode" {
				matched++
			}
		}
		if diffs > 0 {
			t.Errorf("%s: %d of %d codes differ from the join", name, diffs, len(codes))
		}
	}
	state := ""
	if t.Failed() {
		state = "FAILED: "
	}
	t.Logf("adversarial: the code's UPDATE with its promotion in a subquery vs the join with CodeUsable [sqlite]: %s"+
		"UseCode, UseCodeLoad and LockCode match the same %d of %d codes (every edge of every condition, an orphan code), "+
		"returning the same values", state, matched, len(codes))
}
