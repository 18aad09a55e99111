//go:build integration

package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// TestAdversarialDeletedStaysOff: storetest.AdversarialDeletedStaysOff.
func TestAdversarialDeletedStaysOff(t *testing.T) {
	storetest.AdversarialDeletedStaysOff(t, "postgres", open(t))
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
