package sqlstore

import (
	"reflect"
	"strings"
	"testing"
)

// Compose rebinds every shared statement to the dialect's placeholders and
// clock, and a dialect's own text wins; rebind writes RETURNING, LIMIT and
// words as the Rebind says.
func TestCompose(t *testing.T) {
	own := Statements{Now: "SELECT own", Purge: map[string]string{"codes": "own codes"},
		ReserveOnce: "SELECT reserve"}
	s := Compose(Rebind{Prefix: "@p", Now: "CLOCK()", Top: true, Flag: func(p string) string { return "FLAG(" + p + ")" }}, own)
	if s.Now != "SELECT own" || s.Purge["codes"] != "own codes" || s.ReserveOnce != "SELECT reserve" {
		t.Errorf("own text lost: Now %q, Purge[codes] %q, ReserveOnce %q", s.Now, s.Purge["codes"], s.ReserveOnce)
	}
	if want := "DELETE TOP (@p2) FROM reservations WHERE promotion_id = @p1"; s.Purge["reservations"] != want {
		t.Errorf("Purge[reservations] = %q, want %q", s.Purge["reservations"], want)
	}
	if want := "SELECT TOP (@p4) " + ReservationCols + ` FROM reservations
WHERE code = @p1 AND promotion_id = @p2 AND status = 'held' AND expires_at > @p3 ORDER BY expires_at`; s.CodeReservations != want {
		t.Errorf("CodeReservations with TOP = %q, want %q", s.CodeReservations, want)
	}
	if want := "SELECT FLAG(delete_requested_at IS NOT NULL), FLAG(cancelled_at IS NOT NULL)\nFROM promotions WHERE id = @p1"; s.PromotionState != want {
		t.Errorf("PromotionState with Flag = %q, want %q", s.PromotionState, want)
	}
	if !strings.Contains(s.CancelBatch, "updated_at = CLOCK()") {
		t.Errorf("CancelBatch keeps the shared clock: %s", s.CancelBatch)
	}
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		if q := v.Field(i); q.Kind() == reflect.String && (placeholder.MatchString(q.String()) || strings.Contains(q.String(), "now()") ||
			strings.ContainsAny(q.String(), "\x01\x02")) {
			t.Errorf("%s keeps a shared placeholder, clock or flag mark: %s", v.Type().Field(i).Name, q.String())
		}
	}
	r := Rebind{Prefix: "@p", Now: "CLOCK()", Top: true, Replace: []string{"active = 0", "active = false"},
		Output: map[string]string{"codes.used": "int", "reservations.id": "varchar(36)"}}
	for name, c := range map[string]struct{ got, want string }{
		"ReleaseCode": {r.rebind(portable.ReleaseCode), `DECLARE @t TABLE (used int);
UPDATE codes SET used = used - 1 OUTPUT inserted.used INTO @t WHERE code = @p1 AND promotion_id = @p2 AND used > 0;
SELECT used FROM @t;`},
		"MarkReleased": {r.rebind(portable.MarkReleased), `DECLARE @t TABLE (id varchar(36));
UPDATE reservations SET status = 'released', settled_at = @p2 OUTPUT inserted.id INTO @t
WHERE id = @p1 AND status = 'held';
SELECT ` + ReservationCols + ` FROM reservations WHERE id IN (SELECT id FROM @t);`},
		"SweepReservations": {r.rebind(portable.SweepReservations), `DELETE TOP (@p2) FROM reservations WHERE expires_at < @p1`},
		"RequestDeletion": {r.rebind(portable.RequestDeletion), `UPDATE promotions SET delete_requested_at = @p2, active = false
WHERE id = @p1 AND delete_requested_at IS NULL`},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", name, c.got, c.want)
		}
	}
	if p := Compose(Rebind{Prefix: "$", Now: "now()"}, Statements{}); p.InsertAudit != portable.InsertAudit {
		t.Errorf("PostgreSQL's InsertAudit = %q, want the shared text", p.InsertAudit)
	}
	if portable.Purge["codes"] == "own codes" {
		t.Error("Compose changed the shared Purge map")
	}
}
