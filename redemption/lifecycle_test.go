package redemption_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/redemption"
)

func TestHTTPRevoke(t *testing.T) {
	sum := sha256.Sum256([]byte(adminToken))
	wantActor := "admin:" + hex.EncodeToString(sum[:4])
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)
			p, codes := h.seed(promotionSpec{n: 2, maxUsage: 5, perUser: 0})
			c := codes[0]
			held := mustReserve(t, h, c, "alice", "5m")

			r := h.do("POST", "/v1/codes/"+pathEscape(c)+"/revoke", adminToken, `{"reason":"leaked"}`, nil)
			var rev struct {
				Code, PromotionID, Reason string
				RevokedAt                 time.Time
			}
			decode(t, r.body, &rev)
			if r.status != http.StatusOK || rev.Code != c || rev.PromotionID != p.IDString() || rev.Reason != "leaked" ||
				rev.RevokedAt.IsZero() {
				t.Fatalf("revoke: %d %s", r.status, r.body)
			}
			if v := h.codeHolds(c); v.Status != "revoked" {
				t.Errorf("validation of a revoked code: status %q, want revoked", v.Status)
			}
			resp, err := h.redeem(c, "bob", nil)
			wantProblem(t, "redeem a revoked code", resp, err, http.StatusGone, "revoked")
			resp, err = h.reserve(c, "bob", "", nil)
			wantProblem(t, "reserve a revoked code", resp, err, http.StatusGone, "revoked")
			resp = h.do("POST", "/v1/reservations/"+held.ID+"/confirm", redeemToken, `{"orderId":"o"}`, nil)
			wantProblem(t, "confirm a hold on a code revoked since", resp, nil, http.StatusGone, "revoked")
			if resp, err := h.redeem(codes[1], "bob", nil); err != nil || resp.status != http.StatusCreated {
				t.Errorf("the other code: %d %s", resp.status, resp.body)
			}

			again := h.do("POST", "/v1/codes/"+pathEscape(c)+"/revoke", adminToken, `{"reason":"again"}`, nil)
			if again.status != http.StatusOK || again.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("second revoke: %d %s", again.status, again.body)
			}
			for _, tc := range []struct {
				token, code, body string
				status            int
			}{
				{redeemToken, c, `{"reason":"x"}`, http.StatusForbidden},
				{adminToken, c, `{}`, http.StatusUnprocessableEntity},
				{adminToken, "NOSUCHCODE42", `{"reason":"x"}`, http.StatusNotFound},
			} {
				if r := h.do("POST", "/v1/codes/"+tc.code+"/revoke", tc.token, tc.body, nil); r.status != tc.status {
					t.Errorf("revoke %s %s: %d %s, want %d", tc.code, tc.body, r.status, r.body, tc.status)
				}
			}

			r = h.do("GET", "/v1/promotions/"+p.IDString()+"/audit", adminToken, "", nil)
			var log struct {
				Entries []struct {
					Action, Actor, Code, PromotionID string
					At                               time.Time
					Detail                           map[string]string
				}
			}
			decode(t, r.body, &log)
			if r.status != http.StatusOK || len(log.Entries) != 1 {
				t.Fatalf("audit log: %d %s, want one entry", r.status, r.body)
			}
			if e := log.Entries[0]; e.Action != "code.revoked" || e.Actor != wantActor || e.Code != c ||
				e.Detail["reason"] != "leaked" || !e.At.Equal(rev.RevokedAt) {
				t.Errorf("audit entry = %+v, want code.revoked by %s", e, wantActor)
			}
			if r := h.do("GET", "/v1/promotions/"+p.IDString()+"/audit", redeemToken, "", nil); r.status != http.StatusForbidden {
				t.Errorf("audit log with the redeem token: %d", r.status)
			}

			// The change is on the redemptions topic's outbox.
			evs, err := h.st.ClaimEvents(h.ctx, 100, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			found := 0
			for _, ev := range evs {
				var e promo.LifecycleEvent
				if json.Unmarshal(ev.Payload, &e) == nil && e.Type == promo.ActionCodeRevoked {
					found++
					if ev.Key != p.IDString() || e.PromotionID != p.IDString() || e.Actor != wantActor || e.EventID == "" {
						t.Errorf("code.revoked event = %s (key %s)", ev.Payload, ev.Key)
					}
				}
			}
			if found != 1 {
				t.Errorf("%d code.revoked events in the outbox, want 1", found)
			}
		})
	}
}

