package redemption_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// reserve posts a reservation of code for user; ttl "" takes the default.
func (h *harness) reserve(code, user, ttl string, header map[string]string) (reply, error) {
	body := fmt.Sprintf(`{"userId":%q}`, user)
	if ttl != "" {
		body = fmt.Sprintf(`{"userId":%q,"ttl":%q}`, user, ttl)
	}
	return h.try("POST", "/v1/codes/"+pathEscape(code)+"/reservations", redeemToken, body, header)
}

// reservationBody is a reservation answer.
type reservationBody struct {
	ID           string    `json:"id"`
	Code         string    `json:"code"`
	PromotionID  string    `json:"promotionId"`
	UserID       string    `json:"userId"`
	Status       string    `json:"status"`
	ExpiresAt    time.Time `json:"expiresAt"`
	CreatedAt    time.Time `json:"createdAt"`
	RedemptionID string    `json:"redemptionId"`
}

// holdView is the part of GET /v1/codes/{code} these tests read.
type holdView struct {
	Status       string `json:"status"`
	UsesLeft     int    `json:"usesLeft"`
	ReservedUses int    `json:"reservedUses"`
}

func (h *harness) codeHolds(code string) holdView {
	h.t.Helper()
	r := h.do("GET", "/v1/codes/"+pathEscape(code), redeemToken, "", nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("GET code: %d %s", r.status, r.body)
	}
	var v holdView
	decode(h.t, r.body, &v)
	return v
}

func mustReserve(t *testing.T, h *harness, code, user, ttl string) reservationBody {
	t.Helper()
	r, err := h.reserve(code, user, ttl, nil)
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("reserve %s for %s: %d %s %v", code, user, r.status, r.body, err)
	}
	if loc := r.header.Get("Location"); loc == "" {
		t.Errorf("reservation without Location")
	}
	var b reservationBody
	decode(t, r.body, &b)
	return b
}

func wantProblem(t *testing.T, what string, r reply, err error, status int, reason string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.status != status || reasonOf(t, r) != reason {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, r.body, status, reason)
	}
}

