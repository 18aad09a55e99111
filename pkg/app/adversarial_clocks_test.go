package app

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/generator"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/shovel"
)

// skewed is a host clock off by d.
func skewed(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }

// gatedPublisher is an API replica's Kafka producer as the outbox sees it,
// which a test can hold in the middle of a publish (a slow broker, a
// stalled replica) or make fail (a replica that dies after claiming).
type gatedPublisher struct {
	next    api.Publisher
	gate    chan struct{} // nil: open
	entered chan struct{} // receives once per publish that waits at the gate
	mu      sync.Mutex
	fail    bool
}

func (p *gatedPublisher) Publish(ctx context.Context, msgs ...kafka.Message) error {
	p.mu.Lock()
	fail, gate := p.fail, p.gate
	p.mu.Unlock()
	if fail {
		return errors.New("replica stopped")
	}
	if gate != nil {
		p.entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return p.next.Publish(ctx, msgs...)
}

// newGenerated is a generated promotion of count codes in batches of size.
func newGenerated(name string, count, size int64) promo.NewPromotion {
	return promo.NewPromotion{
		Promotion: promo.Promotion{Name: name, Kind: promo.KindGenerated, CodeCount: count,
			Format:          &promo.Format{Charset: "alnum", Length: 12},
			MaxUsagePerCode: 1, PerUserLimit: 1, CounterName: "adversarial/" + name},
		BatchSize: size, SeqLimit: math.MaxInt64,
	}
}

// eachMessage calls fn for every message of topic.
func eachMessage(t *testing.T, client *kafka.Client, topic string, fn func(kafka.Message)) {
	t.Helper()
	ctx := context.Background()
	low, high, err := client.Offsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p, hw := range high {
		if err := client.ReadRange(ctx, topic, p, low[p], hw, func(m kafka.Message) error {
			fn(m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// keysIn counts the messages of topic per key.
func keysIn(t *testing.T, client *kafka.Client, topic string) map[string]int {
	t.Helper()
	keys := map[string]int{}
	eachMessage(t, client, topic, func(m kafka.Message) { keys[string(m.Key)]++ })
	return keys
}

// Two API replicas whose hosts' clocks are two hours apart share the batch
// outbox. With leases on each replica's own clock, the fast one took over
// every lease the slow one held while it was publishing (80 events for 40
// batches), and held its own for two hours: a fast replica stopped after
// claiming left its batches unpublished for 2 h 45 s.
func TestAdversarialSkewedReplicaOutboxLease(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string, brokers []string) {
		ctx := context.Background()
		db := testDatabase(t, backend)
		topic := kafkatest.Name(t, "batches")
		kc := kafka.Config{Brokers: brokers, Partitions: 2}
		if err := kafka.EnsureTopics(ctx, kc, topic); err != nil {
			t.Fatal(err)
		}
		prod, client := kafka.NewProducer(kc), kafka.NewClient(kc)
		t.Cleanup(func() { _ = prod.Close(); _ = client.Close() })
		log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
		replica := func(skew time.Duration, pub api.Publisher) (*api.Outbox, Store) {
			st, err := openStore(ctx, db, DBSession{}, "promocodes-api", skewed(skew))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(st.Close)
			return api.NewOutbox(st, pub, topic, time.Second, log), st
		}
		slowPub := &gatedPublisher{next: prod, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
		fastPub := &gatedPublisher{next: prod}
		slow, slowSt := replica(-2*time.Hour, slowPub)
		fast, _ := replica(2*time.Hour, fastPub)
		create := func(prefix string, n int) map[string]bool {
			keys := map[string]bool{}
			for i := range n {
				p, _, err := slowSt.CreatePromotion(ctx, newGenerated(fmt.Sprintf("%s-%d", prefix, i), 10, 10))
				if err != nil {
					t.Fatal(err)
				}
				keys[fmt.Sprintf("%d/0", p.ID)] = true
			}
			return keys
		}

		// Both publish at once: the slow one is mid-publish when the fast
		// one drains.
		first := create("at-once", 40)
		slowDone := make(chan error, 1)
		go func() { _, err := slow.Drain(ctx); slowDone <- err }()
		<-slowPub.entered
		if _, err := fast.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		close(slowPub.gate)
		if err := <-slowDone; err != nil {
			t.Fatal(err)
		}
		slowPub.mu.Lock()
		slowPub.gate = nil
		slowPub.mu.Unlock()
		events, dup := 0, 0
		for k, n := range keysIn(t, client, topic) {
			if !first[k] {
				t.Fatalf("unexpected key %q in the batches topic", k)
			}
			events += n
			dup += n - 1
		}
		if events != len(first) {
			t.Errorf("%d events for %d batches (%d duplicates)", events, len(first), dup)
		}

		// The fast replica claims, fails to publish and stops: the slow one
		// publishes the batches once the lease (45 s) is over.
		second := create("stopped", 10)
		fastPub.mu.Lock()
		fastPub.fail = true
		fastPub.mu.Unlock()
		if _, err := fast.Drain(ctx); err == nil {
			t.Fatal("the stopped replica published")
		}
		claimed := time.Now()
		var took time.Duration
		for time.Since(claimed) < 90*time.Second {
			if _, err := slow.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			got := keysIn(t, client, topic)
			missing := 0
			for k := range second {
				if got[k] == 0 {
					missing++
				}
			}
			if missing == 0 {
				took = time.Since(claimed)
				break
			}
			if missing != len(second) {
				t.Fatalf("%d of %d published before the lease ended", len(second)-missing, len(second))
			}
			time.Sleep(500 * time.Millisecond)
		}
		if took == 0 || took < 40*time.Second {
			t.Fatalf("the stopped fast replica's 10 batches were published after %v (0: not within 90 s); want after its 45 s lease", took)
		}
		if events == len(first) {
			t.Logf("adversarial: %s [%s]: %s", "skewed replica clocks (+2h/-2h) on the outbox lease", backend, fmt.Sprintf(
				"both publishing %d batches at once: %d events, %d duplicates; a +2h replica stopped after claiming 10 batches: "+
					"the -2h replica published them %.1f s later (lease 45 s)", len(first), events, dup, took.Seconds()))
		}
	})
}

// failingFor is the generator's store with faults: promotion id fails every
// chunk until healed, and each batch of the transient promotions fails its
// first chunk once.
type failingFor struct {
	generator.Store
	mu        sync.Mutex
	failing   int64
	healAt    time.Time
	transient map[int64]bool
	failed    map[promo.BatchRef]bool
}

func (f *failingFor) CommitChunk(ctx context.Context, c promo.Chunk) (int64, error) {
	f.mu.Lock()
	ref := c.Batch
	fail := ref.PromotionID == f.failing && time.Now().Before(f.healAt)
	if f.transient[ref.PromotionID] && !f.failed[ref] {
		f.failed[ref], fail = true, true
	}
	f.mu.Unlock()
	if fail {
		return 0, errors.New("injected fault: chunk commit refused")
	}
	return f.Store.CommitChunk(ctx, c)
}

// skewRun is what one generator clock came to.
type skewRun struct {
	skew      time.Duration
	completed time.Duration   // until every batch was complete
	moves     []time.Duration // when the failing batch's events reached the retry topic
	parked    int
	exact     bool
}

// runSkewedGenerator runs a generator whose host clock is off by skew, the
// shovel and the outbox on db, and returns how the failures were retried: a
// promotion whose 2 batches fail for 15 s, and 4 batches that fail once,
// all behind one another in the error topic's 2 partitions.
func runSkewedGenerator(t *testing.T, db DBConfig, brokers []string, skew time.Duration) skewRun {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := "fast"
	if skew < 0 {
		clock = "slow"
	}
	name := func(s string) string { return kafkatest.Name(t, s+"-"+clock) }
	tp := kafka.Topics{Batches: name("batches"), Retry: name("retry"), Error: name("error"), Dead: name("dead")}
	kc := kafka.Config{Brokers: brokers, Partitions: 2}
	if err := kafka.EnsureTopics(ctx, kc, tp.All()...); err != nil {
		t.Fatal(err)
	}
	prod, client := kafka.NewProducer(kc), kafka.NewClient(kc)
	defer prod.Close()
	defer client.Close()
	st, err := openStore(ctx, db, DBSession{}, "promocodes-generator", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	failing, _, err := st.CreatePromotion(ctx, newGenerated(name("failing"), 20_000, 10_000))
	if err != nil {
		t.Fatal(err)
	}
	faults := &failingFor{Store: st, failing: failing.ID, transient: map[int64]bool{}, failed: map[promo.BatchRef]bool{}}
	ids := []int64{failing.ID}
	for i := range 2 {
		p, _, err := st.CreatePromotion(ctx, newGenerated(name(fmt.Sprintf("healthy-%d", i)), 20_000, 10_000))
		if err != nil {
			t.Fatal(err)
		}
		faults.transient[p.ID] = true
		ids = append(ids, p.ID)
	}
	start := time.Now()
	faults.healAt = start.Add(15 * time.Second)
	gen, err := generator.New(generator.Config{Workers: 2, ChunkSize: 10_000, MaxAttempts: 1,
		RetryInitial: 50 * time.Millisecond, ErrorTopic: tp.Error, DeadTopic: tp.Dead,
		Secret: []byte("in-process-test-secret-0123456789abcdef"), Clock: skewed(skew)}, faults, prod,
		func(ctx context.Context) (generator.Consumer, error) {
			return kafka.NewConsumer(kc, name("generator"), []string{tp.Batches, tp.Retry})
		}, log.Named("generator"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := shovel.New(shovel.Config{ErrorTopic: tp.Error, RetryTopic: tp.Retry, DeadTopic: tp.Dead, GroupID: name("shovel"),
		MaxRetries: 5, Interval: 500 * time.Millisecond, RetryBackoff: 2 * time.Second, RetryBackoffMax: time.Minute},
		client, prod, st, log.Named("shovel"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = gen.Run(ctx) }()
	go func() { defer wg.Done(); _ = sh.Run(ctx) }()
	defer wg.Wait()
	defer cancel()
	if _, err := api.NewOutbox(st, prod, tp.Batches, time.Second, log).Drain(ctx); err != nil {
		t.Fatal(err)
	}
	run := skewRun{skew: skew}
	for time.Since(start) < 75*time.Second {
		complete := true
		for _, id := range ids {
			ps, err := st.GetPromotion(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			complete = complete && ps.GeneratedCount == ps.CodeCount
		}
		if run.parked = len(keysIn(t, client, tp.Dead)); run.parked > 0 || complete {
			if complete {
				run.completed = time.Since(start)
			}
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	eachMessage(t, client, tp.Retry, func(m kafka.Message) {
		if ev, err := promo.DecodeEvent(m.Value); err == nil && ev.Ref().PromotionID == failing.ID {
			run.moves = append(run.moves, m.Time.Sub(start).Round(100*time.Millisecond))
		}
	})
	sort.Slice(run.moves, func(i, j int) bool { return run.moves[i] < run.moves[j] })
	run.exact = run.completed > 0
	for _, id := range ids {
		seen := map[string]bool{}
		if err := st.ExportCodes(ctx, id, func(code string) error { seen[code] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		run.exact = run.exact && len(seen) == 20_000
	}
	return run
}

// A generator whose clock is two hours off must not decide when the shovel
// retries its failures: fast, the old shovel held its failed batches (and
// the healthy ones behind them in the error topic) for two hours; slow, it
// skipped the backoff and parked a batch whose fault lasted 15 s.
func TestAdversarialSkewedGeneratorClockShovel(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string, brokers []string) {
		db := testDatabase(t, backend)
		var runs []skewRun
		for _, skew := range []time.Duration{2 * time.Hour, -2 * time.Hour} {
			runs = append(runs, runSkewedGenerator(t, db, brokers, skew))
		}
		var parts []string
		for _, r := range runs {
			if r.parked != 0 || r.completed == 0 || !r.exact {
				t.Errorf("generator %+v: %d parked, completed after %v (0: not within 75 s), exact %t; failing batch moved at %v",
					r.skew, r.parked, r.completed, r.exact, r.moves)
			}
			parts = append(parts, fmt.Sprintf("generator %+.0fh: failing batch moved to retry at %v, all 6 batches complete at %.1f s",
				r.skew.Hours(), r.moves, r.completed.Seconds()))
		}
		if !t.Failed() {
			t.Logf("adversarial: %s [%s]: %s", "skewed generator clock (+2h/-2h) on the shovel's backoff", backend,
				strings.Join(parts, "; ")+"; backoff 2 s doubling, fault 15 s: 0 parked, 60000/60000 codes exact in each")
		}
	})
}
