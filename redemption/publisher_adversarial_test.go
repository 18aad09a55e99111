package redemption_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/redemption"
)

// TestAdversarialRedemptionEventsThroughBrokerOutage: redemptions and a
// rollback are in the outbox when the broker goes down; the publisher's
// drain fails, and the API process is restarted (a new publisher) while the
// broker comes back. Once the failed publisher's lease ended, every event
// reaches the topic exactly once: none lost to a mark written before the
// broker's acknowledgement, none doubled. (The lease is cut to a millisecond
// so the test need not wait it out.)
func TestAdversarialRedemptionEventsThroughBrokerOutage(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)
			e := kafkatest.StartEmbedded(t)
			kc := kafka.Config{Brokers: e.Addrs(), ClientID: "test", Partitions: 2}
			topic := kafkatest.Name(t, "redemptions")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := kafka.EnsureTopics(ctx, kc, topic); err != nil {
				t.Fatal(err)
			}
			prod := kafka.NewProducer(kc)
			defer prod.Close()

			_, codes := h.seed(promotionSpec{n: 20, maxUsage: 1})
			var first string
			for i, c := range codes {
				r, _ := h.redeem(c, fmt.Sprintf("u%d", i), nil)
				var rc receipt
				decode(t, r.body, &rc)
				if i == 0 {
					first = rc.ID
				}
			}
			h.do("POST", "/v1/redemptions/"+first+"/rollback", redeemToken, `{"reason":"cancelled"}`, nil)
			const want = 21

			log := zaptest.NewLogger(t)
			e.Stop()
			dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
			n, err := redemption.NewPublisher(shortLease{h.st}, prod, topic, time.Second, log).Drain(dctx)
			dcancel()
			if err == nil || n != 0 {
				t.Fatalf("Drain with the broker down = %d, %v; want 0 and an error", n, err)
			}
			e.Start()
			// The failed publisher's 1 ms lease must have ended: SQLite keeps
			// the lease on its clock in whole milliseconds, so a drain within
			// the next 2 ms found every event still leased and published
			// none (2 runs in 5 on SQLite).
			time.Sleep(10 * time.Millisecond)
			p := redemption.NewPublisher(shortLease{h.st}, prod, topic, time.Second, log) // the restarted API's
			for attempt := 1; ; attempt++ {                                               // the producer reconnects; the poll loop would retry the same way
				dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := p.Drain(dctx)
				dcancel()
				if err == nil {
					break
				}
				if attempt == 10 || ctx.Err() != nil {
					t.Fatalf("Drain after the broker came back: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}

			msgs := readTopic(t, kafka.NewClient(kc), topic)
			ids := map[string]int{}
			for _, m := range msgs {
				var ev promo.RedemptionEvent
				if err := json.Unmarshal(m.Value, &ev); err != nil {
					t.Fatalf("event %s: %v", m.Value, err)
				}
				ids[ev.EventID]++
			}
			doubled := 0
			for _, c := range ids {
				if c > 1 {
					doubled++
				}
			}
			if len(ids) != want || len(msgs) != want || doubled != 0 {
				t.Errorf("topic holds %d messages of %d distinct events (%d doubled), want %d each once",
					len(msgs), len(ids), doubled, want)
			}
			t.Logf("adversarial: redemption events through a broker outage [%s]: drain failed while the broker was down "+
				"(0 published), %d/%d events on the topic after the broker and the API restarted, %d doubled",
				backend, len(ids), want, doubled)
		})
	}
}
