package sqlserver

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/promocodes/promocodes/pkg/promo"
)

// The driver's Error describes the last error of a response; for a failed
// INSERT that is 3621 "The statement has been terminated", with the duplicate
// key (2627 or 2601) earlier in All. Every entry counts, wrapped or not.
func TestErrorClassification(t *testing.T) {
	dup := mssql.Error{Number: 2627, Message: "Violation of PRIMARY KEY constraint 'codes_pk'."}
	dupIndex := mssql.Error{Number: 2601, Message: "Cannot insert duplicate key row in object 'dbo.promotions'."}
	terminated := mssql.Error{Number: 3621, Message: "The statement has been terminated."}
	deadlock := mssql.Error{Number: 1205, Message: "Transaction (Process ID 52) was deadlocked"}
	last := func(all ...mssql.Error) mssql.Error {
		e := all[len(all)-1]
		e.All = all
		return e
	}
	for _, tc := range []struct {
		name           string
		err            error
		unique, victim bool
	}{
		{"2627 then 3621", last(dup, terminated), true, false},
		{"2601 then 3621", last(dupIndex, terminated), true, false},
		{"2627 alone, no All", dup, true, false},
		{"wrapped twice", fmt.Errorf("commit chunk: %w", fmt.Errorf("bulk copy: %w", last(dup, terminated))), true, false},
		{"pointer", &mssql.Error{Number: 3621, All: []mssql.Error{dup, terminated}}, true, false},
		{"deadlock", last(deadlock), false, true},
		{"wrapped deadlock", fmt.Errorf("advance progress: %w", deadlock), false, true},
		{"other server error", last(terminated), false, false},
		{"not a server error", errors.New("mssql: 2627"), false, false},
		{"nil", nil, false, false},
	} {
		if got := dialect.UniqueViolation(tc.err); got != tc.unique {
			t.Errorf("%s: UniqueViolation = %v, want %v", tc.name, got, tc.unique)
		}
		if got := dialect.Retryable(tc.err); got != tc.victim {
			t.Errorf("%s: Retryable = %v, want %v", tc.name, got, tc.victim)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ dsn, secret string }{
		{"sqlserver://sa:s3cret-Pw@db:1433?database=x", "s3cret-Pw"},
		{"sqlserver://sa:p%40ss%3Aw0rd@db:1433?database=x", "p@ss:w0rd"},
		{"sqlserver://sa:p%40ss%3Aw0rd@db:1433?database=x", "p%40ss%3Aw0rd"},
		{"sqlserver://db:1433?user+id=sa&password=Qu3ry-Pw", "Qu3ry-Pw"},
		{"server=db;user id=sa;password=Ad0-Secret;database=x", "Ad0-Secret"},
		{"server=db;user id=sa;Password = {br;ace}}d} ;database=x", "br;ace}d"},
		{"odbc:server=db;uid=sa;pwd=0dbc-Secret", "0dbc-Secret"},
		{"sqlserver://sa:un:parsable@[db", "un:parsable"},
	} {
		msg := "login for " + tc.secret + " failed (" + tc.secret + ")"
		got := redact(msg, tc.dsn)
		if strings.Contains(got, tc.secret) {
			t.Errorf("redact(%q) with DSN %q = %q: password still there", msg, tc.dsn, got)
		}
		if !strings.Contains(got, "xxxxx") {
			t.Errorf("redact(%q) with DSN %q = %q: nothing replaced", msg, tc.dsn, got)
		}
	}
	if got := redact("no secret here", "sqlserver://db:1433"); got != "no secret here" {
		t.Errorf("redact without a password changed the text: %q", got)
	}
	secretErr := errors.New("dial sa:Pw-123@h: refused")
	if err := hideSecret(secretErr, "sqlserver://sa:Pw-123@h"); strings.Contains(err.Error(), "Pw-123") {
		t.Errorf("hideSecret = %v", err)
	}
	plain := errors.New("connection refused")
	if err := hideSecret(plain, "sqlserver://sa:Pw-123@h"); err != plain {
		t.Errorf("hideSecret changed an error without the password: %v", err)
	}
}

func TestInsertCodesSkippingSQL(t *testing.T) {
	q := qInsertCodesSkipping(3)
	want := "INSERT INTO codes (code, promotion_id, used)\nSELECT s.code, @p1, 0\n" +
		"FROM (SELECT DISTINCT v.code COLLATE Latin1_General_100_BIN2 AS code\n" +
		"\tFROM (VALUES (@p2),(@p3),(@p4)) AS v(code)) AS s\n" +
		"WHERE NOT EXISTS (SELECT 1 FROM codes AS c WITH (UPDLOCK) WHERE c.code = s.code);\n" +
		"SELECT @@ROWCOUNT;"
	if q != want {
		t.Errorf("qInsertCodesSkipping(3) =\n%s\nwant\n%s", q, want)
	}
	// The largest statement stays within SQL Server's limits: 2100
	// parameters per request, 1000 rows per VALUES list.
	big := qInsertCodesSkipping(maxValuesRows)
	if params := strings.Count(big, "@p"); params != maxValuesRows+1 || params > 2100 {
		t.Errorf("qInsertCodesSkipping(%d) has %d parameters", maxValuesRows, params)
	}
	if !strings.Contains(big, fmt.Sprintf("(@p%d)) AS v", maxValuesRows+1)) || strings.Count(big, "),(") != maxValuesRows-1 {
		t.Errorf("qInsertCodesSkipping(%d): rows are not @p2..@p%d", maxValuesRows, maxValuesRows+1)
	}
}

func TestMarkPublishedSQL(t *testing.T) {
	want := "UPDATE b SET published = 1, publish_lease_until = NULL, updated_at = SYSUTCDATETIME()\n" +
		"FROM batches AS b JOIN (VALUES (@p1, @p2),(@p3, @p4)) AS r(promotion_id, batch_no)\n" +
		"\tON b.promotion_id = r.promotion_id AND b.batch_no = r.batch_no\nWHERE b.published = 0"
	if got := qMarkPublished(2); got != want {
		t.Errorf("qMarkPublished(2) =\n%s\nwant\n%s", got, want)
	}
	big := qMarkPublished(maxValuesRows)
	if params := strings.Count(big, "@p"); params != 2*maxValuesRows || params > 2100 {
		t.Errorf("qMarkPublished(%d) has %d parameters", maxValuesRows, params)
	}
	if !strings.Contains(big, fmt.Sprintf("(@p%d, @p%d)) AS r", 2*maxValuesRows-1, 2*maxValuesRows)) {
		t.Errorf("qMarkPublished(%d) does not end with the last pair", maxValuesRows)
	}
}

// The bulk copy statement is what go-mssqldb's Prepare recognises: the
// INSERTBULK marker, the table and the exact column names.
func TestBulkCopyStatement(t *testing.T) {
	if q := bulkCodes(10_000, true); !strings.Contains(q, `"Order":["code ASC"]`) {
		t.Errorf("bulkCodes for sorted rows = %q, lacks the ORDER hint", q)
	}
	q := bulkCodes(10_000, false)
	if strings.Contains(q, "code ASC") {
		t.Errorf("bulkCodes for unsorted rows = %q has an ORDER hint the server would reject", q)
	}
	if !strings.HasPrefix(q, "INSERTBULK ") {
		t.Fatalf("bulkCodes = %q, want an INSERTBULK statement", q)
	}
	for _, want := range []string{`"TableName":"codes"`, `"ColumnsName":["code","promotion_id","used"]`,
		`"RowsPerBatch":10000`, `"Tablock":false`} {
		if !strings.Contains(q, want) {
			t.Errorf("bulkCodes = %q, lacks %s", q, want)
		}
	}
}

// allStatements is every statement of the store by name: the core's
// (sqlstore.Statements fields, Purge by table) and the dialect's own.
func allStatements() map[string]string {
	all := map[string]string{"qGetAppLock": qGetAppLock, "qReleaseAppLock": qReleaseAppLock,
		"qInsertCodesSkipping(3)": qInsertCodesSkipping(3), "qMarkPublished(3)": qMarkPublished(3)}
	v := reflect.ValueOf(statements)
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String {
			all[v.Type().Field(i).Name] = f.String()
		}
	}
	for table, q := range statements.Purge {
		all["Purge["+table+"]"] = q
	}
	return all
}