func TestHTTPReservations(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)
			_, codes := h.seed(promotionSpec{n: 4, maxUsage: 1, perUser: 0})

			t.Run("HoldConfirm", func(t *testing.T) {
				c := codes[0]
				start := time.Now()
				res := mustReserve(t, h, c, "alice", "10m")
				if res.ID == "" || res.Status != "held" || res.UserID != "alice" || res.Code != c ||
					res.ExpiresAt.Before(start.Add(10*time.Minute-time.Second)) || res.ExpiresAt.After(time.Now().Add(10*time.Minute)) {
					t.Fatalf("reservation = %+v, want held for 10m, code in display form %s", res, c)
				}
				if v := h.codeHolds(c); v.UsesLeft != 0 || v.ReservedUses != 1 || v.Status != "code_exhausted" {
					t.Errorf("GET code while held = %+v, want 0 left, 1 reserved, code_exhausted", v)
				}
				r, err := h.redeem(c, "bob", nil)
				wantProblem(t, "redeem a held code", r, err, http.StatusConflict, "code_exhausted")
				r, err = h.reserve(c, "bob", "", nil)
				wantProblem(t, "reserve a held code", r, err, http.StatusConflict, "code_exhausted")

				r = h.do("POST", "/v1/reservations/"+res.ID+"/confirm", redeemToken, `{"orderId":"order-1"}`, nil)
				if r.status != http.StatusCreated {
					t.Fatalf("confirm: %d %s", r.status, r.body)
				}
				var rc struct {
					ID, UserID, OrderID, Code string
					UsesLeft                  int
				}
				decode(t, r.body, &rc)
				if rc.UserID != "alice" || rc.OrderID != "order-1" || rc.UsesLeft != 0 || rc.Code != c {
					t.Errorf("confirmed redemption = %+v", rc)
				}
				again := h.do("POST", "/v1/reservations/"+res.ID+"/confirm", redeemToken, `{"orderId":"order-1"}`, nil)
				var rc2 struct{ ID string }
				decode(t, again.body, &rc2)
				if again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" || rc2.ID != rc.ID {
					t.Errorf("second confirm: %d %s, want the same redemption replayed", again.status, again.body)
				}
				r = h.do("POST", "/v1/reservations/"+res.ID+"/confirm", redeemToken, `{"orderId":"order-2"}`, nil)
				wantProblem(t, "confirm with another order", r, nil, http.StatusConflict, "idempotency_conflict")
				r = h.do("DELETE", "/v1/reservations/"+res.ID, redeemToken, "", nil)
				wantProblem(t, "release a confirmed reservation", r, nil, http.StatusConflict, "reservation_confirmed")
				r = h.do("GET", "/v1/reservations/"+res.ID, redeemToken, "", nil)
				var got reservationBody
				decode(t, r.body, &got)
				if r.status != http.StatusOK || got.Status != "confirmed" || got.RedemptionID != rc.ID {
					t.Errorf("GET reservation: %d %s", r.status, r.body)
				}
				if v := h.codeHolds(c); v.UsesLeft != 0 || v.ReservedUses != 0 {
					t.Errorf("GET code after confirm = %+v", v)
				}
				if u := h.used([]string{c}); u != 1 {
					t.Errorf("used = %d, want 1", u)
				}
			})

			t.Run("Release", func(t *testing.T) {
				c := codes[1]
				res := mustReserve(t, h, c, "carol", "")
				if d := time.Until(res.ExpiresAt); d < 14*time.Minute || d > 15*time.Minute {
					t.Errorf("default TTL: expires in %s, want 15m", d)
				}
				r := h.do("DELETE", "/v1/reservations/"+res.ID, redeemToken, "", nil)
				var got reservationBody
				decode(t, r.body, &got)
				if r.status != http.StatusOK || got.Status != "released" {
					t.Fatalf("release: %d %s", r.status, r.body)
				}
				r = h.do("DELETE", "/v1/reservations/"+res.ID, redeemToken, "", nil)
				if r.status != http.StatusOK || r.header.Get("Idempotent-Replayed") != "true" {
					t.Errorf("second release: %d %s", r.status, r.body)
				}
				r = h.do("POST", "/v1/reservations/"+res.ID+"/confirm", redeemToken, `{"orderId":"o"}`, nil)
				wantProblem(t, "confirm a released reservation", r, nil, http.StatusGone, "reservation_released")
				if r, err := h.redeem(c, "dave", nil); err != nil || r.status != http.StatusCreated {
					t.Errorf("redeem after release: %d %s", r.status, r.body)
				}
			})

			t.Run("Expiry", func(t *testing.T) {
				// A 1s hold: it blocks others, then frees the use with no
				// job running; polled, not slept for.
				c := codes[2]
				res := mustReserve(t, h, c, "erin", "1s")
				r, err := h.redeem(c, "frank", nil)
				wantProblem(t, "redeem while held", r, err, http.StatusConflict, "code_exhausted")
				deadline := time.Now().Add(5 * time.Second)
				for h.codeHolds(c).UsesLeft != 1 {
					if time.Now().After(deadline) {
						t.Fatalf("the 1s reservation still holds its use after 5s")
					}
					time.Sleep(50 * time.Millisecond)
				}
				r = h.do("GET", "/v1/reservations/"+res.ID, redeemToken, "", nil)
				var got reservationBody
				decode(t, r.body, &got)
				if got.Status != "expired" {
					t.Errorf("GET an expired reservation: status %q, want expired", got.Status)
				}
				// Its use is free: confirming takes it anew (documented).
				r = h.do("POST", "/v1/reservations/"+res.ID+"/confirm", redeemToken, `{"orderId":"late"}`, nil)
				if r.status != http.StatusCreated {
					t.Fatalf("confirm an expired reservation whose use is free: %d %s, want 201", r.status, r.body)
				}

				// Here someone else takes the freed use first: 410.
				c = codes[3]
				res = mustReserve(t, h, c, "gina", "1s")
				deadline = time.Now().Add(5 * time.Second)
				for {
					r, err := h.redeem(c, "hank", nil)
					if err != nil {
						t.Fatal(err)
					}
					if r.status == http.StatusCreated {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the 1s reservation still holds its use after 5s: %d %s", r.status, r.body)
					}
					time.Sleep(50 * time.Millisecond)
				}
				r = h.do("POST", "/v1/reservations/"+res.ID+"/confirm", redeemToken, `{"orderId":"late"}`, nil)
				wantProblem(t, "confirm an expired reservation whose use was taken", r, nil, http.StatusGone,
					"reservation_expired")
			})

			t.Run("IdempotencyAndValidation", func(t *testing.T) {
				v := "RESV" + backend
				h.vanity(v, 5, 0)
				key := map[string]string{"Idempotency-Key": "reserve-once-" + backend}
				a, _ := h.reserve(v, "ivy", "5m", key)
				b, _ := h.reserve(v, "ivy", "5m", key)
				var ra, rb reservationBody
				decode(t, a.body, &ra)
				decode(t, b.body, &rb)
				if a.status != http.StatusCreated || b.status != http.StatusCreated || ra.ID != rb.ID ||
					b.header.Get("Idempotent-Replayed") != "true" {
					t.Errorf("same key twice: %d %s / %d %s", a.status, a.body, b.status, b.body)
				}
				if v := h.codeHolds(v); v.ReservedUses != 1 {
					t.Errorf("reserved uses after a replayed reservation = %d, want 1", v.ReservedUses)
				}
				r, err := h.reserve(v, "jack", "5m", key)
				wantProblem(t, "the key with another user", r, err, http.StatusConflict, "idempotency_conflict")
				for _, body := range []string{`{"userId":"u","ttl":"2h"}`, `{"userId":"u","ttl":"soon"}`,
					`{"userId":"u","ttl":"-1m"}`, `{"ttl":"1m"}`} {
					r := h.do("POST", "/v1/codes/"+v+"/reservations", redeemToken, body, nil)
					if r.status != http.StatusUnprocessableEntity {
						t.Errorf("%s: %d %s, want 422", body, r.status, r.body)
					}
				}
				r = h.do("POST", "/v1/reservations/nope/confirm", redeemToken, `{"orderId":"o"}`, nil)
				if r.status != http.StatusNotFound || reasonOf(t, r) != "reservation_not_found" {
					t.Errorf("confirm unknown: %d %s, want 404 reservation_not_found", r.status, r.body)
				}
				r = h.do("POST", "/v1/codes/"+v+"/reservations", "", `{"userId":"u"}`, nil)
				if r.status != http.StatusUnauthorized {
					t.Errorf("reserve without a token: %d", r.status)
				}
			})
		})
	}
}

