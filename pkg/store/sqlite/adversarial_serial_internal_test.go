//go:build integration

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// serialWorld is one database of TestAdversarialGroupVsSerial: the store,
// its file and a pool of the test's own on it.
type serialWorld struct {
	s    *Store
	path string
	db   *sql.DB
}

// openWorld opens a fresh database, grouped or with groups turned off.
func openWorld(t *testing.T, grouped bool) serialWorld {
	t.Helper()
	path := filepath.Join(t.TempDir(), "promocodes.db")
	cfg := Config{Path: path}
	if !grouped {
		cfg.RedeemGroup = -1
	}
	s, err := Open(context.Background(), cfg)
	s = storetest.Migrated(t, s, err)
	return serialWorld{s, path, rawDB(t, path)}
}

// seedWorld writes the same state on w whatever the store: promotions whose
// codes meet limits, holds, rules, a deactivation and a revocation, and
// redemptions made before the group (one rolled back, one refused with a
// key, one whose id later members reuse). Everything it makes has fixed ids
// and times, so two worlds seeded alike hold the same rows.
func seedWorld(t *testing.T, w serialWorld, t0 time.Time) {
	t.Helper()
	ctx := context.Background()
	vanity := func(code string, maxUses, perUser int, edit func(*promo.NewPromotion)) promo.Promotion {
		np := promo.NewPromotion{Promotion: promo.Promotion{Name: code, Kind: promo.KindVanity, VanityCode: code,
			MaxUsagePerCode: maxUses, PerUserLimit: perUser}}
		if edit != nil {
			edit(&np)
		}
		p, _, err := w.s.CreatePromotion(ctx, np)
		if err != nil {
			t.Fatalf("create %s: %v", code, err)
		}
		return p
	}
	vanity("DA", 1000, 1, nil)
	vanity("DB", 3, 0, nil)
	// A generated promotion of 4 codes, max 5 uses each, 2 per user.
	gen, _, err := w.s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "gen",
		Kind: promo.KindGenerated, CodeCount: 4, Format: &promo.Format{Charset: "numeric", Length: 15, Prefix: "C"},
		MaxUsagePerCode: 5, PerUserLimit: 2, CounterName: "serial-gen"}, BatchSize: 4, SeqLimit: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := w.s.IncompleteBatches(ctx, gen.ID)
	if err != nil || len(bs) != 1 {
		t.Fatalf("batches of the generated promotion: %v, %v", bs, err)
	}
	var codes []byte
	for i := range 4 {
		codes = append(codes, genCode(i)...)
	}
	if _, err := w.s.CommitChunk(ctx, promo.Chunk{Batch: bs[0].Ref(), Count: 4, Codes: codes, CodeLen: len(genCode(0)),
		CounterName: "serial-gen-r", Replace: func(dst []byte, seq uint64) []byte { return fmt.Appendf(dst, "R%015d", seq) }}); err != nil {
		t.Fatal(err)
	}
	vanity("DD", 4, 1, nil)
	for i, u := range []string{"h1", "h2"} {
		out, err := w.s.Reserve(ctx, promo.ReserveRequest{ID: fmt.Sprintf("RES-%d", i), Code: "DD", UserID: u, Now: t0,
			TTL: time.Hour})
		if err != nil || out.Refused != "" {
			t.Fatalf("reserve DD for %s: %+v, %v", u, out, err)
		}
	}
	vanity("DE", 100, 0, func(np *promo.NewPromotion) {
		np.Eligibility = &promo.Eligibility{Segments: []string{"vip"}}
	})
	df := vanity("DF", 100, 0, nil)
	if err := w.s.SetPromotionActive(ctx, df.ID, false); err != nil {
		t.Fatal(err)
	}
	vanity("DG", 100, 0, nil)
	vanity("DH", 100, 0, nil) // its rules are made unreadable in the variant "rules"
	later, past := t0.Add(time.Hour), t0.Add(-time.Hour)
	vanity("DI", 100, 0, func(np *promo.NewPromotion) { np.StartsAt = &later })
	earlier := t0.Add(-2 * time.Hour)
	vanity("DJ", 100, 0, func(np *promo.NewPromotion) { np.StartsAt, np.ExpiresAt = &earlier, &past })
	dk := vanity("DK", 100, 0, nil)
	if _, err := w.s.RequestDeletion(ctx, promo.AuditEntry{ID: "AUDIT-DELETE", At: t0, Actor: "t",
		Action: promo.ActionDeleteRequested, PromotionID: dk.ID}); err != nil {
		t.Fatal(err)
	}
	// DM: a hold that expires between the group's members (their times are
	// t0 + 1 ms, 2 ms, ...: live for the first 30).
	vanity("DM", 2, 1, nil)
	if out, err := w.s.Reserve(ctx, promo.ReserveRequest{ID: "RES-DM", Code: "DM", UserID: "h3", Now: t0,
		TTL: 30 * time.Millisecond}); err != nil || out.Refused != "" {
		t.Fatalf("reserve DM: %+v, %v", out, err)
	}
	vanity("DL", 100, 2, nil)
	if _, err := w.db.Exec(`UPDATE codes SET user_id = 'owner' WHERE code = 'DL'`); err != nil { // bound to its owner
		t.Fatal(err)
	}
	if _, _, err := w.s.RevokeCode(ctx, promo.RevokeRequest{Code: "DG", Reason: "leaked", Actor: "t", Now: t0,
		AuditID: "AUDIT-REVOKE"}); err != nil {
		t.Fatal(err)
	}
	// Before the group: a keyed redemption then rolled back, a keyed
	// refusal, and a redemption whose id later members reuse.
	pre := serialReq(t0, "PRE", "DA", "pre", "kpre")
	if out, err := w.s.Redeem(ctx, pre); err != nil || out.Refused != "" {
		t.Fatalf("pre: %+v, %v", out, err)
	}
	if _, _, err := w.s.Rollback(ctx, promo.RollbackRequest{RedemptionID: "PRE", EventID: "PRE-RB", Reason: "refund",
		Now: t0}); err != nil {
		t.Fatal(err)
	}
	if out, err := w.s.Redeem(ctx, serialReq(t0, "REF", "DF", "x", "kref")); err != nil || out.Refused != promo.ReasonDeactivated {
		t.Fatalf("refused before: %+v, %v", out, err)
	}
	if out, err := w.s.Redeem(ctx, serialReq(t0, "TAKEN", "DA", "taken", "")); err != nil || out.Refused != "" {
		t.Fatalf("taken: %+v, %v", out, err)
	}
}

