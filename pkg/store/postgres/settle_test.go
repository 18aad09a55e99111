package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// A reservation, its confirmation and a redemption's rollback are one round
// trip each: one statement in autocommit (reserve_code,
// confirm_reservation, rollback_redemption). Their refusals too; answers
// from the rows (a replay, a settled reservation) read after it.
func TestSettleRoundTrips(t *testing.T) {
	ctx := context.Background()
	tr := &tracer{}
	s, err := postgres.OpenTuned(ctx, postgres.Config{DSN: postgrestest.DSN(t), Schema: postgrestest.Schema(t)},
		func(c *pgxpool.Config) { c.ConnConfig.Tracer = tr })
	s = storetest.Migrated(t, s, err)
	if _, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "v",
		Kind: promo.KindVanity, VanityCode: "RTRS", MaxUsagePerCode: 2, PerUserLimit: 1}}); err != nil {
		t.Fatalf("CreatePromotion: %v", err)
	}
	tr.take()
	now := time.Now()
	res, err := s.Reserve(ctx, promo.ReserveRequest{ID: "s1", Code: "RTRS", UserID: "u", Now: now, TTL: time.Minute,
		IdempotencyKey: "rk1", RequestHash: "h"})
	if err != nil || res.Refused != "" || res.Reservation.ID != "s1" {
		t.Fatalf("Reserve = %+v, %v", res, err)
	}
	if got, want := tr.take(), `SELECT`; got != want {
		t.Errorf("reservation statements: %s, want %s", got, want)
	}
	res, err = s.Reserve(ctx, promo.ReserveRequest{ID: "s2", Code: "RTRS", UserID: "u", Now: now, TTL: time.Minute})
	if err != nil || res.Refused != promo.ReasonUserLimitReached {
		t.Fatalf("Reserve again for u = %+v, %v; want user_limit_reached", res, err)
	}
	if got, want := tr.take(), `SELECT`; got != want {
		t.Errorf("refused reservation statements: %s, want %s", got, want)
	}
	conf, err := s.Confirm(ctx, promo.ConfirmRequest{ReservationID: "s1", RedemptionID: "c1", EventID: "e1", OrderID: "o1",
		Now: time.Now()})
	if err != nil || conf.Refused != "" || conf.Redemption.Code != "RTRS" || conf.Redemption.UserID != "u" ||
		conf.Redemption.UsesLeft != 1 {
		t.Fatalf("Confirm = %+v, %v", conf, err)
	}
	if got, want := tr.take(), `SELECT`; got != want {
		t.Errorf("confirmation statements: %s, want %s", got, want)
	}
	again, err := s.Confirm(ctx, promo.ConfirmRequest{ReservationID: "s1", RedemptionID: "c2", EventID: "e2", OrderID: "o1",
		Now: time.Now()})
	if err != nil || !again.Replayed || again.Redemption.ID != "c1" {
		t.Fatalf("Confirm again = %+v, %v; want the replay of c1", again, err)
	}
	t.Logf("confirming a confirmed reservation: %s", tr.take())
	rb, replayed, err := s.Rollback(ctx, promo.RollbackRequest{RedemptionID: "c1", EventID: "e3", Reason: "r", Now: time.Now()})
	if err != nil || replayed || rb.RolledBackAt == nil || rb.CodeRelease != promo.CodeReleased {
		t.Fatalf("Rollback = %+v, %t, %v", rb, replayed, err)
	}
	if got, want := tr.take(), `SELECT`; got != want {
		t.Errorf("rollback statements: %s, want %s", got, want)
	}
	rb, replayed, err = s.Rollback(ctx, promo.RollbackRequest{RedemptionID: "c1", EventID: "e4", Now: time.Now()})
	if err != nil || !replayed || rb.ID != "c1" || rb.RollbackReason != "r" {
		t.Fatalf("Rollback again = %+v, %t, %v; want the redemption as it is", rb, replayed, err)
	}
	if _, _, err := s.Rollback(ctx, promo.RollbackRequest{RedemptionID: "none", EventID: "e5", Now: time.Now()}); promo.Code(err) != promo.ENotFound {
		t.Errorf("Rollback of no redemption: %v; want ENotFound", err)
	}
	if got, want := tr.take(), `SELECT SELECT`; got != want {
		t.Errorf("repeated and unknown rollback statements: %s, want %s", got, want)
	}
}

