package relay_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/relay"
)

// TestAdversarialRedemptionEventsThroughBrokerOutage: redemptions and a
// rollback are in the outbox when the broker goes down; the relay's drain
// fails, and the API process is restarted (a new relay) while the broker
// comes back. Once the failed relay's lease ended, every event reaches the
// topic exactly once: none lost to a mark written before the broker's
// acknowledgement, none doubled. (The lease is cut to a millisecond so the
// test need not wait it out.)
func TestAdversarialRedemptionEventsThroughBrokerOutage(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string, st store) {
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

		ids := redeemed(t, st, "OUTAGE21", 20)
		rollBack(t, st, ids[0])
		const want = 21
		src := shortLease(anySource(relay.RedemptionEvents(st, topic)))

		log := zaptest.NewLogger(t)
		e.Stop()
		dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
		n, err := relay.New(src, prod, relay.Config{}, nil, log).Drain(dctx)
		dcancel()
		if err == nil || n != 0 {
			t.Fatalf("Drain with the broker down = %d, %v; want 0 and an error", n, err)
		}
		e.Start()
		time.Sleep(10 * time.Millisecond)                   // past the shortened lease
		r := relay.New(src, prod, relay.Config{}, nil, log) // the restarted API's
		published := 0
		// The producer reconnects; the relay's loop would retry the same way.
		for attempt := 1; published < want; attempt++ {
			dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
			n, err := r.Drain(dctx)
			dcancel()
			published += n
			if attempt == 10 || ctx.Err() != nil {
				t.Fatalf("after the broker came back, %d of %d events published in %d drains (last: %v)", published, want, attempt, err)
			}
			if published < want {
				time.Sleep(200 * time.Millisecond)
			}
		}

		c := kafka.NewClient(kc)
		defer c.Close()
		low, high, err := c.Offsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		msgs := 0
		seen := map[string]int{}
		for p, hi := range high {
			if err := c.ReadRange(ctx, topic, p, low[p], hi, func(m kafka.Message) error {
				var ev promo.RedemptionEvent
				if err := json.Unmarshal(m.Value, &ev); err != nil {
					t.Fatalf("event %s: %v", m.Value, err)
				}
				seen[ev.EventID]++
				msgs++
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		doubled := 0
		for _, c := range seen {
			if c > 1 {
				doubled++
			}
		}
		if len(seen) != want || msgs != want || doubled != 0 {
			t.Errorf("topic holds %d messages of %d distinct events (%d doubled), want %d each once",
				msgs, len(seen), doubled, want)
		}
		t.Logf("adversarial: redemption events through a broker outage [%s]: drain failed while the broker was down "+
			"(0 published), %d/%d events on the topic after the broker and the API restarted, %d doubled",
			backend, len(seen), want, doubled)
	})
}
