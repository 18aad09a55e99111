//go:build integration

package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// TestAdversarialDeletedStaysOff: storetest.AdversarialDeletedStaysOff.
func TestAdversarialDeletedStaysOff(t *testing.T) {
	storetest.AdversarialDeletedStaysOff(t, "postgres", open(t))
	t.Run("forced on", func(t *testing.T) {
		s := open(t)
		storetest.AdversarialDeletedStaysOff(t, "postgres", s, func(id int64) error {
			_, err := s.DB().Exec(context.Background(), "UPDATE promotions SET active = true WHERE id = $1", id)
			return err
		})
	})
}

// TestAdversarialOneCodeStorm: storetest.AdversarialOneCodeStorm through the
// one-statement functions (redeem_code, redeem_code_batch, reserve_code,
// confirm_reservation on promo_refusal), alone and with group commit
// (redeem_codes).
func TestAdversarialOneCodeStorm(t *testing.T) {
	t.Run("alone", func(t *testing.T) { storetest.AdversarialOneCodeStorm(t, "postgres", open(t)) })
	t.Run("groups", func(t *testing.T) { storetest.AdversarialOneCodeStorm(t, "postgres groups", openGroup(t, 16, 3)) })
}

// TestAdversarialUpgradeMidFlight: storetest.AdversarialUpgradeMidFlight
// across migration 00019 (the refusal function): old is 00018.
func TestAdversarialUpgradeMidFlight(t *testing.T) {
	s := open(t)
	m := s.Migrations()
	storetest.AdversarialUpgradeMidFlight(t, "postgres", s, func(to string) error {
		if to == "old" {
			return m.DownTo(context.Background(), 18)
		}
		return m.UpTo(context.Background(), 19)
	})
}

