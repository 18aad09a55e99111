package storetest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// MigrationDB is a database driven by plain SQL at a chosen schema version,
// for the tests of migrations that rewrite data: the store's migrations and
// its write pool. The SQL the tests send is the same for every dialect
// (literals only, no placeholders).
type MigrationDB struct {
	sqlstore.Migrations
	DB sqlstore.Querier
}

// RunMigrations runs the tests of the migrations that rewrite data on
// databases open returns: fresh, unmigrated.
func RunMigrations(t *testing.T, open func(t *testing.T) MigrationDB) {
	t.Run("CanonicalCodes", func(t *testing.T) { runCanonicalCodesMigration(t, open) })
	t.Run("Totals", func(t *testing.T) { runTotalsMigration(t, open) })
}

func (db MigrationDB) exec(ctx context.Context, query string) error {
	_, err := db.DB.Exec(ctx, query)
	return err
}

// strings runs a query of n text columns and returns each row's columns
// joined by spaces, sorted.
func (db MigrationDB) strings(ctx context.Context, n int, query string) ([]string, error) {
	rows, err := db.DB.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		r, ptrs := make([]string, n), make([]any, n)
		for i := range r {
			ptrs[i] = &r[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, strings.Join(r, " "))
	}
	slices.Sort(out)
	return out, rows.Err()
}

// oldPromotions are rows as releases before canonical codes wrote them
// (schema version 1): the codes of a generated format with prefix "WNTR-"
// stored with the dash, of a lower-case custom charset stored lower-case, and
// a vanity code holding separators.
const oldPromotions = `INSERT INTO promotions (name, kind, code_count, format, vanity_code, max_usage_per_code,
    per_user_limit, counter_name, seq_start, created_at) VALUES
 ('winter', 'generated', 3, '{"charset":"alnum","length":10,"prefix":"WNTR-","separator":"-","groupSize":4,"checkChar":true}',
  NULL, 1, 1, 'codes/v1:alnum:10:"WNTR-":"":check', 0, '2026-01-01T00:00:00'),
 ('lower', 'generated', 2, '{"charset":"23456789bcdfghjkmnpqrstvwxz","length":10,"checkChar":true}',
  NULL, 1, 1, 'codes/v1:"23456789bcdfghjkmnpqrstvwxz":10:"":"":check', 0, '2026-01-01T00:00:00'),
 ('vanity', 'vanity', 1, NULL, 'MEGA-DETH.21', 1000, 0, '', 0, '2026-01-01T00:00:00'),
 ('plain', 'generated', 1, '{"charset":"alnum","length":10,"checkChar":true}',
  NULL, 1, 1, 'codes/v1:alnum:10:"":"":check', 0, '2026-01-01T00:00:00')`

