package sqlserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/promocodes/promocodes/pkg/promo"
)

// No SQL Server runs here: these tests check the one-batch redemption's
// shape and its wiring; the contract suite (TestContract) runs it where a
// server exists.

// A redemption is one batch in one round trip (no BEGIN or COMMIT from the
// driver: the batch is its own transaction), answered from its one row, a
// bound code's not_your_code included; a promotion with eligibility rules
// makes the batch throw errStatementPath, and the store then redeems on its
// statement path, which names the rule.
func TestRedeemIsOneBatch(t *testing.T) {
	var (
		mu    sync.Mutex
		calls int
	)
	answer := script(nil, map[string][][][]driver.Value{
		"RedeemOnce": {row("redeemed", int64(7), int64(4)), row("not_your_code", int64(7), int64(0))},
		// The statement path: a code of a promotion whose rules want DE.
		"UseCode":  {row(int64(7), int64(1), int64(5), int64(0), `{"countries":["DE"]}`)},
		"CodeLoad": {row(int64(1))},
	})
	srv := &fakeServer{answer: func(q string, args []any) ([][]driver.Value, error) {
		if q == statements.RedeemOnce {
			mu.Lock()
			calls++
			n := calls
			mu.Unlock()
			if n == 3 {
				return nil, mssql.Error{Number: errStatementPath, Message: "the promotion has eligibility rules"}
			}
		}
		return answer(q, args)
	}}
	s := newStore(sql.OpenDB(srv), nil)
	defer s.Close()
	ctx := context.Background()
	req := promo.RedeemRequest{ID: "r1", EventID: "e1", Code: "ABCD", UserID: "u", IdempotencyKey: "k", RequestHash: "h",
		Now: now, ClientAddr: "203.0.113.7", UserAgent: "agent"}
	out, err := s.Redeem(ctx, req)
	if err != nil || out.Redemption.PromotionID != 7 || out.Redemption.UsesLeft != 4 || out.Redemption.ID != "r1" ||
		out.Redemption.ClientAddr != "203.0.113.7" {
		t.Fatalf("Redeem = %+v, %v; want r1 of promotion 7 with 4 uses left", out, err)
	}
	if out, err = s.Redeem(ctx, req); err != nil || out.Refused != promo.ReasonNotYourCode || out.PromotionID != 7 {
		t.Fatalf("Redeem = %+v, %v; want not_your_code in promotion 7", out, err)
	}
	name := names()
	var got []string
	for _, c := range srv.calls {
		got = append(got, name(c.query))
	}
	if fmt.Sprint(got) != "[RedeemOnce RedeemOnce]" {
		t.Errorf("statements of two redemptions: %v, want one batch each", got)
	}
	if a := srv.calls[0].args; len(a) != 13 || a[11] != "203.0.113.7" || a[12] != "agent" {
		t.Errorf("RedeemOnce arguments %v: want 13, the client's address and agent last", a)
	}

	srv.calls = nil
	req.ID = "r2"
	out, err = s.Redeem(ctx, req)
	if err != nil || out.Refused != promo.ReasonNotEligible || out.Rule != "countries" {
		t.Fatalf("Redeem of a promotion with rules = %+v, %v; want not_eligible (countries) from the statement path", out, err)
	}
	got = nil
	for _, c := range srv.calls {
		got = append(got, name(c.query))
	}
	if want := "[RedeemOnce BEGIN Read Committed ClaimKey UseCode CodeLoad UnuseCode SaveOutcome COMMIT]"; fmt.Sprint(got) != want {
		t.Errorf("statements of a redemption with rules: %v, want %s", got, want)
	}
	if !dialect.StatementPath(mssql.Error{Number: errStatementPath}) || dialect.StatementPath(mssql.Error{Number: errUniqueConstraint}) {
		t.Error("StatementPath does not tell errStatementPath from another error")
	}
}

// The batch keeps the core's lock order and its conditions: the key, the
// code row (every condition of a use, the bound code's owner among them,
// in the refusal its WHERE requires NULL), the rules' abort, the
// holds of the code row it used, the allowance, the audit row and the event;
// refusal reasons in the order the statement path names them; every BEGIN
// (and CASE) closed; every THROW after a terminated statement; any error rolls back.
func TestRedeemOnceShape(t *testing.T) {
	q, at := statements.RedeemOnce, 0
	for _, part := range []string{"SET XACT_ABORT ON", "BEGIN TRY", "BEGIN TRANSACTION",
		"WITH (UPDLOCK, HOLDLOCK) WHERE idem_key = @p7",
		"WHERE c.code = @p2 AND " + refusal + " IS NULL;",
		"@outcome = COALESCE(" + refusal + ", 'code_exhausted')", "'code_not_found'", "THROW 50001",
		"FROM reservations AS r\n\t\t\tWHERE r.code = @p2 AND r.promotion_id = @pid", "UPDATE user_uses SET used = used + 1",
		"AND used < @limit", "WITH (UPDLOCK, HOLDLOCK) WHERE promotion_id = @pid AND user_id = @p3",
		"r.promotion_id = @pid AND r.user_id = @p3", "UPDATE codes SET used = used - 1",
		"INSERT INTO redemptions", "NULLIF(@p12, ''), NULLIF(@p13, '')", "INSERT INTO events",
		"CAST(@p10 AS nvarchar(max))", "UPDATE idempotency_keys SET refused = @outcome", "COMMIT TRANSACTION",
		"END TRY", "BEGIN CATCH", "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION", "THROW;", "END CATCH", "SELECT @outcome"} {
		i := strings.Index(q[at:], part)
		if i < 0 {
			t.Fatalf("RedeemOnce lacks %q after offset %d", part, at)
		}
		at += i + len(part)
	}
	at = 0
	for _, part := range []string{"p.delete_requested_at IS NOT NULL THEN 'promotion_deleted'",
		"c.revoked_at IS NOT NULL THEN 'revoked'", "c.user_id IS NOT NULL AND c.user_id <> @p3 THEN 'not_your_code'",
		"p.active = 0 THEN 'deactivated'", "@p6 < p.starts_at THEN 'not_started'", "@p6 >= p.expires_at THEN 'expired'",
		"c.used >= p.max_usage_per_code THEN 'code_exhausted' END"} {
		i := strings.Index(refusal[at:], part)
		if i < 0 {
			t.Fatalf("the refusal lacks %q after offset %d", part, at)
		}
		at += i + len(part)
	}
	if errStatementPath != 50001 {
		t.Errorf("errStatementPath %d is not the number the batch throws", errStatementPath)
	}
	word := regexp.MustCompile(`\b(BEGIN|CASE|END)\b( (TRY|CATCH|TRANSACTION))?`)
	depth := 0
	for _, m := range word.FindAllStringSubmatch(q, -1) {
		switch {
		case m[3] == "TRANSACTION":
		case m[1] == "BEGIN" || m[1] == "CASE":
			depth++
		default:
			depth--
		}
		if depth < 0 {
			t.Fatal("an END closes no BEGIN")
		}
	}
	if depth != 0 {
		t.Errorf("%d BEGIN blocks left open", depth)
	}
	for i := strings.Index(q, "THROW"); i >= 0; {
		if before := strings.TrimRight(q[:i], " \t\n"); !strings.HasSuffix(before, ";") {
			t.Errorf("THROW at %d does not follow a terminated statement: %q", i, before[max(0, len(before)-30):])
		}
		next := strings.Index(q[i+1:], "THROW")
		if next < 0 {
			break
		}
		i += 1 + next
	}
}
