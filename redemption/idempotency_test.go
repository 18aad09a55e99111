package redemption_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promocodes/promocodes/redemption"
)

// TestIdempotencyRecordsExpire: a key is answered from its record until the
// record is older than IdempotencyRetention and the sweeper deleted it; the
// same key is then a new redemption. With -1 the record is kept.
func TestIdempotencyRecordsExpire(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			for _, tc := range []struct {
				retention time.Duration
				replayed  bool // the key's repeat two hours on
			}{{time.Hour, false}, {-1, true}} {
				var ahead atomic.Int64
				h := newHarness(t, backend, redemption.Config{GuessLimit: -1, SweepInterval: 20 * time.Millisecond,
					IdempotencyRetention: tc.retention,
					Clock:                func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
				code := "IDEMWEEK" + map[bool]string{true: "KEPT", false: "SWEPT"}[tc.retention < 0]
				h.vanity(code, 10, 0)
				key := map[string]string{"Idempotency-Key": "checkout-7"}
				if r, err := h.redeem(code, "alice", key); err != nil || r.status != http.StatusCreated {
					t.Fatalf("first redemption: %v %d %s", err, r.status, r.body)
				}
				if r, err := h.redeem(code, "alice", key); err != nil || r.status != http.StatusCreated ||
					r.header.Get("Idempotent-Replayed") != "true" {
					t.Fatalf("repeat within retention: %v %d %s, want 201 replayed", err, r.status, r.body)
				}
				ahead.Store(int64(2 * time.Hour))
				time.Sleep(300 * time.Millisecond) // ~15 sweeps
				r, err := h.redeem(code, "alice", key)
				if err != nil || r.status != http.StatusCreated || (r.header.Get("Idempotent-Replayed") == "true") != tc.replayed {
					t.Fatalf("retention %s: repeat two hours on: %v %d %s (replayed %q), want 201 replayed %v",
						tc.retention, err, r.status, r.body, r.header.Get("Idempotent-Replayed"), tc.replayed)
				}
			}
		})
	}
}