// runCanonicalCodesMigration checks migration 00006 (canonical codes): on a
// database at version 1 holding old-style codes (written with plain SQL
// that every dialect takes: literals, CAST to varchar, no || or +), migrating up rewrites every
// code and vanity code to its canonical form and keeps everything else; two
// codes with one canonical form make it fail, naming them, with nothing
// changed. open returns a fresh, unmigrated database.
func runCanonicalCodesMigration(t *testing.T, open func(t *testing.T) MigrationDB) {
	t.Run("Rewrite", func(t *testing.T) {
		ctx := context.Background()
		db := open(t)
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(db.UpTo(ctx, 1))
		must(db.exec(ctx, oldPromotions))
		must(db.exec(ctx, `INSERT INTO counters (name, next) VALUES
			('codes/v1:alnum:10:"WNTR-":"":check', 3), ('codes/v1:"23456789bcdfghjkmnpqrstvwxz":10:"":"":check', 2),
			('codes/v1:alnum:10:"":"":check', 1)`))
		must(db.exec(ctx, `INSERT INTO codes (code, promotion_id, used)
			SELECT c.code, p.id, c.used FROM promotions p JOIN (
			          SELECT 'winter' AS name, 'WNTR-7KQ2M9XDP3X' AS code, 1 AS used
			UNION ALL SELECT 'winter', 'WNTR-22M5H4HJVDA', 0
			UNION ALL SELECT 'winter', 'WNTR-ZZZZZZZZZZZ', 0
			UNION ALL SELECT 'lower', '22b4d96hc4d', 1
			UNION ALL SELECT 'lower', 'x9z8b7c6d5f', 0
			UNION ALL SELECT 'vanity', 'MEGA-DETH.21', 17
			UNION ALL SELECT 'plain', '222M5H4HJVD', 0) c ON c.name = p.name`))
		// The audit trail (migration 00002) of a release before canonical codes.
		must(db.UpTo(ctx, 2))
		must(db.exec(ctx, `INSERT INTO redemptions (id, promotion_id, code, user_id, redeemed_at, uses_left)
			SELECT 'r1', id, 'WNTR-7KQ2M9XDP3X', 'u1', '2026-01-02T00:00:00', 0 FROM promotions WHERE name = 'winter'`))
		must(db.UpTo(ctx, 0))

		got, err := db.strings(ctx, 2, `SELECT id, code FROM redemptions`)
		must(err)
		if want := []string{"r1 WNTR7KQ2M9XDP3X"}; !slices.Equal(got, want) {
			t.Errorf("redemptions after the migration: %q, want %q", got, want)
		}
		got, err = db.strings(ctx, 3, `SELECT p.name, c.code, CAST(c.used AS varchar(20)) FROM codes c JOIN promotions p ON p.id = c.promotion_id`)
		must(err)
		want := []string{
			"lower 22B4D96HC4D 1", "lower X9Z8B7C6D5F 0", "plain 222M5H4HJVD 0", "vanity MEGADETH21 17",
			"winter WNTR22M5H4HJVDA 0", "winter WNTR7KQ2M9XDP3X 1", "winter WNTRZZZZZZZZZZZ 0",
		}
		if !slices.Equal(got, want) {
			t.Errorf("codes after the migration:\n got %q\nwant %q", got, want)
		}
		got, err = db.strings(ctx, 3, `SELECT name, coalesce(vanity_code, '-'), counter_name FROM promotions`)
		must(err)
		want = []string{
			`lower - codes/v1:"23456789bcdfghjkmnpqrstvwxz":10:"":"":check`, `plain - codes/v1:alnum:10:"":"":check`,
			"vanity MEGADETH21 ", `winter - codes/v1:alnum:10:"WNTR-":"":check`,
		}
		if !slices.Equal(got, want) {
			t.Errorf("promotions after the migration (counter names are kept: old promotions keep their counter):\n got %q\nwant %q", got, want)
		}
		got, err = db.strings(ctx, 1, `SELECT name FROM counters`)
		must(err)
		if len(got) != 3 {
			t.Errorf("counters after the migration: %q, want the 3 untouched", got)
		}
		// Migrating again is a no-op.
		must(db.UpTo(ctx, 0))
	})

	t.Run("ConflictFailsAndChangesNothing", func(t *testing.T) {
		ctx := context.Background()
		db := open(t)
		if err := db.UpTo(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := db.exec(ctx, oldPromotions); err != nil {
			t.Fatal(err)
		}
		// The example: a vanity code with a dash beside the generated
		// code it spells, and a lower-case generated code beside an upper-case
		// vanity one.
		if err := db.exec(ctx, `INSERT INTO codes (code, promotion_id, used)
			SELECT c.code, p.id, 0 FROM promotions p JOIN (
			          SELECT 'plain' AS name, '222M5H4HJVD' AS code
			UNION ALL SELECT 'vanity', '222M-5H4HJVD'
			UNION ALL SELECT 'lower', '22b4d96hc4d'
			UNION ALL SELECT 'vanity', '22B4D96HC4D'
			UNION ALL SELECT 'winter', 'WNTR-7KQ2M9XDP3X') c ON c.name = p.name`); err != nil {
			t.Fatal(err)
		}
		err := db.UpTo(ctx, 0)
		if err == nil {
			t.Fatal("migration merged two codes with one canonical form")
		}
		t.Logf("migration refused as it should: %v", err)
		for _, want := range []string{"canonical codes: the codes 222M-5H4HJVD and 222M5H4HJVD (2 codes in all) " +
			"would become the same code 222M5H4HJVD", "docs/store.md"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("migration error does not say %q: %v", want, err)
			}
		}
		got, qerr := db.strings(ctx, 1, `SELECT code FROM codes`)
		if qerr != nil {
			t.Fatal(qerr)
		}
		if want := []string{"222M-5H4HJVD", "222M5H4HJVD", "22B4D96HC4D", "22b4d96hc4d", "WNTR-7KQ2M9XDP3X"}; !slices.Equal(got, want) {
			t.Errorf("codes after the failed migration: %q, want them untouched %q", got, want)
		}
		// Once the operator resolved the conflicts, it goes through.
		if err := db.exec(ctx, `DELETE FROM codes WHERE code IN ('222M-5H4HJVD', '22B4D96HC4D')`); err != nil {
			t.Fatal(err)
		}
		if err := db.UpTo(ctx, 0); err != nil {
			t.Fatalf("migration after the conflicts were removed: %v", err)
		}
		got, qerr = db.strings(ctx, 1, `SELECT code FROM codes`)
		if qerr != nil {
			t.Fatal(qerr)
		}
		if want := []string{"222M5H4HJVD", "22B4D96HC4D", "WNTR7KQ2M9XDP3X"}; !slices.Equal(got, want) {
			t.Errorf("codes after the migration: %q, want %q", got, want)
		}
	})
}