// poisonTriggers make one statement of a member fail (RAISE(ABORT): the
// statement is undone, the transaction goes on) by its user: the event's
// insert, the audit row's, a segment's, the allowance's upsert, and the
// idempotency record's refusal.
var poisonTriggers = []string{
	`CREATE TRIGGER poison_event BEFORE INSERT ON events
	WHEN NEW.payload LIKE '%"userId":"poison-ev%' BEGIN SELECT RAISE(ABORT, 'poisoned event'); END`,
	`CREATE TRIGGER poison_audit BEFORE INSERT ON redemptions
	WHEN NEW.user_id = 'poison-audit' BEGIN SELECT RAISE(ABORT, 'poisoned audit row'); END`,
	`CREATE TRIGGER poison_segment BEFORE INSERT ON redemption_segments
	WHEN NEW.segment = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned segment'); END`,
	`CREATE TRIGGER poison_allowance_insert BEFORE INSERT ON user_uses
	WHEN NEW.user_id = 'poison-uu' BEGIN SELECT RAISE(ABORT, 'poisoned allowance'); END`,
	`CREATE TRIGGER poison_allowance_update BEFORE UPDATE ON user_uses
	WHEN NEW.user_id = 'poison-uu' BEGIN SELECT RAISE(ABORT, 'poisoned allowance'); END`,
	`CREATE TRIGGER poison_outcome BEFORE UPDATE ON idempotency_keys
	WHEN NEW.idem_key = 'kpoison-ref' AND NEW.refused IS NOT NULL BEGIN SELECT RAISE(ABORT, 'poisoned outcome'); END`,
}

