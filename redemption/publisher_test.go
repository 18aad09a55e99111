package redemption_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/redemption"
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
// the outbox to a real (embedded) Kafka-protocol broker, keyed by promotion,
// each with an event id; a second publisher (another API replica) publishes
// nothing twice in the normal case.
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

			// Two publishers drain concurrently, as two API replicas would.
			log := zaptest.NewLogger(t)
			a := redemption.NewPublisher(h.st, prod, topic, time.Second, log)
			b := redemption.NewPublisher(h.st, prod, topic, time.Second, log)
			na, nb := make(chan int, 1), make(chan int, 1)
			go func() { n, _ := a.Drain(ctx); na <- n }()
			go func() { n, _ := b.Drain(ctx); nb <- n }()
			if n := <-na + <-nb; n != 31 {
				t.Errorf("publishers published %d events, want 31 (30 redemptions, 1 rollback)", n)
			}
			if n, err := a.Drain(ctx); n != 0 || err != nil {
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

// flakyProducer stands in for the broker: it keeps what it acknowledged, and
// while fail is set it writes nothing and returns fail, as a broker outage
// would.
type flakyProducer struct {
	mu   sync.Mutex
	fail error
	got  []kafka.Message
}

func (p *flakyProducer) Publish(_ context.Context, msgs ...kafka.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.got = append(p.got, msgs...)
	return nil
}

func (p *flakyProducer) setFail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = err
}

// wantEachOnce checks that the broker acknowledged want distinct events,
// each exactly once.
func (p *flakyProducer) wantEachOnce(t *testing.T, want int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := map[string]int{}
	for _, m := range p.got {
		var ev promo.RedemptionEvent
		if err := json.Unmarshal(m.Value, &ev); err != nil || ev.EventID == "" {
			t.Fatalf("event %s: %v", m.Value, err)
		}
		ids[ev.EventID]++
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s published %d times", id, n)
		}
	}
	if len(ids) != want {
		t.Errorf("%d distinct events published, want %d", len(ids), want)
	}
}

// failingEventMarks is the store with a MarkEventsPublished that fails the
// first fails times, as a database that drops the connection would.
type failingEventMarks struct {
	redemption.EventStore
	fails int
}

func (f *failingEventMarks) MarkEventsPublished(ctx context.Context, seqs []int64) error {
	if f.fails > 0 {
		f.fails--
		return errors.New("database connection lost")
	}
	return f.EventStore.MarkEventsPublished(ctx, seqs)
}

// redeemAll redeems every code once (a user each) and returns how many
// answered 201.
func redeemAll(t *testing.T, h *harness, codes []string) int {
	t.Helper()
	n := 0
	for i, c := range codes {
		r, err := h.redeem(c, fmt.Sprintf("u%d", i), nil)
		if err != nil || r.status != http.StatusCreated {
			t.Fatalf("redeem %s: %v %d %s", c, err, r.status, r.body)
		}
		n++
	}
	return n
}

// shortLease is the store with every claim's lease cut to a millisecond,
// so a test need not wait out the real lease to see what another replica
// would claim once a failed publisher's lease ended.
type shortLease struct{ redemption.EventStore }

func (s shortLease) ClaimEvents(ctx context.Context, limit int, _ time.Duration) ([]promo.OutboxEvent, error) {
	return s.EventStore.ClaimEvents(ctx, limit, time.Millisecond)
}

// TestPublisherFailedPublishLeavesEventsUnpublished: a drain whose publish
// fails marks nothing published. The same publisher's next drain publishes
// every event exactly once; and when the failed publisher is gone (crashed
// after the failure), another replica publishes them once its lease ended.
// Marking the events before the broker acknowledged them would lose them.
func TestPublisherFailedPublishLeavesEventsUnpublished(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)
			ctx := context.Background()
			log := zaptest.NewLogger(t)
			prod := &flakyProducer{}

			// The same publisher, after the broker came back.
			_, codes := h.seed(promotionSpec{n: 7, maxUsage: 1})
			want := redeemAll(t, h, codes)
			p := redemption.NewPublisher(h.st, prod, "redemptions", time.Second, log)
			prod.setFail(errors.New("broker down"))
			if n, err := p.Drain(ctx); err == nil || n != 0 {
				t.Fatalf("Drain with the broker down = %d, %v; want 0 and an error", n, err)
			}
			prod.setFail(nil)
			if n, err := p.Drain(ctx); err != nil || n != want {
				t.Fatalf("Drain after the broker came back = %d, %v; want %d, nil: the events the failed drain "+
					"claimed did not go out", n, err, want)
			}
			if n, err := p.Drain(ctx); err != nil || n != 0 {
				t.Errorf("a third Drain = %d, %v; want 0", n, err)
			}
			prod.wantEachOnce(t, want)

			// A publisher that failed and then died: another replica takes
			// the events over once the lease ended.
			_, codes = h.seed(promotionSpec{n: 6, maxUsage: 1, format: promo.Format{Charset: "alnum", Length: 10, Prefix: "U"}})
			more := redeemAll(t, h, codes)
			prod.setFail(errors.New("broker down"))
			if n, err := redemption.NewPublisher(shortLease{h.st}, prod, "redemptions", time.Second, log).Drain(ctx); err == nil || n != 0 {
				t.Fatalf("Drain with the broker down = %d, %v; want 0 and an error", n, err)
			}
			prod.setFail(nil)
			time.Sleep(10 * time.Millisecond) // past the shortened lease
			if n, err := redemption.NewPublisher(shortLease{h.st}, prod, "redemptions", time.Second, log).Drain(ctx); err != nil || n != more {
				t.Fatalf("another replica's Drain after the failed publisher died = %d, %v; want %d, nil: the failed "+
					"publish left the events marked published", n, err, more)
			}
			if n, err := redemption.NewPublisher(h.st, prod, "redemptions", time.Second, log).Drain(ctx); err != nil || n != 0 {
				t.Errorf("a replica's Drain after everything went out = %d, %v; want 0", n, err)
			}
			prod.wantEachOnce(t, want+more)
		})
	}
}

// TestPublisherFailedMarkDoesNotRepublish: when the broker acknowledged a
// page but marking it published failed, the next drain retries the mark
// alone: nothing is published twice.
func TestPublisherFailedMarkDoesNotRepublish(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, noGuessLimit)
			_, codes := h.seed(promotionSpec{n: 5, maxUsage: 1})
			want := redeemAll(t, h, codes)
			ctx := context.Background()
			prod := &flakyProducer{}
			st := &failingEventMarks{EventStore: h.st, fails: 2}
			p := redemption.NewPublisher(st, prod, "redemptions", time.Second, zaptest.NewLogger(t))
			for i := range 2 {
				if n, err := p.Drain(ctx); err == nil || n != 0 {
					t.Fatalf("Drain %d with the mark failing = %d, %v; want 0 and an error", i+1, n, err)
				}
			}
			if n, err := p.Drain(ctx); err != nil || n != 0 {
				t.Fatalf("Drain after the database came back = %d, %v; want 0 (the events went out already), nil", n, err)
			}
			if n, err := redemption.NewPublisher(h.st, prod, "redemptions", time.Second, zaptest.NewLogger(t)).Drain(ctx); err != nil || n != 0 {
				t.Errorf("another replica's Drain = %d, %v; want 0: the marks were not written", n, err)
			}
			prod.wantEachOnce(t, want)
		})
	}
}