// The events the functions write are byte for byte what the store's
// statement path encodes (encoding/json), on text that encoding escapes:
// quotes, controls, HTML characters, U+2028, metadata with whitespace, an
// order with a discount, segments, country and first order.
func TestSettleEventPayloads(t *testing.T) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, postgres.Config{DSN: postgrestest.DSN(t), Schema: postgrestest.Schema(t)})
	s = storetest.Migrated(t, s, err)
	if _, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "v",
		Kind: promo.KindVanity, VanityCode: "EVPL", MaxUsagePerCode: 10, PerUserLimit: 5}}); err != nil {
		t.Fatalf("CreatePromotion: %v", err)
	}
	weird := "al\"i\\ce <&> \u2028\u2029 \x01\b\f\n\t é/"
	want := map[string][]byte{}
	first := false
	discount := promo.Amount(12500)
	out, err := s.Redeem(ctx, promo.RedeemRequest{ID: "r1", EventID: "ev-r1", Code: "EVPL", UserID: weird,
		OrderID: "<o&1>", Metadata: json.RawMessage("{ \"a\" : [1, 2.50, \"x y\\\" <&>\u2028\"],\n\t\"b\": {} }"),
		Now: time.Now(), Shopper: &promo.Shopper{Segments: []string{"vip", "b2b"}, Country: "de",
			Order: &promo.Order{Amount: 1234567, Currency: "eur", Discount: &discount}, FirstOrder: &first}})
	if err != nil || out.Refused != "" {
		t.Fatalf("Redeem = %+v, %v", out, err)
	}
	now := time.Now()
	r, _, err := s.Rollback(ctx, promo.RollbackRequest{RedemptionID: "r1", EventID: "ev-rb1", Reason: weird, Now: now})
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	zero := 0
	w, err := promo.NewRedemptionEvent(promo.EventRolledBack, "ev-rb1", now.UTC().Truncate(time.Microsecond), r, &zero)
	if err != nil {
		t.Fatal(err)
	}
	want["ev-rb1"] = w

	// A plain one (no order, no metadata, no reason), rolled back.
	if out, err := s.Redeem(ctx, promo.RedeemRequest{ID: "r2", EventID: "ev-r2", Code: "EVPL", UserID: "bob",
		Now: time.Now()}); err != nil || out.Refused != "" {
		t.Fatalf("Redeem = %+v, %v", out, err)
	}
	r, _, err = s.Rollback(ctx, promo.RollbackRequest{RedemptionID: "r2", EventID: "ev-rb2", Now: now})
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if w, err = promo.NewRedemptionEvent(promo.EventRolledBack, "ev-rb2", now.UTC().Truncate(time.Microsecond), r, &zero); err != nil {
		t.Fatal(err)
	}
	want["ev-rb2"] = w

	// A confirmation of a weird user's reservation.
	if res, err := s.Reserve(ctx, promo.ReserveRequest{ID: "s1", Code: "EVPL", UserID: weird, Now: time.Now(),
		TTL: time.Minute}); err != nil || res.Refused != "" {
		t.Fatalf("Reserve = %+v, %v", res, err)
	}
	conf, err := s.Confirm(ctx, promo.ConfirmRequest{ReservationID: "s1", RedemptionID: "c1", EventID: "ev-c1",
		OrderID: `"code":"","userId":""`, Metadata: json.RawMessage(`{"k": "<v>"}`), Now: time.Now()})
	if err != nil || conf.Refused != "" {
		t.Fatalf("Confirm = %+v, %v", conf, err)
	}
	one := 1
	if w, err = promo.NewRedemptionEvent(promo.EventRedeemed, "ev-c1", conf.Redemption.RedeemedAt, conf.Redemption, &one); err != nil {
		t.Fatal(err)
	}
	want["ev-c1"] = w

	for range 50 {
		evs, err := s.ClaimEvents(ctx, 100, time.Minute)
		if err != nil || len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			var e promo.RedemptionEvent
			if err := json.Unmarshal(ev.Payload, &e); err != nil {
				t.Fatalf("event payload %s: %v", ev.Payload, err)
			}
			if w, ok := want[e.EventID]; ok {
				if string(ev.Payload) != string(w) {
					t.Errorf("event %s payload\n got %s\nwant %s", e.EventID, ev.Payload, w)
				}
				delete(want, e.EventID)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("events never claimed: %v", want)
	}
	if !strings.Contains(weird, "\u2028") {
		t.Fatal("the test's text lost its U+2028")
	}
}

// Migrating down from 00015 drops its functions (the store then runs its
// transactions for reservations, confirmations and rollbacks: the contract
// suite covers both); up again brings them back.
func TestMigrationDownDropsSettleFunctions(t *testing.T) {
	postgrestest.DSN(t) // skip once, here, with the reason
	s := open(t)
	ctx, m, db := context.Background(), s.Migrations(), s.DB()
	functions := func(when, want string) {
		t.Helper()
		var got string
		err := db.QueryRow(ctx, `SELECT COALESCE(string_agg(proname || '/' || pronargs, ',' ORDER BY proname), '')
FROM pg_proc WHERE pronamespace = current_schema()::regnamespace
	AND (proname IN ('reserve_code', 'confirm_reservation', 'rollback_redemption') OR proname LIKE 'promo\_json\_%')`).Scan(&got)
		if err != nil || got != want {
			t.Fatalf("functions %s: %q, %v; want %q", when, got, err, want)
		}
	}
	const all = "confirm_reservation/11,promo_json_amount/1,promo_json_raw/1,promo_json_string/1,promo_json_time/1," +
		"reserve_code/7,rollback_redemption/7"
	functions("migrated", all)
	if err := m.DownTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	functions("down to 00014", "")
	if err := m.UpTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	functions("up again", all)
}