func genCode(i int) string { return fmt.Sprintf("C%015d", i) }

// serialReq is a redemption with fixed ids and time (key "": none).
func serialReq(t0 time.Time, id, code, user, key string) promo.RedeemRequest {
	r := promo.RedeemRequest{ID: id, EventID: "EV-" + id, Code: code, UserID: user, Now: t0}
	if key != "" {
		r.IdempotencyKey, r.RequestHash = key, "h:"+code+":"+user
	}
	return r
}

// groupVsSerialReqs are the members of one group, in order, and the
// variant's failing members: "" none; "end" a member whose id is taken (its
// row fails in the group's last multi-row insert); "replay" such a member
// and its key again (the replay writes the kept rows first: that insert
// fails); "twice" two new members with one id; "shopper" a member with
// shopper fields reusing a kept member's id; "rules" members of a
// promotion whose rules cannot be read; "metadata" a member whose metadata
// is not JSON (its event cannot be encoded); "large" 80 more members,
// 128 in all; "poison" members whose statements the test's triggers make
// fail (poisonTriggers).
func groupVsSerialReqs(t0 time.Time, variant string) []promo.RedeemRequest {
	var reqs []promo.RedeemRequest
	n := 0
	add := func(code, user, key string, edit ...func(*promo.RedeemRequest)) {
		n++
		r := serialReq(t0.Add(time.Duration(n)*time.Millisecond), fmt.Sprintf("G%03d", n), code, user, key)
		for _, e := range edit {
			e(&r)
		}
		reqs = append(reqs, r)
	}
	vip := func(segs ...string) func(*promo.RedeemRequest) {
		return func(r *promo.RedeemRequest) {
			yes := true
			r.Shopper = &promo.Shopper{Segments: segs, Country: "FR", FirstOrder: &yes,
				Order: &promo.Order{Amount: 1200, Currency: "EUR"}}
		}
	}
	same := func(i int) func(*promo.RedeemRequest) { // member i's request again, ids of its own
		return func(r *promo.RedeemRequest) {
			id, ev := r.ID, r.EventID
			*r = reqs[i]
			r.ID, r.EventID = id, ev
		}
	}
	withID := func(id string) func(*promo.RedeemRequest) { return func(r *promo.RedeemRequest) { r.ID = id } }

	add("DA", "u0", "k0")               // redeemed
	add("DA", "u0", "k1")               // user_limit_reached
	add("DA", "u0", "k0", same(0))      // replay of 0
	add("DA", "other", "k0")            // idempotency_conflict
	add("DB", "u1", "")                 // redeemed
	add("DB", "u2", "k5")               // redeemed
	add("DB", "u3", "", vip("vip"))     // redeemed, shopper path
	add("DB", "u4", "")                 // code_exhausted
	add("DB", "u4", "k8")               // code_exhausted, recorded
	add("DB", "u4", "k8", same(8))      // replay of the refusal
	add(genCode(0), "multi", "")        // redeemed
	add(genCode(1), "multi", "km")      // redeemed
	add(genCode(2), "multi", "")        // user_limit_reached (2 per user)
	add(genCode(3), "multi", "", vip()) // user_limit_reached, shopper path
	add(genCode(0), "m2", "")           // redeemed
	add("DM", "m1", "")                 // redeemed: 1 use + the live hold of 2
	add("DM", "m2", "km2")              // code_exhausted: the hold is still live
	add("DD", "h1", "")                 // user_limit_reached: h1's hold
	add("DD", "u5", "")                 // redeemed
	add("DD", "u6", "k17")              // redeemed
	add("DD", "u7", "")                 // code_exhausted: 2 uses + 2 holds
	add("DE", "u8", "")                 // not_eligible (no shopper fields)
	add("DE", "u9", "k20", vip("vip"))  // redeemed, shopper path
	add("DE", "u9", "k20", same(22))    // replay
	add("DE", "u10", "", vip("basic"))  // not_eligible
	add("DF", "u11", "")                // deactivated
	add("DF", "x", "kref")              // replay of the refusal before the group
	add("DG", "u12", "")                // revoked
	add("NOSUCH", "u13", "k26")         // code_not_found
	add("DA", "pre", "kpre")            // replay of the rolled-back redemption
	add("DA", "u14", "kpre")            // idempotency_conflict
	add("DM", "m3", "")                 // redeemed: the hold has expired at this member's time
	add("DM", "h3", "")                 // code_exhausted: used up (2 of 2)
	add("DI", "u16", "")                // not_started
	add("DJ", "u17", "k-dj")            // expired
	add("DK", "u18", "")                // promotion_deleted
	add("DL", "intruder", "k-dl")       // not_your_code
	add("DL", "owner", "")              // redeemed
	add("DL", "intruder", "k-dl")       // replay of the refusal
	add("DA", "u15", "k29", func(r *promo.RedeemRequest) {
		r.OrderID, r.Metadata, r.ClientAddr, r.UserAgent = "o-29", json.RawMessage(`{"a":1}`), "10.0.0.1", "ua/1"
	})
	for i := range 8 {
		key := ""
		if i%2 == 0 {
			key = fmt.Sprintf("kt%d", i)
		}
		if i == 5 {
			add("DA", fmt.Sprintf("t%d", i), key, vip("vip"))
		} else {
			add("DA", fmt.Sprintf("t%d", i), key)
		}
	}
	switch variant {
	case "end":
		add("DA", "dupend", "kdupend", withID("TAKEN"))
		add("DA", "after", "")
	case "replay":
		add("DA", "dupkey", "kdup", withID("TAKEN"))
		add("DA", "dupkey", "kdup") // same request, its own id: a replay in the group, a redemption if the first failed
		add("DA", "after", "")
	case "twice":
		add("DA", "tw1", "", withID("TWICE"))
		add("DA", "tw2", "ktw2", withID("TWICE"))
		add("DA", "after", "")
	case "shopper":
		add("DA", "sh", "ksh", withID("G001"), vip("vip")) // member 0's id, on the shopper path
		add("DA", "after", "")
	case "rules": // DH's rules unreadable: fails after taking the use
		add("DH", "bad1", "kbad1")
		add("DA", "after", "")
		add("DH", "bad2", "", vip("vip"))
		add("DA", "after2", "kafter2")
	case "large": // 128 members (the most a group takes): the kept rows span every insert size
		for i := range 80 {
			key := ""
			if i%3 == 0 {
				key = fmt.Sprintf("kl%d", i)
			}
			if i == 77 {
				add("DA", fmt.Sprintf("l%d", i), key, vip("vip"))
			} else {
				add("DA", fmt.Sprintf("l%d", i), key)
			}
		}
	case "poison": // statements made to fail by the test's triggers (poisonTriggers), between others
		add("DA", "poison-ev", "kpe") // its event (a kept row: the multi-row insert)
		add("DA", "p1", "")
		add("DA", "poison-ev", "kpe", same(len(reqs)-2))     // the same request: fails again
		add("DA", "poison-audit", "")                        // its audit row
		add("DE", "poison-seg", "kps", vip("vip", "poison")) // a segment, after its audit row and event
		add("DB", "poison-uu", "kpu")                        // its allowance, after the code's use (DB is used up: refused first)
		add("DA", "poison-uu", "kpu2")                       // its allowance, after the code's use
		add("DF", "poison-ref", "kpoison-ref")               // refused (deactivated): its record's outcome fails
		add("DA", "p2", "k-p2")
		add("DA", "poison-ev2", "", vip("vip")) // its event, on the shopper path
		add("DA", "p3", "")
	case "metadata": // metadata that is not JSON: its event fails to encode, after the use
		add("DA", "meta", "kmeta", func(r *promo.RedeemRequest) { r.Metadata = json.RawMessage(`{"a":`) })
		add("DA", "after", "")
	}
	return reqs
}

