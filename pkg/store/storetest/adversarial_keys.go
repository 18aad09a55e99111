package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// KeyRecords reads and damages a store's idempotency records behind its
// back, for AdversarialIdempotencyKeys.
type KeyRecords struct {
	// Orphans counts the key records that name a redemption that does not
	// exist, or name one beside a refusal.
	Orphans func(ctx context.Context) (int, error)
	// DropRedemption deletes the audit row id alone, leaving its key's
	// record behind (what a purge racing the record's write could leave).
	DropRedemption func(ctx context.Context, id string) error
}

// AdversarialIdempotencyKeys attacks the redemption's idempotency record,
// which the redemption claims naming its own id (a refusal rewrites it):
// replays after a redemption, after each kind of refusal, after a request
// that failed having claimed its key, after a rollback and after a purge;
// the same key twice in one combined batch. Each runs on the paths a
// redemption takes: Redeem as it is, Redeem with shopper fields (the
// statement path on every dialect) and RedeemBatch. A replay must answer
// exactly what the first request got, take nothing, and no record may name
// a redemption that does not exist.
func AdversarialIdempotencyKeys(t *testing.T, db string, s Store, kr KeyRecords) {
	type path struct {
		name string
		// redeem runs req on the path, with fillers (other users, no key)
		// around it on a batch path.
		redeem func(h *harness, req promo.RedeemRequest) (promo.RedeemOutcome, error)
	}
	paths := []path{
		{"redeem", func(h *harness, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
			return h.s.Redeem(h.ctx, req)
		}},
		{"statement", func(h *harness, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
			if req.Shopper == nil {
				req.Shopper = &promo.Shopper{}
			}
			return h.s.Redeem(h.ctx, req)
		}},
		{"batch", func(h *harness, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
			res, err := h.s.RedeemBatch(h.ctx, []promo.RedeemRequest{req})
			if err != nil {
				return promo.RedeemOutcome{}, err
			}
			return res[0].Outcome, res[0].Err
		}},
	}
	dropped := 0 // records left behind on purpose (DropRedemption)
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			h := newHarness(t, s)
			logf := func(c, format string, args ...any) {
				t.Helper()
				state := ""
				if t.Failed() {
					state = "FAILED: "
				}
				t.Logf("adversarial: %s/%s [%s]: %s"+format, append([]any{c, p.name, db, state}, args...)...)
			}
			redeem := func(req promo.RedeemRequest) (promo.RedeemOutcome, error) { return p.redeem(h, req) }
			keyed := func(code, user, key string) promo.RedeemRequest {
				req := redeemReq(code, user)
				req.IdempotencyKey, req.RequestHash = key+"-"+h.tag, "h:"+code+":"+user
				req.OrderID, req.Metadata = "order-"+user, json.RawMessage(`{"k":"`+key+`"}`)
				return req
			}
			retry := func(req promo.RedeemRequest) promo.RedeemRequest {
				req.ID, req.EventID, req.Now = newID(), newID(), time.Now().UTC()
				return req
			}
			orphans := func(what string) {
				t.Helper()
				n, err := kr.Orphans(h.ctx)
				if err != nil || n != dropped {
					t.Errorf("%s: %d key records name a missing redemption or one beside a refusal, %d left on purpose (%v)",
						what, n, dropped, err)
				}
			}

			// A redemption, then its replays: the same redemption, taking
			// nothing, however the code changed since.
			code := "V" + h.tag + "RDM"
			h.create(h.vanity(code, 3))
			req := keyed(code, "alice", "redeemed")
			first, err := redeem(req)
			if err != nil || first.Refused != "" || first.Replayed || first.Redemption.ID != req.ID {
				t.Fatalf("first redemption: %+v, %v", first, err)
			}
			h.redeem(redeemReq(code, "bob"))
			h.redeem(redeemReq(code, "carol")) // used up
			for i := range 3 {
				again, err := redeem(retry(req))
				if err != nil || !again.Replayed || !sameRedemption(again.Redemption, first.Redemption) {
					t.Errorf("replay %d: %+v, %v; want %+v replayed", i, again, err, first.Redemption)
				}
			}
			if u := h.used(code); u != 3 {
				t.Errorf("used %d after 3 redemptions and 3 replays, want 3", u)
			}
			orphans("after a redemption and its replays")
			logf("redeemed then replayed", "3 replays answered redemption %s (usesLeft %d), used %d of 3",
				first.Redemption.ID, first.Redemption.UsesLeft, h.used(code))

			// Refusals, each replayed after the state that caused it is gone:
			// still the refusal (and its rule), taking nothing.
			refusals := 0
			refused := func(what string, req promo.RedeemRequest, reason promo.Reason, undo func()) {
				t.Helper()
				out, err := redeem(req)
				if err != nil || out.Refused != reason || out.Replayed {
					t.Errorf("%s: %+v, %v; want refused %s", what, out, err, reason)
					return
				}
				undo()
				before := h.used(req.Code)
				again, err := redeem(retry(req))
				if err != nil || !again.Replayed || again.Refused != out.Refused || again.Rule != out.Rule {
					t.Errorf("%s replayed after its cause is gone: %+v, %v; want %s (rule %q) replayed",
						what, again, err, out.Refused, out.Rule)
				}
				if u := h.used(req.Code); u != before {
					t.Errorf("%s: the replay changed used from %d to %d", what, before, u)
				}
				refusals++
			}
			refused("code_not_found", keyed("N"+h.tag+"NOPE", "alice", "notfound"), promo.ReasonCodeNotFound, func() {
				h.create(h.vanity("N"+h.tag+"NOPE", 5))
			})
			ex := "V" + h.tag + "EXH"
			h.create(h.vanity(ex, 1))
			taken := h.redeem(redeemReq(ex, "bob"))
			refused("code_exhausted", keyed(ex, "alice", "exhausted"), promo.ReasonCodeExhausted, func() {
				h.rollbackOf(taken.Redemption.ID)
			})
			ul := "V" + h.tag + "USR"
			h.create(h.vanity(ul, 10)) // perUserLimit 1
			mine := h.redeem(redeemReq(ul, "alice"))
			refused("user_limit_reached", keyed(ul, "alice", "userlimit"), promo.ReasonUserLimitReached, func() {
				h.rollbackOf(mine.Redemption.ID)
			})
			off := "V" + h.tag + "OFF"
			offP := h.create(h.vanity(off, 10))
			if err := h.s.SetPromotionActive(h.ctx, offP.ID, false); err != nil {
				t.Fatal(err)
			}
			refused("deactivated", keyed(off, "alice", "deactivated"), promo.ReasonDeactivated, func() {
				if err := h.s.SetPromotionActive(h.ctx, offP.ID, true); err != nil {
					t.Fatal(err)
				}
			})
			ne := "V" + h.tag + "ELG"
			np := h.vanity(ne, 10)
			np.Eligibility = &promo.Eligibility{Countries: []string{"DE"}}
			h.create(np)
			nreq := keyed(ne, "alice", "noteligible")
			nreq.Shopper = &promo.Shopper{Country: "FR"}
			refused("not_eligible", nreq, promo.ReasonNotEligible, func() {})
			// The same key and hash from a shopper who would now pass.
			nreq2 := retry(nreq)
			nreq2.Shopper = &promo.Shopper{Country: "DE"}
			if out, err := redeem(nreq2); err != nil || !out.Replayed || out.Refused != promo.ReasonNotEligible {
				t.Errorf("not_eligible replayed for an eligible shopper: %+v, %v; want the refusal replayed", out, err)
			}
			orphans("after the refusals and their replays")
			logf("refused then replayed", "%d kinds of refusal (code_not_found, code_exhausted, user_limit_reached, "+
				"deactivated, not_eligible), each replayed as refused after its cause was undone, taking nothing", refusals)

			// A request that fails after claiming its key (its id is taken:
			// the audit row cannot be written): nothing of it may stay, so a
			// retry of its key is a new request that redeems with its own id.
			fm := "V" + h.tag + "FAIL"
			h.create(h.vanity(fm, 5))
			victim := keyed(fm, "dave", "failed")
			victim.ID = first.Redemption.ID
			if out, err := redeem(victim); err == nil {
				t.Errorf("a redemption whose id is taken: %+v, no error", out)
			}
			if u := h.used(fm); u != 0 {
				t.Errorf("the failed redemption left used %d, want 0", u)
			}
			orphans("after a redemption failed having claimed its key")
			again := retry(victim)
			out, err := redeem(again)
			if err != nil || out.Replayed || out.Refused != "" || out.Redemption.ID != again.ID || h.used(fm) != 1 {
				t.Errorf("retry of a failed request's key: %+v, %v; want a new redemption %s (used %d, want 1)",
					out, err, again.ID, h.used(fm))
			}
			if r2, err := redeem(retry(victim)); err != nil || !r2.Replayed || r2.Redemption.ID != again.ID {
				t.Errorf("replay after the retry: %+v, %v; want redemption %s", r2, err, again.ID)
			}
			orphans("after the failed request's key was retried")
			logf("failed mid-way then retried", "the failure left used %d and no record; the retry redeemed anew "+
				"(%s, not the colliding %s), its replay answered it", 0, out.Redemption.ID, first.Redemption.ID)

			// A rollback, then a replay: the same redemption (now rolled
			// back), and the use given back stays free.
			rb := "V" + h.tag + "RBK"
			h.create(h.vanity(rb, 1))
			rreq := keyed(rb, "erin", "rolledback")
			rfirst, err := redeem(rreq)
			if err != nil || rfirst.Refused != "" {
				t.Fatalf("redemption to roll back: %+v, %v", rfirst, err)
			}
			h.rollbackOf(rfirst.Redemption.ID)
			rback, err := redeem(retry(rreq))
			if err != nil || !rback.Replayed || !sameRedemption(rback.Redemption, rfirst.Redemption) ||
				rback.Redemption.RolledBackAt == nil {
				t.Errorf("replay after rollback: %+v, %v; want redemption %s replayed, rolled back",
					rback, err, rfirst.Redemption.ID)
			}
			if u := h.used(rb); u != 0 {
				t.Errorf("a replay after the rollback took the use back: used %d, want 0", u)
			}
			orphans("after a rollback and a replay")
			logf("rolled back then replayed", "the replay answered redemption %s (rolledBackAt set), used stays 0",
				rfirst.Redemption.ID)

			// Purge with the redemptions: the key goes with its redemption,
			// so a retry is a new request (its code is gone: code_not_found).
			pp, pcodes := h.generatedCodes("keys-purge", 2, func(np *promo.NewPromotion) { np.PerUserLimit = 0 })
			preq := keyed(pcodes[0], "frank", "purged")
			if out, err := redeem(preq); err != nil || out.Refused != "" {
				t.Fatalf("redemption to purge: %+v, %v", out, err)
			}
			h.purgeAll("codes", pp.ID)
			h.purgeAll("redemptions", pp.ID)
			pout, err := redeem(retry(preq))
			if err != nil || pout.Replayed || pout.Refused != promo.ReasonCodeNotFound {
				t.Errorf("retry after purge --with-redemptions: %+v, %v; want a new request refused code_not_found",
					pout, err)
			}
			// A record left naming a deleted redemption answers 410.
			lreq := keyed(pcodes[1], "gina", "leftbehind")
			lfirst, err := redeem(lreq)
			if err == nil && lfirst.Refused != promo.ReasonCodeNotFound {
				t.Errorf("redeem a purged code: %+v", lfirst)
			}
			lv := "V" + h.tag + "LEFT"
			h.create(h.vanity(lv, 5))
			lreq = keyed(lv, "gina", "leftbehind2")
			lfirst, err = redeem(lreq)
			if err != nil || lfirst.Refused != "" {
				t.Fatalf("redemption to drop: %+v, %v", lfirst, err)
			}
			if err := kr.DropRedemption(h.ctx, lfirst.Redemption.ID); err != nil {
				t.Fatal(err)
			}
			dropped++
			lout, err := redeem(retry(lreq))
			if promo.ReasonOf(err) != promo.ReasonRedemptionPurged || promo.Code(err) == promo.EInternal {
				t.Errorf("replay of a record naming a deleted redemption: %+v, %v; want redemption_purged", lout, err)
			}
			if u := h.used(lv); u != 1 {
				t.Errorf("the redemption_purged replay changed used to %d, want 1", u)
			}
			logf("purged then replayed", "after purge --with-redemptions: %s (a new request); a record left "+
				"behind: %v", pout.Refused, err)

			// The same key twice in one combined batch, between other
			// requests: the second answered as a retry of the first.
			bc := "V" + h.tag + "BAT"
			h.create(h.vanity(bc, 10))
			a := keyed(bc, "hank", "twice")
			b := retry(a)
			c := retry(a)
			c.RequestHash = "h:other"
			batch := []promo.RedeemRequest{redeemReq(bc, "ivy"), a, redeemReq(bc, "jay"), b, c}
			if p.name == "statement" {
				for i := range batch {
					batch[i].Shopper = &promo.Shopper{}
				}
			}
			res := h.redeemBatch(batch)
			if res[1].Err != nil || res[1].Outcome.Refused != "" || res[1].Outcome.Redemption.ID != a.ID ||
				res[3].Err != nil || !res[3].Outcome.Replayed ||
				!sameRedemption(res[3].Outcome.Redemption, res[1].Outcome.Redemption) ||
				promo.Code(res[4].Err) != promo.EConflict {
				t.Errorf("one key twice in a batch: %+v / %+v / %+v; want a redemption, it replayed, a conflict",
					res[1], res[3], res[4])
			}
			if u := h.used(bc); u != 3 {
				t.Errorf("used %d after a batch of 3 redemptions, a replay and a conflict, want 3", u)
			}
			// And a key whose first member is refused.
			xc := "V" + h.tag + "BEX"
			h.create(h.vanity(xc, 1))
			h.redeem(redeemReq(xc, "kim"))
			x := keyed(xc, "lee", "twicerefused")
			batch = []promo.RedeemRequest{x, retry(x)}
			if p.name == "statement" {
				for i := range batch {
					batch[i].Shopper = &promo.Shopper{}
				}
			}
			xres := h.redeemBatch(batch)
			if xres[0].Err != nil || xres[0].Outcome.Refused != promo.ReasonCodeExhausted || xres[1].Err != nil ||
				!xres[1].Outcome.Replayed || xres[1].Outcome.Refused != promo.ReasonCodeExhausted {
				t.Errorf("one refused key twice in a batch: %+v / %+v; want code_exhausted, then it replayed",
					xres[0], xres[1])
			}
			orphans("after the batches")
			logf("one key twice in a batch", "same request: redeemed then replayed (%s); other request: %s; "+
				"refused twice: %s then replayed %t", res[3].Outcome.Redemption.ID, reasonOrCode(res[4].Err),
				xres[0].Outcome.Refused, xres[1].Outcome.Replayed)
		})
	}
}

// sameRedemption compares what a client sees of a redemption (but a
// rollback's fields).
func sameRedemption(a, b promo.Redemption) bool {
	return a.ID == b.ID && a.Code == b.Code && a.PromotionID == b.PromotionID && a.UserID == b.UserID &&
		a.OrderID == b.OrderID && string(a.Metadata) == string(b.Metadata) && a.RedeemedAt.Equal(b.RedeemedAt) &&
		a.UsesLeft == b.UsesLeft
}

func reasonOrCode(err error) string {
	if r := promo.ReasonOf(err); r != "" {
		return string(r)
	}
	return fmt.Sprint(promo.Code(err))
}

// OrphanKeys counts what KeyRecords.Orphans counts, in SQL every dialect
// runs.
const OrphanKeys = `SELECT COUNT(*) FROM idempotency_keys k WHERE k.redemption_id IS NOT NULL
AND (k.refused IS NOT NULL OR NOT EXISTS (SELECT 1 FROM redemptions r WHERE r.id = k.redemption_id))`