// Every statement of the core is set (but those SQL Server does without).
func TestEveryStatementIsSet(t *testing.T) {
	for name, q := range allStatements() {
		if strings.TrimSpace(q) == "" && name != "RedemptionWithEvent" && name != "PurgeRedemptionKeys" &&
			name != "RedeemOnce" && name != "RedeemBatchOnce" && name != "RedeemGroupOnce" &&
			name != "ReserveOnce" && name != "ConfirmOnce" && name != "RollbackOnce" && // PostgreSQL's functions
			name != "UseCodeLoad" && name != "UseAllowanceLoad" && // SQLite's one-writer and PostgreSQL's group forms
			name != "IssueCodesFrom" && name != "IssueCursor" && name != "SetIssueCursor" {
			t.Errorf("statement %s is empty", name)
		}
	}
}

// Every statement names its parameters @p1..@pN without gaps: go-mssqldb
// binds positional arguments by those names.
func TestQueriesNumberParametersWithoutGaps(t *testing.T) {
	for name, q := range allStatements() {
		seen := map[int]bool{}
		hi := 0
		for i := 0; i < len(q); i++ {
			if !strings.HasPrefix(q[i:], "@p") {
				continue
			}
			n, j := 0, i+2
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				n = n*10 + int(q[j]-'0')
				j++
			}
			if j == i+2 {
				continue // @pN only
			}
			seen[n] = true
			hi = max(hi, n)
		}
		for n := 1; n <= hi; n++ {
			if !seen[n] {
				t.Errorf("%s uses @p%d but not @p%d", name, hi, n)
			}
		}
	}
}