func TestHTTPPatchPromotion(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)
			p, codes := h.seed(promotionSpec{n: 3, maxUsage: 5, perUser: 0})
			path := "/v1/promotions/" + p.IDString()
			patch := func(body string) reply { return h.do("PATCH", path, adminToken, body, nil) }

			r := patch(`{"name":"Winter sale (extended)"}`)
			var v struct {
				ID, Name            string
				Active              bool
				StartsAt, ExpiresAt *time.Time
			}
			decode(t, r.body, &v)
			if r.status != http.StatusOK || v.ID != p.IDString() || v.Name != "Winter sale (extended)" || !v.Active {
				t.Fatalf("rename: %d %s", r.status, r.body)
			}
			var got struct{ Name string }
			decode(t, h.do("GET", path, adminToken, "", nil).body, &got)
			if got.Name != "Winter sale (extended)" {
				t.Errorf("GET after rename: name %q", got.Name)
			}

			if r := patch(`{"active":false}`); r.status != http.StatusOK {
				t.Fatalf("deactivate: %d %s", r.status, r.body)
			}
			resp, err := h.redeem(codes[0], "u", nil)
			wantProblem(t, "redeem when deactivated", resp, err, http.StatusGone, "deactivated")
			if s := h.codeHolds(codes[0]).Status; s != "deactivated" {
				t.Errorf("validation when deactivated: %q", s)
			}
			if r := patch(`{"active":true}`); r.status != http.StatusOK {
				t.Fatalf("reactivate: %d %s", r.status, r.body)
			}
			if resp, err := h.redeem(codes[0], "u", nil); err != nil || resp.status != http.StatusCreated {
				t.Fatalf("redeem after reactivation: %d %s", resp.status, resp.body)
			}

			past := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
			if r := patch(`{"expiresAt":"` + past + `"}`); r.status != http.StatusOK {
				t.Fatalf("end now: %d %s", r.status, r.body)
			}
			resp, err = h.redeem(codes[1], "u", nil)
			wantProblem(t, "redeem after the end moved to the past", resp, err, http.StatusGone, "expired")
			r = patch(`{"startsAt":"2099-01-01T00:00:00Z"}`)
			var pd problemDoc
			decode(t, r.body, &pd)
			if r.status != http.StatusUnprocessableEntity || len(pd.Errors) != 1 || pd.Errors[0].Field != "expiresAt" {
				t.Errorf("startsAt after expiresAt: %d %s", r.status, r.body)
			}
			if r := patch(`{"startsAt":null,"expiresAt":null}`); r.status != http.StatusOK {
				t.Errorf("clear the window: %d %s", r.status, r.body)
			}
			for _, tc := range []struct {
				token, path, body string
				status            int
			}{
				{adminToken, path, `{}`, http.StatusUnprocessableEntity},
				{adminToken, path, `{"name":""}`, http.StatusUnprocessableEntity},
				{adminToken, path, `{"startsAt":"tomorrow"}`, http.StatusUnprocessableEntity},
				{adminToken, path, `{"maxUsagePerCode":9}`, http.StatusBadRequest},
				{redeemToken, path, `{"active":false}`, http.StatusForbidden},
				{adminToken, "/v1/promotions/999999", `{"active":false}`, http.StatusNotFound},
			} {
				if r := h.do("PATCH", tc.path, tc.token, tc.body, nil); r.status != tc.status {
					t.Errorf("PATCH %s %s: %d %s, want %d", tc.path, tc.body, r.status, r.body, tc.status)
				}
			}
			var log struct{ Entries []struct{ Action string } }
			decode(t, h.do("GET", path+"/audit", adminToken, "", nil).body, &log)
			if len(log.Entries) != 5 {
				t.Errorf("audit log has %d entries, want the 5 applied updates", len(log.Entries))
			}
			for _, e := range log.Entries {
				if e.Action != "promotion.updated" {
					t.Errorf("audit action %q", e.Action)
				}
			}
		})
	}
}

