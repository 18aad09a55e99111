package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// promo_refusal (migration 00019), the one-statement functions' condition
// and reason, names what promo.CodeState.Status names, the store's statement
// path's decision, for every combination of the state both read (Status's
// redeemable being NULL).
func TestRefusalMatchesStatus(t *testing.T) {
	db, ctx := open(t).DB(), context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	times, owners := []*time.Time{nil, &past, &future}, []string{"", "u", "other"}
	at := func(on bool) *time.Time {
		if on {
			return &past
		}
		return nil
	}
	const q = `SELECT COALESCE(promo_refusal(jsonb_populate_record(NULL::codes, $1::jsonb),
	jsonb_populate_record(NULL::promotions, $2::jsonb), 'u', $3), 'redeemable')`
	for i := range 2 * 2 * 3 * 2 * 3 * 3 * 2 {
		k := i // the digits of a mixed-radix number: one combination each
		pick := func(n int) int { v := k % n; k /= n; return v }
		deleted, revoked, owner, active := pick(2) == 1, pick(2) == 1, owners[pick(3)], pick(2) == 1
		starts, expires, used := times[pick(3)], times[pick(3)], 1+pick(2)
		st := promo.CodeState{Promotion: promo.Promotion{MaxUsagePerCode: 2, StartsAt: starts, ExpiresAt: expires},
			Active: active, Revoked: revoked, Deleted: deleted, Used: used, Owner: owner, User: "u"}
		var userID *string
		if owner != "" {
			userID = &owner
		}
		code, _ := json.Marshal(map[string]any{"code": "X", "promotion_id": 1, "used": used,
			"revoked_at": at(revoked), "user_id": userID})
		prom, _ := json.Marshal(map[string]any{"id": 1, "active": active, "delete_requested_at": at(deleted),
			"starts_at": starts, "expires_at": expires, "max_usage_per_code": 2})
		var got string
		if err := db.QueryRow(ctx, q, string(code), string(prom), now).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := st.Status(now, false); got != string(want) {
			t.Errorf("%s %s: promo_refusal %q, Status %q", code, prom, got, want)
		}
	}
}