// answerOf is what a caller can tell of a result: the outcome as the API
// encodes it, or the error's kind and reason.
func answerOf(r promo.RedeemResult) string {
	if r.Err != nil {
		return fmt.Sprintf("error %s/%s", promo.Code(r.Err), promo.ReasonOf(r.Err))
	}
	b, err := json.Marshal(r.Outcome)
	if err != nil {
		return "unencodable: " + err.Error()
	}
	return string(b)
}

// dumpWorld is the rows a redemption writes, each table's in a fixed order
// (the events from seq > after, in seq order).
func dumpWorld(t *testing.T, db *sql.DB, after int64) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, q := range map[string]string{
		"codes":       `SELECT code, promotion_id, used, revoked_at FROM codes ORDER BY code`,
		"user_uses":   `SELECT * FROM user_uses ORDER BY promotion_id, user_id`,
		"redemptions": `SELECT * FROM redemptions ORDER BY id`,
		"segments":    `SELECT * FROM redemption_segments ORDER BY 1, 2, 3`,
		"keys":        `SELECT idem_key, request_hash, refused, redemption_id, reservation_id, created_at FROM idempotency_keys ORDER BY idem_key`,
		"events":      fmt.Sprintf(`SELECT stream, event_key, payload FROM events WHERE seq > %d ORDER BY seq`, after),
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			parts := make([]string, len(cols))
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				parts[i] = fmt.Sprintf("%s=%v", cols[i], v)
			}
			out[name] = append(out[name], strings.Join(parts, " "))
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func maxSeq(t *testing.T, db *sql.DB) int64 {
	var n int64
	if err := db.QueryRow(`SELECT COALESCE(max(seq), 0) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAdversarialGroupVsSerial: one group mixing every path a redemption
// takes (limits of the code and of the user across codes, live holds,
// rules and shopper fields, a deactivated and a revoked code, an unknown
// code, not started, expired, being deleted, bound to another user, keys
// replayed, refused, conflicting, a key of a rolled-back
// redemption) written by the group commit, against the same requests
// redeemed one at a time by a store without groups, from the same state:
// every answer, and every row written (codes, allowances, audit rows,
// segments, idempotency records, events in their order with their
// payloads), must be the same. Variants add failing members: an id taken
// (its row fails in the group's last multi-row insert, or in the insert a
// later replay of its key runs first), two members with one id, a member
// with shopper fields reusing a kept member's id, members of a promotion
// whose rules cannot be read, a member whose event cannot be encoded. Then
// a next group replays every keyed request of the first (across groups:
// the replay reads committed rows; a failed member's retry redeems),
// conflicts on each third key, and new members: compared the same way.
func TestAdversarialGroupVsSerial(t *testing.T) {
	for _, variant := range []string{"", "large", "end", "replay", "twice", "shopper", "rules", "metadata", "poison"} {
		t.Run("v="+variant, func(t *testing.T) {
			t0 := time.Now().UTC().Truncate(time.Millisecond)
			serial, grouped := openWorld(t, false), openWorld(t, true)
			seedWorld(t, serial, t0)
			seedWorld(t, grouped, t0)
			if variant == "poison" {
				for _, w := range []serialWorld{serial, grouped} {
					for _, trig := range poisonTriggers {
						if _, err := w.db.Exec(trig); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if variant == "rules" {
				for _, w := range []serialWorld{serial, grouped} {
					if _, err := w.db.Exec(`UPDATE promotions SET eligibility = '{"segments":' WHERE vanity_code = 'DH'`); err != nil {
						t.Fatal(err)
					}
				}
			}
			ctx := context.Background()
			// compare redeems reqs after lead, one at a time on serial and as
			// one group on grouped, and compares answers and rows.
			compare := func(round string, lead promo.RedeemRequest, reqs []promo.RedeemRequest) []promo.RedeemResult {
				after := [2]int64{maxSeq(t, serial.db), maxSeq(t, grouped.db)}
				want := make([]promo.RedeemResult, len(reqs))
				if out, err := serial.s.Redeem(ctx, lead); err != nil || out.Refused != "" {
					t.Fatalf("lead: %+v, %v", out, err)
				}
				for i, r := range reqs {
					want[i].Outcome, want[i].Err = serial.s.Redeem(ctx, r)
				}
				sp0, _ := grouped.s.GroupStatements()
				got, l := inOneGroupWith(t, grouped.s, grouped.path, lead, reqs)
				if l.Err != nil || l.Outcome.Refused != "" {
					t.Errorf("lead: %+v, %v", l.Outcome, l.Err)
				}
				sp1, _ := grouped.s.GroupStatements()
				diffs := 0
				for i := range reqs {
					if a, b := answerOf(got[i]), answerOf(want[i]); a != b {
						diffs++
						t.Errorf("%s member %d (%s %s key %q): grouped %s (%v)\n\tserial %s (%v)", round, i, reqs[i].Code,
							reqs[i].UserID, reqs[i].IdempotencyKey, a, got[i].Err, b, want[i].Err)
					}
				}
				ws, gs := dumpWorld(t, serial.db, after[0]), dumpWorld(t, grouped.db, after[1])
				for _, table := range []string{"codes", "user_uses", "redemptions", "segments", "keys", "events"} {
					w, g := ws[table], gs[table]
					if strings.Join(w, "\n") == strings.Join(g, "\n") {
						continue
					}
					diffs++
					t.Errorf("%s %s: %d rows grouped, %d serial", round, table, len(g), len(w))
					for i := range max(len(w), len(g)) {
						var a, b string
						if i < len(g) {
							a = g[i]
						}
						if i < len(w) {
							b = w[i]
						}
						if a != b {
							t.Errorf("%s %s row %d:\n\tgrouped %s\n\tserial  %s", round, table, i, a, b)
						}
					}
				}
				errs := 0
				for _, r := range got {
					if r.Err != nil {
						errs++
					}
				}
				outcome := fmt.Sprintf("answers (%d errors) and rows as serial", errs)
				if diffs > 0 {
					outcome = fmt.Sprintf("FAILED: %d differences from serial", diffs)
				}
				t.Logf("adversarial: %s group of %d mixed members vs one at a time, failing members %q [sqlite]: %s "+
					"(%d savepoints, %d events)", round, len(reqs), variant, outcome, sp1-sp0, len(gs["events"]))
				return got
			}
			reqs := groupVsSerialReqs(t0, variant)
			compare("first", serialReq(t0, "LEAD", "DA", "lead", ""), reqs)
			// The next group: every keyed request of the first again (each
			// key's replay across groups, or, for a member that failed, its
			// retry), another request on each key (a conflict), new members.
			var next []promo.RedeemRequest
			for i, r := range reqs {
				if r.IdempotencyKey == "" {
					continue
				}
				again := r
				again.ID, again.EventID = fmt.Sprintf("N%03d", i), fmt.Sprintf("EV-N%03d", i)
				next = append(next, again)
				if i%3 == 0 {
					other := serialReq(t0, fmt.Sprintf("O%03d", i), r.Code, "someone-else", r.IdempotencyKey)
					next = append(next, other)
				}
			}
			for i := range 6 {
				next = append(next, serialReq(t0, fmt.Sprintf("F%03d", i), "DA", fmt.Sprintf("next%d", i), ""))
			}
			compare("next", serialReq(t0, "LEAD2", "DA", "lead2", ""), next)
		})
	}
}