func TestHTTPCancelPromotion(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)
			// 100 codes in one batch, of which 40 committed: mid-generation.
			eng, err := codes.New(defaultFormat, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			l := eng.Layout()
			f := l.Format()
			p, _, err := h.st.CreatePromotion(h.ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "cancel",
				Kind: promo.KindGenerated, CodeCount: 100, Format: &f, MaxUsagePerCode: 1, CounterName: l.CounterName()},
				BatchSize: 100, SeqLimit: math.MaxInt64})
			if err != nil {
				t.Fatal(err)
			}
			bs, err := h.st.IncompleteBatches(h.ctx, p.ID)
			if err != nil || len(bs) != 1 {
				t.Fatalf("IncompleteBatches = %v, %v", bs, err)
			}
			chunk := func(from int64, n int) promo.Chunk {
				return promo.Chunk{Batch: bs[0].Ref(), From: from, Count: n, CodeLen: l.CodeLen(), CounterName: p.CounterName,
					Codes: eng.AppendCodes(nil, bs[0].SeqStart+uint64(from), n), Replace: eng.AppendCode}
			}
			if _, err := h.st.CommitChunk(h.ctx, chunk(0, 40)); err != nil {
				t.Fatal(err)
			}
			path := "/v1/promotions/" + p.IDString()
			r := h.do("POST", path+"/cancel", adminToken, "", nil)
			var st struct {
				Status         string
				GeneratedCount int64
				Summary        string
			}
			decode(t, r.body, &st)
			if r.status != http.StatusOK || st.Status != "cancelled" || st.GeneratedCount != 40 {
				t.Fatalf("cancel: %d %s; want 200, cancelled, 40 codes", r.status, r.body)
			}
			if _, err := h.st.CommitChunk(h.ctx, chunk(40, 20)); !promo.Is(err, promo.EMoved) {
				t.Errorf("a chunk after cancel: %v, want refused (moved)", err)
			}
			decode(t, h.do("GET", path, adminToken, "", nil).body, &st)
			if st.Status != "cancelled" || st.GeneratedCount != 40 || !strings.Contains(st.Summary, "cancelled") {
				t.Errorf("GET after cancel = %+v", st)
			}
			if r := h.do("POST", path+"/cancel", adminToken, "", nil); r.status != http.StatusOK ||
				r.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("second cancel: %d %s", r.status, r.body)
			}
			done, _ := h.seed(promotionSpec{n: 2, maxUsage: 1})
			if r := h.do("POST", "/v1/promotions/"+done.IDString()+"/cancel", adminToken, "", nil); r.status != http.StatusConflict {
				t.Errorf("cancel a completed promotion: %d %s, want 409", r.status, r.body)
			}
			if r := h.do("POST", path+"/cancel", redeemToken, "", nil); r.status != http.StatusForbidden {
				t.Errorf("cancel with the redeem token: %d", r.status)
			}
			var log struct{ Entries []struct{ Action string } }
			decode(t, h.do("GET", path+"/audit", adminToken, "", nil).body, &log)
			if len(log.Entries) != 1 || log.Entries[0].Action != "promotion.cancelled" {
				t.Errorf("audit log = %+v", log.Entries)
			}
		})
	}
}

func TestHTTPTopUp(t *testing.T) {
	// 300,000 codes on top of a completed promotion; a tenth under the race
	// detector (make test-integration runs the full size without it).
	n := 300_000
	if raceEnabled {
		n = 30_000
		t.Logf("race detector on: a %d-code top-up (make test-integration runs 300,000)", n)
	}
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)
			p, _ := h.seed(promotionSpec{n: 1000, maxUsage: 1})
			path := "/v1/promotions/" + p.IDString()
			r := h.do("POST", path+"/topups", adminToken, fmt.Sprintf(`{"codeCount":%d}`, n), nil)
			var body struct {
				TopUp struct {
					No, FirstBatchNo, BatchCount int
					CodeCount                    int64
				} `json:"topup"`
				Promotion struct {
					Status                    string
					CodeCount, GeneratedCount int64
				}
			}
			decode(t, r.body, &body)
			if r.status != http.StatusAccepted || body.TopUp.No != 1 || body.TopUp.CodeCount != int64(n) ||
				body.Promotion.CodeCount != int64(n)+1000 || body.Promotion.Status != "generating" {
				t.Fatalf("top-up: %d %s", r.status, r.body)
			}
			// Generate the new batches the way a worker does (the real
			// engine, 10,000-code chunks).
			eng, err := codes.New(defaultFormat, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			l := eng.Layout()
			bs, err := h.st.IncompleteBatches(h.ctx, p.ID)
			if err != nil || len(bs) != body.TopUp.BatchCount {
				t.Fatalf("IncompleteBatches = %d, %v; want %d", len(bs), err, body.TopUp.BatchCount)
			}
			for _, b := range bs {
				for from := int64(0); from < b.CodeCount; from += 10_000 {
					k := int(min(10_000, b.CodeCount-from))
					if _, err := h.st.CommitChunk(h.ctx, promo.Chunk{Batch: b.Ref(), From: from, Count: k,
						CodeLen: l.CodeLen(), CounterName: p.CounterName, Replace: eng.AppendCode,
						Codes: eng.AppendCodes(nil, b.SeqStart+uint64(from), k)}); err != nil {
						t.Fatalf("CommitChunk: %v", err)
					}
				}
			}
			var st struct {
				Status                    string
				CodeCount, GeneratedCount int64
				TopUps                    []struct{ No int }
			}
			decode(t, h.do("GET", path, adminToken, "", nil).body, &st)
			if st.Status != "completed" || st.GeneratedCount != int64(n)+1000 || st.CodeCount != int64(n)+1000 ||
				len(st.TopUps) != 1 {
				t.Errorf("status after the top-up generated = %+v; want completed, %d, one top-up", st, n+1000)
			}
			csv := h.do("GET", path+"/codes", adminToken, "", nil)
			lines := strings.Split(strings.TrimSpace(string(csv.body)), "\n")[1:]
			seen := make(map[string]struct{}, len(lines))
			for _, c := range lines {
				seen[c] = struct{}{}
			}
			if csv.status != http.StatusOK || len(lines) != n+1000 || len(seen) != n+1000 {
				t.Errorf("export: %d, %d rows, %d distinct; want %d distinct", csv.status, len(lines), len(seen), n+1000)
			}
			for _, tc := range []struct {
				body   string
				status int
			}{{`{"codeCount":0}`, http.StatusUnprocessableEntity}, {`{"codeCount":1.5}`, http.StatusUnprocessableEntity},
				{`{}`, http.StatusUnprocessableEntity}} {
				if r := h.do("POST", path+"/topups", adminToken, tc.body, nil); r.status != tc.status {
					t.Errorf("top-up %s: %d %s, want %d", tc.body, r.status, r.body, tc.status)
				}
			}
			var list struct{ Topups []struct{ No int } }
			decode(t, h.do("GET", path+"/topups", adminToken, "", nil).body, &list)
			if len(list.Topups) != 1 {
				t.Errorf("GET topups = %+v", list)
			}
		})
	}
}