func TestHTTPReservationConcurrency(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)

			t.Run("HundredReservationsOneUseLeft", func(t *testing.T) {
				_, codes := h.seed(promotionSpec{n: 1, maxUsage: 3, perUser: 0})
				c := codes[0]
				for i := range 2 {
					if r, err := h.redeem(c, fmt.Sprintf("early-%d", i), nil); err != nil || r.status != http.StatusCreated {
						t.Fatalf("early redemption: %d %s", r.status, r.body)
					}
				}
				counts := hammer(t, 100, 100, func(i int) (reply, error) {
					return h.reserve(c, fmt.Sprintf("shopper-%d", i), "5m", nil)
				})
				if counts["201"] != 1 || counts["409 code_exhausted"] != 99 {
					t.Errorf("100 concurrent reservations of a code with one use left: %v; want exactly 1 × 201", counts)
				}
				if v := h.codeHolds(c); v.UsesLeft != 0 || v.ReservedUses != 1 {
					t.Errorf("GET code = %+v, want 1 reserved, 0 left", v)
				}
			})

			t.Run("ReservationsRacingRedemptions", func(t *testing.T) {
				const maxUsage = 20
				_, codes := h.seed(promotionSpec{n: 1, maxUsage: maxUsage, perUser: 0})
				c := codes[0]
				counts := hammer(t, 50, 300, func(i int) (reply, error) {
					if i%2 == 0 {
						return h.reserve(c, fmt.Sprintf("r-%d", i), "5m", nil)
					}
					return h.redeem(c, fmt.Sprintf("d-%d", i), nil)
				})
				v := h.codeHolds(c)
				used := h.used(codes)
				if counts["201"] != maxUsage || counts["409 code_exhausted"] != 300-maxUsage || used+v.ReservedUses != maxUsage {
					t.Errorf("300 reservations and redemptions on a max-%d code: %v, used %d + reserved %d; want %d successes",
						maxUsage, counts, used, v.ReservedUses, maxUsage)
				}
			})

			t.Run("OneUserRacingReservationsAndRedemptions", func(t *testing.T) {
				const n = 40
				_, codes := h.seed(promotionSpec{n: n, maxUsage: 1, perUser: 1})
				counts := hammer(t, n, n, func(i int) (reply, error) {
					if i%2 == 0 {
						return h.reserve(codes[i], "racer", "5m", nil)
					}
					return h.redeem(codes[i], "racer", nil)
				})
				if counts["201"] != 1 || counts["409 user_limit_reached"] != n-1 {
					t.Errorf("one user racing %d reservations and redemptions with perUserLimit 1: %v; want exactly 1 × 201",
						n, counts)
				}
			})
		})
	}
}