// Statements that return rows they changed use OUTPUT ... INTO a table
// variable (a plain OUTPUT clause fails with error 334 once the table has a
// trigger); TOP always comes with ORDER BY (without it, which rows TOP keeps
// is undefined); the codes fallback takes no HOLDLOCK range locks.
func TestStatementShapes(t *testing.T) {
	all := allStatements()
	for _, name := range []string{"Reserve", "InsertPromotion", "Advance", "ClaimPendingBatches", "ClaimUncounted",
		"ReleaseCode"} {
		q := all[name]
		if !strings.Contains(q, "OUTPUT") || !strings.Contains(q, " INTO @t") {
			t.Errorf("%s: OUTPUT without INTO:\n%s", name, q)
		}
	}
	for name, q := range all {
		// DELETE TOP takes no ORDER BY: any rows that qualify will do.
		q = strings.ReplaceAll(strings.ReplaceAll(q, "OVER (ORDER BY", "OVER ("), "DELETE TOP (", "DELETE (")
		for i := strings.Index(q, "TOP ("); i >= 0; {
			stmt := q[i:]
			if end := strings.Index(stmt, ";"); end >= 0 {
				stmt = stmt[:end]
			}
			if !strings.Contains(stmt, "ORDER BY") {
				t.Errorf("%s: TOP without ORDER BY in its statement:\n%s", name, stmt)
			}
			next := strings.Index(q[i+1:], "TOP (")
			if next < 0 {
				break
			}
			i += 1 + next
		}
	}
	if strings.Contains(qInsertCodesSkipping(2), "HOLDLOCK") {
		t.Error("the codes fallback takes HOLDLOCK range locks")
	}
	c := promo.Chunk{Count: 3, CodeLen: 2, Codes: []byte("AAABAC")}
	if !ascending(&c) {
		t.Error("ascending codes reported unsorted")
	}
	c.Codes = []byte("AAACAB")
	if ascending(&c) {
		t.Error("unsorted codes reported ascending")
	}
	c.Codes = []byte("AAAAAB")
	if ascending(&c) {
		t.Error("a duplicate reported strictly ascending")
	}
}

// The lifecycle guards, written as on PostgreSQL: a rollback releases only
// the code row of its redemption's promotion; a requested deletion is in the
// WHERE of every change; a cancel or deletion locks only the promotion row
// and skips batch rows a chunk in flight holds; each chunk reads the flags
// before it commits; a top-up's lock is held to the end of its transaction;
// purged redemptions take their idempotency records in the same batch.
func TestLifecycleGuardShapes(t *testing.T) {
	all := allStatements()
	for _, c := range []struct {
		name      string
		want, not []string
	}{
		{"ReleaseCode", []string{"code = @p1 AND promotion_id = @p2 AND used > 0"}, nil},
		{"ReleaseAllowance", []string{"AND used > 0"}, nil},
		{"UnuseCode", []string{"AND used > 0"}, nil},
		{"UseCode", []string{"c.used < p.max_usage_per_code"}, []string{"c.used <= "}},
		{"UseAllowance", []string{"used < @p3"}, []string{"used <= "}},
		{"UpdatePromotion", []string{"delete_requested_at IS NULL"}, nil},
		{"RevokeCode", []string{"p.delete_requested_at IS NOT NULL"}, nil},
		{"FlagCancelled", []string{"UPDATE promotions", "cancelled_at IS NULL", "delete_requested_at IS NULL",
			"WITH (READPAST)", "WITH (NOLOCK)"}, []string{"UPDLOCK", "HOLDLOCK"}},
		{"CancelBatches", []string{"READPAST"}, nil},
		{"RequestDeletion", []string{"UPDATE promotions", "delete_requested_at IS NULL"}, []string{"batches"}},
		{"MarkPurge", []string{"UPDATE promotions", "COALESCE(delete_requested_at, @p3)", "expires_at < @p2"}, []string{"batches"}},
		{"PromotionLive", []string{"cancelled_at IS NULL AND delete_requested_at IS NULL"}, []string{"UPDLOCK"}},
		{"LockPromotion", []string{"UPDLOCK"}, nil},
		{"Purge[redemptions]", []string{"OUTPUT deleted.idempotency_key INTO @d", "DELETE FROM idempotency_keys"}, nil},
		{"CodeState", []string{"delete_requested_at"}, nil},
	} {
		q := all[c.name]
		for _, w := range c.want {
			if !strings.Contains(q, w) {
				t.Errorf("%s lacks %q:\n%s", c.name, w, q)
			}
		}
		for _, n := range c.not {
			if strings.Contains(q, n) {
				t.Errorf("%s has %q:\n%s", c.name, n, q)
			}
		}
	}
}