func TestHTTPDeletePromotion(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, redemption.Config{GuessLimit: -1, GuessLimitPerToken: -1, SweepInterval: 50 * time.Millisecond})
			ps := h.st.(purgeStore)
			p, codes := h.seed(promotionSpec{n: 25_000, maxUsage: 1})
			for i := range 3 {
				if r, err := h.redeem(codes[i], fmt.Sprintf("u%d", i), nil); err != nil || r.status != http.StatusCreated {
					t.Fatalf("redeem: %d %s", r.status, r.body)
				}
			}
			path := "/v1/promotions/" + p.IDString()
			r := h.do("DELETE", path, adminToken, "", nil)
			var d struct {
				Deletion struct {
					RequestedAt *time.Time
					CodesLeft   int64
				}
			}
			decode(t, r.body, &d)
			if r.status != http.StatusAccepted || d.Deletion.RequestedAt == nil {
				t.Fatalf("DELETE: %d %s", r.status, r.body)
			}
			if r, err := h.redeem(codes[10], "late", nil); err != nil ||
				(r.status != http.StatusGone && r.status != http.StatusNotFound) {
				t.Errorf("redeem during deletion: %d %s, want 410 deactivated (or 404 once purged)", r.status, r.body)
			}
			// The background purger finishes it; the status follows.
			var st struct {
				Status   string
				Deletion struct {
					DeletedAt *time.Time
					CodesLeft int64
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				decode(t, h.do("GET", path, adminToken, "", nil).body, &st)
				if st.Status == "deleted" {
					break
				}
				if st.Status != "deleting" || time.Now().After(deadline) {
					t.Fatalf("status %q (%d codes left) while deleting", st.Status, st.Deletion.CodesLeft)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if c, reds, _ := ps.PurgeCount(h.ctx, p.ID); c != 0 || reds != 3 || st.Deletion.DeletedAt == nil {
				t.Errorf("after deletion: %d codes, %d redemptions (want 0 and the 3 kept), deletedAt %v", c, reds, st.Deletion.DeletedAt)
			}
			if r := h.do("DELETE", path, adminToken, "", nil); r.status != http.StatusAccepted ||
				r.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("second DELETE: %d %s", r.status, r.body)
			}
			if r := h.do("DELETE", "/v1/promotions/999999", adminToken, "", nil); r.status != http.StatusNotFound {
				t.Errorf("DELETE unknown: %d", r.status)
			}
			var log struct{ Entries []struct{ Action string } }
			decode(t, h.do("GET", path+"/audit", adminToken, "", nil).body, &log)
			if len(log.Entries) != 2 || log.Entries[0].Action != "promotion.deleted" ||
				log.Entries[1].Action != "promotion.delete_requested" {
				t.Errorf("audit log = %+v", log.Entries)
			}
		})
	}
}
