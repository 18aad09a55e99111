//go:build integration

package redemption_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestAdversarialHotCodeKeys sends each of 200 Idempotency-Keys three times
// at once to one hot code (max 150; the combiner puts concurrent requests in
// one RedeemBatch, or the store's group): twice with one body, once with
// another order. Per key exactly one body wins: its answers are one
// redemption (or one refusal), the same id in each, every one but the first
// replayed; the other body gets 409. The code's uses are the keys redeemed.
func TestAdversarialHotCodeKeys(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)
			code := "ADVHOTKEYS"
			h.vanity(code, 150, 0)
			const keys = 200
			type answer struct {
				body       int // 0: the first body, 1: the other
				status     int
				id, reason string
				replayed   bool
			}
			answers := make([][]answer, keys)
			var (
				mu sync.Mutex
				wg sync.WaitGroup
			)
			for k := range keys {
				for i := range 3 {
					body := i / 2
					wg.Go(func() {
						r, err := h.try("POST", "/v1/codes/"+code+"/redemptions", redeemToken,
							fmt.Sprintf(`{"userId":"u%d","orderId":"o%d-%d"}`, k, k, body),
							map[string]string{"Idempotency-Key": fmt.Sprintf("hot-%d", k)})
						if err != nil {
							t.Errorf("key %d: %v", k, err)
							return
						}
						a := answer{body: body, status: r.status, replayed: r.header.Get("Idempotent-Replayed") == "true"}
						if r.status == http.StatusCreated {
							var v struct{ ID string }
							decode(t, r.body, &v)
							a.id = v.ID
						} else {
							a.reason = reasonOf(t, r)
						}
						mu.Lock()
						answers[k] = append(answers[k], a)
						mu.Unlock()
					})
				}
			}
			wg.Wait()
			redeemed, refused, conflicts := 0, 0, 0
			for k, as := range answers {
				var win *answer
				fresh := 0
				for i, a := range as {
					if a.status == http.StatusConflict && a.reason == "idempotency_conflict" {
						conflicts++
						continue
					}
					if win == nil {
						win = &as[i]
					}
					if a.body != win.body || a.status != win.status || a.id != win.id || a.reason != win.reason {
						t.Errorf("key %d: answers %+v and %+v", k, *win, a)
					}
					if !a.replayed {
						fresh++
					}
				}
				if win == nil || fresh != 1 {
					t.Errorf("key %d: answers %+v: want one body's answers, one of them fresh", k, as)
					continue
				}
				for _, a := range as {
					if a.body != win.body && (a.status != http.StatusConflict || a.reason != "idempotency_conflict") {
						t.Errorf("key %d: the losing body answered %+v, want 409 idempotency_conflict", k, a)
					}
				}
				if win.status == http.StatusCreated {
					redeemed++
				} else {
					refused++
				}
			}
			if u := h.used([]string{code}); u != redeemed || redeemed != 150 {
				t.Errorf("used %d, %d keys redeemed; want both 150", u, redeemed)
			}
			state := ""
			if t.Failed() {
				state = "FAILED: "
			}
			t.Logf("adversarial: one key three times at once on a hot code [%s]: %s%d keys: %d redeemed, %d refused, "+
				"each answered one way (one fresh, the rest replayed), the other body 409 (%d); used %d",
				backend, state, keys, redeemed, refused, conflicts, h.used([]string{code}))
		})
	}
}