// The stats series reads the same window from each of its sources (made,
// rolled back, refused), half-open, and buckets every source with the one
// expression the refusal series uses too.
func TestStatsSeriesShape(t *testing.T) {
	legs := strings.Split(statements.StatsSeries, "UNION ALL")
	if len(legs) != 3 {
		t.Fatalf("StatsSeries has %d sources, want 3:\n%s", len(legs), statements.StatsSeries)
	}
	for i, leg := range legs {
		if strings.Count(leg, ">= @p3") != 1 || strings.Count(leg, "< @p4") != 1 || !strings.Contains(leg, "promotion_id = @p1") {
			t.Errorf("source %d does not read exactly the promotion's window [@p3, @p4):\n%s", i, leg)
		}
	}
	for name, q := range map[string]string{"StatsSeries": statements.StatsSeries, "StatsRefusalSeries": statements.StatsRefusalSeries} {
		if strings.Count(q, bucketOfT) != 1 || strings.Count(q, "DATEDIFF") != 2 {
			t.Errorf("%s does not bucket once with bucketOfT:\n%s", name, q)
		}
		if !strings.Contains(q, "GROUP BY x.b") {
			t.Errorf("%s does not group by the bucket:\n%s", name, q)
		}
	}
	if !strings.HasSuffix(statements.StatsSeries, "ORDER BY x.b") {
		t.Errorf("StatsSeries is not ordered by bucket")
	}
}

// Leases are on the server's clock: the claim statements take the lease as
// a duration and read SYSUTCDATETIME() once, never a time from the caller
// (an API replica whose clock is off would lease for hours or treat every
// other lease as expired).
func TestLeasesTakeTheServersClock(t *testing.T) {
	for name, q := range map[string]string{"ClaimPendingBatches": statements.ClaimPendingBatches, "ClaimEvents": statements.ClaimEvents} {
		if strings.Count(q, "SYSUTCDATETIME()") != 1 || !strings.Contains(q, "DATEADD(millisecond, @p2, @now)") ||
			!strings.Contains(q, "< @now") || strings.Contains(q, "@p3") {
			t.Errorf("%s does not lease on the server's clock:\n%s", name, q)
		}
	}
	if q := statements.MarkEventPublished; !strings.Contains(q, "SYSUTCDATETIME()") || strings.Contains(q, "@p2") {
		t.Errorf("MarkEventPublished does not stamp the server's clock:\n%s", q)
	}
	for lease, want := range map[time.Duration]int32{45 * time.Second: 45000, -time.Second: -1000, 1000 * time.Hour: 1<<31 - 1} {
		if got := leaseMillis(lease); got != any(want) {
			t.Errorf("leaseMillis(%s) = %d, want %d", lease, got, want)
		}
	}
}

func TestSessionLimits(t *testing.T) {
	if got := (Config{LockTimeout: 2500 * time.Millisecond}).sessionInit(); got != "SET LOCK_TIMEOUT 2500;" {
		t.Errorf("sessionInit = %q", got)
	}
	if got := (Config{}).sessionInit(); got != "" {
		t.Errorf("sessionInit without a lock timeout = %q, want none", got)
	}
	for _, c := range []Config{{DSN: "x", LockTimeout: -time.Second}, {DSN: "x", LockTimeout: time.Microsecond}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
	timedOut := mssql.Error{Number: 1222, Message: "Lock request time out period exceeded."}
	if !dialect.LockTimeout(fmt.Errorf("commit chunk: %w", timedOut)) {
		t.Error("error 1222 is not a lock timeout")
	}
	if dialect.LockTimeout(mssql.Error{Number: 1205}) {
		t.Error("a deadlock is a lock timeout")
	}
}