// runTotalsMigration checks migration 00008 (promotion totals): on a
// database at version 7 holding redemptions (some rolled back, two on one
// code) and outbox events, migrating up backfills promotion_totals from the
// audit trail and marks every existing event counted (so that the rollup
// does not count them again); migrating down removes the table and the
// column and keeps the events; up again gives the same totals.
func runTotalsMigration(t *testing.T, open func(t *testing.T) MigrationDB) {
	ctx := context.Background()
	db := open(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.UpTo(ctx, 7))
	must(db.exec(ctx, oldPromotions))
	must(db.exec(ctx, `INSERT INTO redemptions (id, promotion_id, code, user_id, redeemed_at, uses_left)
		SELECT r.id, p.id, r.code, r.user_id, '2026-01-02T00:00:00', 0 FROM promotions p JOIN (
		          SELECT 'r1' AS id, 'winter' AS name, 'WNTR7KQ2M9XDP3X' AS code, 'u1' AS user_id
		UNION ALL SELECT 'r2', 'winter', 'WNTR7KQ2M9XDP3X', 'u2'
		UNION ALL SELECT 'r3', 'winter', 'WNTR22M5H4HJVDA', 'u3'
		UNION ALL SELECT 'r4', 'vanity', 'MEGADETH21', 'u1'
		UNION ALL SELECT 'r5', 'vanity', 'MEGADETH21', 'u2') r ON r.name = p.name`))
	must(db.exec(ctx, `UPDATE redemptions SET rolled_back_at = '2026-01-03T00:00:00' WHERE id IN ('r3', 'r5')`))
	must(db.exec(ctx, `INSERT INTO events (stream, event_key, payload, created_at) VALUES
		('redemptions', '1', '{"v":1,"type":"redemption.created","promotionId":"1"}', '2026-01-02T00:00:00'),
		('redemptions', '1', '{"v":1,"type":"promotion.updated","promotionId":"1"}', '2026-01-02T00:00:00')`))

	totals := `SELECT p.name, CAST(t.redemptions AS varchar(20)), CAST(t.codes_redeemed AS varchar(20)),
		CAST(t.rolled_back AS varchar(20)) FROM promotion_totals t JOIN promotions p ON p.id = t.promotion_id`
	want := []string{"vanity 1 1 1", "winter 2 1 1"}
	check := func(when string) {
		t.Helper()
		got, err := db.strings(ctx, 4, totals)
		must(err)
		if !slices.Equal(got, want) {
			t.Errorf("promotion_totals %s: %q, want %q (live redemptions, codes with one, rolled back)", when, got, want)
		}
		got, err = db.strings(ctx, 1, `SELECT CAST(count(*) AS varchar(20)) FROM events WHERE counted_at IS NULL`)
		must(err)
		if !slices.Equal(got, []string{"0"}) {
			t.Errorf("uncounted events %s: %q, want none (the backfill counted them)", when, got)
		}
	}
	must(db.UpTo(ctx, 8))
	check("after migrating up")

	must(db.DownTo(ctx, 7))
	if _, err := db.strings(ctx, 1, `SELECT promotion_id FROM promotion_totals`); err == nil {
		t.Error("promotion_totals exists after migrating down")
	}
	if _, err := db.strings(ctx, 1, `SELECT counted_at FROM events`); err == nil {
		t.Error("events.counted_at exists after migrating down")
	}
	got, err := db.strings(ctx, 1, `SELECT CAST(count(*) AS varchar(20)) FROM events`)
	must(err)
	if !slices.Equal(got, []string{"2"}) {
		t.Errorf("events after migrating down: %q, want the 2 kept", got)
	}

	must(db.UpTo(ctx, 8))
	check("after migrating up again")
}
