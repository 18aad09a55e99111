package redemption_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/promocodes/promocodes/redemption"
)

// noGuessLimit: these tests make many refused attempts on purpose.
var noGuessLimit = redemption.Config{GuessLimit: -1, GuessLimitPerToken: -1}

// hammer runs attempts requests on clients goroutines and counts answers by
// status and reason; any transport error or 5xx fails the test.
func hammer(t *testing.T, clients, attempts int, do func(i int) (reply, error)) map[string]int {
	t.Helper()
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		next   atomic.Int64
		wg     sync.WaitGroup
	)
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= attempts {
					return
				}
				r, err := do(i)
				key := ""
				switch {
				case err != nil:
					t.Errorf("attempt %d: %v", i, err)
					key = "transport error"
				case r.status >= 500:
					t.Errorf("attempt %d: %d %s", i, r.status, r.body)
					key = fmt.Sprint(r.status)
				case r.status == http.StatusCreated:
					key = "201"
				default:
					var p problemDoc
					_ = jsonUnmarshal(r.body, &p)
					key = fmt.Sprintf("%d %s", r.status, p.Reason)
				}
				mu.Lock()
				counts[key]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return counts
}

func TestHTTPConcurrency(t *testing.T) {
	// Full size: 10,000 attempts by 200 clients on 1,000 codes. Under the
	// race detector (make test) a tenth of that; make test-integration runs
	// the full size on SQLite and PostgreSQL without it.
	codesN, attempts, clients := 1000, 10_000, 200
	if raceEnabled {
		codesN, attempts, clients = 100, 1000, 50
		t.Logf("race detector on: flash sale of %d attempts on %d codes (make test-integration runs 10,000 on 1,000)",
			attempts, codesN)
	}
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Run("FlashSaleSingleUseCodes", func(t *testing.T) {
				h := newHarness(t, backend, noGuessLimit)
				_, codes := h.seed(promotionSpec{n: codesN, maxUsage: 1, perUser: 1})
				counts := hammer(t, clients, attempts, func(i int) (reply, error) {
					return h.redeem(codes[i%len(codes)], fmt.Sprintf("shopper-%d", i), nil)
				})
				if counts["201"] != codesN || counts["409 code_exhausted"] != attempts-codesN || len(counts) != 2 {
					t.Errorf("%d attempts on %d single-use codes: %v; want %d × 201 and the rest 409 code_exhausted",
						attempts, codesN, counts, codesN)
				}
				if u := h.used(codes); u != codesN {
					t.Errorf("the codes table says %d uses, want %d", u, codesN)
				}
				t.Logf("%s: %d attempts by %d clients on %d single-use codes: %v", backend, attempts, clients, codesN, counts)
			})
			t.Run("MaxUsage50Under500", func(t *testing.T) {
				h := newHarness(t, backend, noGuessLimit)
				_, codes := h.seed(promotionSpec{n: 1, maxUsage: 50, perUser: 0})
				counts := hammer(t, 100, 500, func(i int) (reply, error) {
					return h.redeem(codes[0], fmt.Sprintf("shopper-%d", i), nil)
				})
				if counts["201"] != 50 || counts["409 code_exhausted"] != 450 {
					t.Errorf("500 attempts on a max-50 code: %v; want exactly 50 successes", counts)
				}
				if u := h.used(codes); u != 50 {
					t.Errorf("used = %d, want 50", u)
				}
			})
			t.Run("OneUserRaces100Codes", func(t *testing.T) {
				h := newHarness(t, backend, noGuessLimit)
				_, codes := h.seed(promotionSpec{n: 100, maxUsage: 1, perUser: 1})
				counts := hammer(t, 100, 100, func(i int) (reply, error) {
					return h.redeem(codes[i], "the-same-user", nil)
				})
				if counts["201"] != 1 || counts["409 user_limit_reached"] != 99 {
					t.Errorf("one user racing 100 codes with perUserLimit 1: %v; want exactly 1 success", counts)
				}
				if u := h.used(codes); u != 1 {
					t.Errorf("uses over the 100 codes = %d, want 1", u)
				}
			})
			t.Run("SameIdempotencyKey50Times", func(t *testing.T) {
				h := newHarness(t, backend, noGuessLimit)
				_, codes := h.seed(promotionSpec{n: 1, maxUsage: 100, perUser: 0})
				var (
					mu      sync.Mutex
					answers []reply
				)
				hammer(t, 50, 50, func(int) (reply, error) {
					r, err := h.redeem(codes[0], "u1", map[string]string{"Idempotency-Key": "checkout-42"})
					mu.Lock()
					answers = append(answers, r)
					mu.Unlock()
					return r, err
				})
				for i, a := range answers {
					if a.status != http.StatusCreated || !bytes.Equal(a.body, answers[0].body) {
						t.Fatalf("answer %d = %d %s; want 201 and the same body as the first (%s)", i, a.status, a.body,
							answers[0].body)
					}
				}
				if u := h.used(codes); u != 1 {
					t.Errorf("used = %d after 50 requests with one key, want 1", u)
				}
			})
			t.Run("RollbacksRacingRedemptions", func(t *testing.T) {
				h := newHarness(t, backend, noGuessLimit)
				const limit = 20
				_, codes := h.seed(promotionSpec{n: 1, maxUsage: limit, perUser: 0})
				var (
					mu         sync.Mutex
					ids        []string
					successes  atomic.Int64
					rolledBack atomic.Int64
					nextToUndo int
				)
				// The race is exercised once a rollback has freed a use that a
				// later redemption took. On a loaded machine one round's
				// rollbacks can all land after its last redemption, so up to
				// five rounds run, the count checked after each.
				counts := map[string]int{}
				for round := 0; round < 5 && successes.Load() <= limit; round++ {
					counts = hammer(t, 40, 400, func(i int) (reply, error) {
						if i%3 != 2 {
							r, err := h.redeem(codes[0], fmt.Sprintf("s%d-%d", round, i), nil)
							if err == nil && r.status == http.StatusCreated {
								var rc struct{ ID string }
								_ = jsonUnmarshal(r.body, &rc)
								successes.Add(1)
								mu.Lock()
								ids = append(ids, rc.ID)
								mu.Unlock()
							}
							return r, err
						}
						mu.Lock()
						id := ""
						if nextToUndo < len(ids) {
							id = ids[nextToUndo]
							nextToUndo++
						}
						mu.Unlock()
						if id == "" {
							return reply{status: http.StatusCreated}, nil // nothing to undo yet
						}
						r, err := h.try("POST", "/v1/redemptions/"+id+"/rollback", redeemToken, `{"reason":"cancelled"}`, nil)
						if err == nil && r.status == http.StatusOK && r.header.Get("Idempotent-Replayed") == "" {
							rolledBack.Add(1)
						}
						if err == nil && r.status == http.StatusOK {
							r.status = http.StatusCreated // counted with the successes in hammer's map; checked below
						}
						return r, err
					})
					u := h.used(codes)
					want := int(successes.Load() - rolledBack.Load())
					if u != want || u < 0 || u > limit {
						t.Fatalf("round %d: used = %d after %d redemptions and %d rollbacks; want %d, within [0, %d]",
							round, u, successes.Load(), rolledBack.Load(), want, limit)
					}
				}
				if successes.Load() <= limit {
					t.Errorf("only %d redemptions succeeded in five rounds (%d rollbacks; the last round's answers %v): "+
						"rollbacks never freed a use, the race was not exercised", successes.Load(), rolledBack.Load(), counts)
				}
			})
		})
	}
}