// TestAdversarialRefusalInlined: promo_use_code's conditional UPDATE plans
// promo_refusal inline (00019's claim: one expression over the joined rows'
// columns, no function call per row, nothing of its own to snapshot), with
// its arguments as values and as parameters.
func TestAdversarialRefusalInlined(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	plan := func(query string, args ...any) string {
		t.Helper()
		rows, err := s.DB().Query(ctx, query, args...)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			b.WriteString(line + "\n")
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	const update = `EXPLAIN (VERBOSE, COSTS OFF) UPDATE codes c SET used = c.used + 1
FROM promotions p
WHERE c.code = %s AND p.id = c.promotion_id AND promo_refusal(c, p, %s, %s) IS NULL
RETURNING c.promotion_id, c.used`
	plans := []string{
		plan(fmt.Sprintf(update, "'X'", "'u'", "now()")),
		plan(fmt.Sprintf(update, "$1::text", "$2::text", "$3::timestamptz"), "X", "u", time.Now()),
	}
	for _, p := range plans {
		if strings.Contains(p, "promo_refusal") || !strings.Contains(p, "delete_requested_at") {
			t.Errorf("promo_refusal is not inlined:\n%s", p)
		}
	}
	outcome := "held: inlined (no call in the plan, its conditions on the joined columns)"
	if t.Failed() {
		outcome = "FAILED: a call per row"
	}
	t.Logf("adversarial: promo_refusal inlined [postgres]: %s\n%s", outcome, plans[1])
}

// TestAdversarialLockWaitSnapshot: a redemption that waits for its code
// row's lock while an admin switches the promotion off, shortens its window
// or deletes it. Under READ COMMITTED the conditional UPDATE re-checks the
// code row as committed (EvalPlanQual) but the joined promotion row as of
// its own start: the waiting redemption may still take its use (it began
// before the change returned, so it is ordered before it), and it never
// passes the code's maximum; a redemption that starts after the change
// returned is refused with the change's reason.
func TestAdversarialLockWaitSnapshot(t *testing.T) {
	schema := postgrestest.Schema(t)
	st, err := postgres.Open(context.Background(), postgres.Config{DSN: postgrestest.DSN(t), Schema: schema, RedeemGroup: -1})
	s := storetest.Migrated(t, st, err)
	ctx := context.Background()
	for i, c := range []struct {
		name   string
		reason promo.Reason
		change func(id int64) error
	}{
		{"switch-off", promo.ReasonDeactivated, func(id int64) error {
			off := false
			_, err := s.UpdatePromotion(ctx, promo.PromotionUpdate{ID: id, Active: &off, Actor: "admin:t", Now: time.Now().UTC(),
				AuditID: fmt.Sprintf("lw-a-%d", id)})
			return err
		}},
		{"window ended", promo.ReasonExpired, func(id int64) error {
			ended := time.Now().UTC().Add(-time.Millisecond)
			_, err := s.UpdatePromotion(ctx, promo.PromotionUpdate{ID: id, SetExpiresAt: true, ExpiresAt: &ended, Actor: "admin:t",
				Now: time.Now().UTC(), AuditID: fmt.Sprintf("lw-b-%d", id)})
			return err
		}},
		{"deletion", promo.ReasonPromotionDeleted, func(id int64) error {
			_, err := s.RequestDeletion(ctx, promo.AuditEntry{ID: fmt.Sprintf("lw-c-%d", id), At: time.Now().UTC().Truncate(time.Microsecond),
				Actor: "admin:t", Action: promo.ActionDeleteRequested, PromotionID: id})
			return err
		}},
	} {
		code := fmt.Sprintf("LOCKWAIT%d", i)
		p := gcVanity(t, s, code, 2, 0)
		if out, err := s.Redeem(ctx, gcReq(code, "first", "")); err != nil || out.Refused != "" {
			t.Fatalf("%s: first use: %+v, %v", c.name, out, err)
		}
		conn, err := pgx.Connect(ctx, postgrestest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		tx, err := conn.Begin(ctx)
		if err == nil {
			_, err = tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", schema)
		}
		if err == nil {
			_, err = tx.Exec(ctx, "SELECT 1 FROM codes WHERE code = $1 FOR UPDATE", code)
		}
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			out promo.RedeemOutcome
			err error
		}
		done := make(chan result, 1)
		go func() {
			out, err := s.Redeem(ctx, gcReq(code, "waiter", ""))
			done <- result{out, err}
		}()
		time.Sleep(300 * time.Millisecond) // the waiter is in the lock queue
		if err := c.change(p.ID); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		after, err := s.Redeem(ctx, gcReq(code, "after", ""))
		if err != nil || after.Refused != c.reason {
			t.Errorf("%s: a redemption after the change returned: %+v, %v; want %s", c.name, after, err, c.reason)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		_ = conn.Close(ctx)
		r := <-done
		if r.err != nil || (r.out.Refused != "" && r.out.Refused != c.reason) {
			t.Errorf("%s: the waiter: %+v, %v; want redeemed or %s", c.name, r.out, r.err, c.reason)
		}
		var used int
		if err := s.DB().QueryRow(ctx, "SELECT used FROM codes WHERE code = $1", code).Scan(&used); err != nil || used > 2 {
			t.Errorf("%s: uses %d, %v; max 2", c.name, used, err)
		}
		what := "redeemed (its snapshot predates the change)"
		if r.out.Refused != "" {
			what = "refused " + string(r.out.Refused)
		}
		t.Logf("adversarial: lock wait across a %s [postgres]: the waiter %s, uses %d of 2, a later call refused %s",
			c.name, what, used, after.Refused)
	}
}

// TestAdversarialGroupEvents: storetest.AdversarialGroupEvents through
// redeem_codes (group commit in one statement).
func TestAdversarialGroupEvents(t *testing.T) {
	storetest.AdversarialGroupEvents(t, "postgres", openGroup(t, 16, 3))
}

// TestAdversarialBatchOnHeldCode: storetest.AdversarialBatchOnHeldCode
// (redeem_code_batch on promo_use_code).
func TestAdversarialBatchOnHeldCode(t *testing.T) {
	storetest.AdversarialBatchOnHeldCode(t, "postgres", open(t))
}
