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
	"github.com/promocodes/promocodes/relay"
)

// readTopic returns every message of topic, all partitions.
func readTopic(t *testing.T, c *kafka.Client, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	low, high, err := c.Offsets(ctx, topic)
	if err != nil {
		t.Fatalf("offsets of %s: %v", topic, err)
	}
	var out []kafka.Message
	for p, hi := range high {
		if err := c.ReadRange(ctx, topic, p, low[p], hi, func(m kafka.Message) error {
			out = append(out, m)
			return nil
		}); err != nil {
			t.Fatalf("read %s/%d: %v", topic, p, err)
		}
	}
	return out
}

// TestEventsReachTheRedemptionsTopic: redemptions and rollbacks go through
// the outbox and its relay (package relay, which has the failure-path tests)
// to a real (embedded) Kafka-protocol broker, keyed by promotion, each with
// an event id; a replayed rollback adds none.
func TestEventsReachTheRedemptionsTopic(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)
			brokers := kafkatest.Broker(t)
			topic := kafkatest.Name(t, "redemptions")
			kc := kafka.Config{Brokers: brokers, ClientID: "test", Partitions: 4}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := kafka.EnsureTopics(ctx, kc, topic); err != nil {
				t.Fatal(err)
			}
			prod := kafka.NewProducer(kc)
			defer prod.Close()

			p, codes := h.seed(promotionSpec{n: 30, maxUsage: 1, perUser: 0})
			var ids []string
			for i, c := range codes {
				r, _ := h.redeem(c, fmt.Sprintf("u%d", i), nil)
				var rc receipt
				decode(t, r.body, &rc)
				ids = append(ids, rc.ID)
			}
			h.do("POST", "/v1/redemptions/"+ids[0]+"/rollback", redeemToken, `{"reason":"cancelled"}`, nil)
			h.do("POST", "/v1/redemptions/"+ids[0]+"/rollback", redeemToken, `{"reason":"cancelled"}`, nil) // replay: no event

			r := relay.New(relay.RedemptionEvents(h.st, topic), prod, relay.Config{}, nil, zaptest.NewLogger(t))
			if n, err := r.Drain(ctx); n != 31 || err != nil {
				t.Errorf("the relay published %d events (%v), want 31 (30 redemptions, 1 rollback)", n, err)
			}
			if n, err := r.Drain(ctx); n != 0 || err != nil {
				t.Errorf("a drained outbox published %d more, %v", n, err)
			}

			msgs := readTopic(t, kafka.NewClient(kc), topic)
			seen := map[string]bool{}
			types := map[string]int{}
			for _, m := range msgs {
				var ev promo.RedemptionEvent
				if err := json.Unmarshal(m.Value, &ev); err != nil {
					t.Fatalf("event %s: %v", m.Value, err)
				}
				if string(m.Key) != fmt.Sprint(p.ID) || ev.PromotionID != fmt.Sprint(p.ID) || ev.V != 1 || ev.EventID == "" {
					t.Errorf("event key %q, body %s", m.Key, m.Value)
				}
				if seen[ev.EventID] {
					t.Errorf("event %s published twice", ev.EventID)
				}
				seen[ev.EventID] = true
				types[ev.Type]++
				if ev.Type == promo.EventRolledBack && (ev.Redemption.ID != ids[0] || ev.Redemption.RolledBackAt == nil) {
					t.Errorf("rollback event %s", m.Value)
				}
			}
			if len(msgs) != 31 || types[promo.EventRedeemed] != 30 || types[promo.EventRolledBack] != 1 {
				t.Errorf("topic holds %d events %v, want 30 %s and 1 %s", len(msgs), types, promo.EventRedeemed, promo.EventRolledBack)
			}
		})
	}
}
