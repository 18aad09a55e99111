package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func cfgFor(brokers []string, partitions int) kafka.Config {
	return kafka.Config{Brokers: brokers, ClientID: "promocodes-test", Partitions: partitions}
}

func ensure(t *testing.T, ctx context.Context, cfg kafka.Config, topics ...string) {
	t.Helper()
	if err := kafka.EnsureTopics(ctx, cfg, topics...); err != nil {
		t.Fatal(err)
	}
}

func newProducer(t *testing.T, cfg kafka.Config) *kafka.Producer {
	p := kafka.NewProducer(cfg)
	t.Cleanup(func() { p.Close() })
	return p
}

func newConsumer(t *testing.T, cfg kafka.Config, group string, topics ...string) *kafka.Consumer {
	t.Helper()
	c, err := kafka.NewConsumer(cfg, group, topics)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newClient(t *testing.T, cfg kafka.Config) *kafka.Client {
	c := kafka.NewClient(cfg)
	t.Cleanup(func() { c.Close() })
	return c
}

func msgs(topic string, n int, prefix string) []kafka.Message {
	out := make([]kafka.Message, n)
	for i := range out {
		out[i] = kafka.Message{Topic: topic, Key: fmt.Appendf(nil, "%s-k%d", prefix, i), Value: fmt.Appendf(nil, "%s-%d", prefix, i)}
	}
	return out
}

func fetchN(t *testing.T, ctx context.Context, c *kafka.Consumer, n int) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for len(out) < n {
		m, err := c.Fetch(ctx)
		if err != nil {
			t.Fatalf("fetched %d of %d: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

// fetchNone asserts nothing arrives within d.
func fetchNone(t *testing.T, c *kafka.Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := c.Fetch(ctx); err == nil {
		t.Fatalf("unexpected message %s %q", m, m.Value)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fetch: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (kafka.Config{}).Validate(); err == nil {
		t.Error("empty config validated")
	}
	if err := (kafka.Config{Brokers: []string{"x:1"}}).Validate(); err != nil {
		t.Error(err)
	}
	if err := kafka.DefaultTopics().Validate(); err != nil {
		t.Error(err)
	}
	if got := kafka.DefaultTopics().All(); !slices.Equal(got, []string{"promotion-code-batches", "promotion-code-batches-retry", "promotion-code-batches-error", "promotion-code-batches-dead"}) {
		t.Errorf("All() = %v", got)
	}
	for _, bad := range []kafka.Topics{
		{Batches: "a", Retry: "a", Error: "c", Dead: "d"},
		{Batches: "a", Retry: "b", Error: "c"},
		{Batches: "a b", Retry: "b", Error: "c", Dead: "d"},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

func TestHeaders(t *testing.T) {
	var m kafka.Message
	if _, ok := m.Header(promo.HeaderRetryCount); ok {
		t.Fatal("header on empty message")
	}
	m.Headers = []kafka.Header{{Key: "x-retry-count", Value: []byte("1")}, {Key: "x-retry-count", Value: []byte("2")}}
	shared := m.Headers
	if v, _ := m.Header("x-retry-count"); v != "2" {
		t.Fatalf("Header = %q, want last occurrence 2", v)
	}
	m.SetHeader("x-retry-count", "3")
	if v, _ := m.Header("x-retry-count"); v != "3" || len(m.Headers) != 1 {
		t.Fatalf("after SetHeader: %v", m.Headers)
	}
	if string(shared[1].Value) != "2" {
		t.Fatal("SetHeader modified a shared headers slice")
	}
	m.SetHeader("x-error", "boom")
	m.DelHeader("x-retry-count")
	if _, ok := m.Header("x-retry-count"); ok || len(m.Headers) != 1 {
		t.Fatalf("after DelHeader: %v", m.Headers)
	}
}

func TestEventMessage(t *testing.T) {
	e := promo.Event{V: 1, PromotionID: "42", BatchNo: 7, SeqStart: 350000, CodeCount: 50000}
	m := kafka.EventMessage("t", e)
	if string(m.Key) != "42/7" || m.Topic != "t" {
		t.Fatalf("key %q topic %q", m.Key, m.Topic)
	}
	got, err := promo.DecodeEvent(m.Value)
	if err != nil || got != e {
		t.Fatalf("DecodeEvent = %+v, %v", got, err)
	}
}

func TestEnsureTopicsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 30*time.Second)
	cfg := cfgFor(kafkatest.Broker(t), 3)
	a, b := kafkatest.Name(t, "a"), kafkatest.Name(t, "b")
	ensure(t, ctx, cfg, a)
	ensure(t, ctx, cfg, a, b) // one exists, one new
	cfg.Partitions = 5        // existing topics keep their partition count
	ensure(t, ctx, cfg, a, b)
	cl := newClient(t, cfg)
	for _, topic := range []string{a, b} {
		ps, err := cl.Partitions(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ps, []int{0, 1, 2}) {
			t.Fatalf("%s partitions %v", topic, ps)
		}
	}
	if _, err := cl.Partitions(ctx, kafkatest.Name(t, "missing")); err == nil {
		t.Fatal("partitions of a missing topic")
	}
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCommitAndResume: a consumer that restarts resumes after its last
// commit; fetched but uncommitted messages come again.
func TestCommitAndResume(t *testing.T) {
	t.Parallel()
	testCommitAndResume(t, kafkatest.Brokers(t))
}

func testCommitAndResume(t *testing.T, brokers []string) {
	ctx := testCtx(t, 45*time.Second)
	cfg := cfgFor(brokers, 1) // one partition: a total order to reason about
	topic, group := kafkatest.Name(t, "t"), kafkatest.Name(t, "g")
	ensure(t, ctx, cfg, topic)
	p := newProducer(t, cfg)
	if err := p.Publish(ctx, msgs(topic, 10, "m")...); err != nil {
		t.Fatal(err)
	}

	c, err := kafka.NewConsumer(cfg, group, []string{topic})
	if err != nil {
		t.Fatal(err)
	}
	got := fetchN(t, ctx, c, 6)
	for i, m := range got {
		if want := fmt.Sprintf("m-%d", i); string(m.Value) != want || m.Offset != int64(i) || m.Topic != topic {
			t.Fatalf("message %d: %s %q, want %s", i, m, m.Value, want)
		}
	}
	if err := c.Commit(ctx, got[3]); err != nil { // m-0..m-3 done; m-4, m-5 fetched, not done
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(ctx); !errors.Is(err, kafka.ErrClosed) {
		t.Fatalf("Fetch after Close: %v", err)
	}

	c = newConsumer(t, cfg, group, topic)
	got = fetchN(t, ctx, c, 6)
	if string(got[0].Value) != "m-4" || string(got[5].Value) != "m-9" {
		t.Fatalf("resumed at %q..%q, want m-4..m-9", got[0].Value, got[5].Value)
	}
	if err := c.Commit(ctx, got...); err != nil {
		t.Fatal(err)
	}
	fetchNone(t, c, 500*time.Millisecond)
	cl := newClient(t, cfg)
	if lag, err := cl.Lag(ctx, group, topic); err != nil || lag != 0 {
		t.Fatalf("Lag = %d, %v; want 0", lag, err)
	}
}

// TestGroupSplitsPartitions: two members of one group over two topics share
// the partitions; with every message committed, each is seen exactly once.
func TestGroupSplitsPartitions(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 50*time.Second)
	cfg := cfgFor(kafkatest.Broker(t), 4)
	t1, t2, group := kafkatest.Name(t, "t1"), kafkatest.Name(t, "t2"), kafkatest.Name(t, "g")
	ensure(t, ctx, cfg, t1, t2)

	// Both members join before anything is published, so the assignment is
	// settled and no message is fetched by a member that then loses it.
	c1 := newConsumer(t, cfg, group, t1, t2)
	c2 := newConsumer(t, cfg, group, t1, t2)
	var (
		mu   sync.Mutex
		seen = map[string][]int{} // value -> members that saw it
		from = [2]map[string]bool{{}, {}}
	)
	const perTopic = 200
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range []*kafka.Consumer{c1, c2} {
		wg.Go(func() {
			for {
				m, err := c.Fetch(ctx)
				if err != nil {
					select {
					case <-done:
					default:
						t.Errorf("member %d: %v", i, err)
					}
					return
				}
				if err := c.Commit(ctx, m); err != nil {
					t.Errorf("member %d commit %s: %v", i, m, err)
					return
				}
				mu.Lock()
				seen[string(m.Value)] = append(seen[string(m.Value)], i)
				from[i][fmt.Sprintf("%s/%d", m.Topic, m.Partition)] = true
				n := len(seen)
				mu.Unlock()
				if n == 2*perTopic {
					close(done)
				}
			}
		})
	}
	waitStableAssignment(t, ctx, cfg, group, 2, 8)
	p := newProducer(t, cfg)
	if err := p.Publish(ctx, append(msgs(t1, perTopic, "a"), msgs(t2, perTopic, "b")...)...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("saw %d of %d", len(seen), 2*perTopic)
	}
	// Stop the members: a Fetch blocked past done ends with ctx... close them.
	c1.Close()
	c2.Close()
	wg.Wait()
	for v, who := range seen {
		if len(who) != 1 {
			t.Errorf("%s seen by members %v", v, who)
		}
	}
	for p := range from[0] {
		if from[1][p] {
			t.Errorf("partition %s consumed by both members", p)
		}
	}
	if len(from[0]) == 0 || len(from[1]) == 0 || len(from[0])+len(from[1]) != 8 {
		t.Errorf("partitions per member: %d and %d, want a split of 8", len(from[0]), len(from[1]))
	}
}

// waitStableAssignment waits until the group is stable with n members that
// together hold partitions partitions.
func waitStableAssignment(t *testing.T, ctx context.Context, cfg kafka.Config, group string, n, partitions int) {
	t.Helper()
	cl := newClient(t, cfg)
	for {
		g, err := cl.DescribeGroup(ctx, group)
		if err == nil && g.State == "Stable" && len(g.Members) == n {
			held := 0
			for _, m := range g.Members {
				for _, ps := range m.Partitions {
					held += len(ps)
				}
			}
			if held == partitions {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s not stable with %d members: %+v, %v", group, n, g, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestHeadersRoundTrip(t *testing.T) {
	t.Parallel()
	testHeadersRoundTrip(t, kafkatest.Brokers(t))
}

func testHeadersRoundTrip(t *testing.T, brokers []string) {
	ctx := testCtx(t, 30*time.Second)
	cfg := cfgFor(brokers, 2)
	topic, group := kafkatest.Name(t, "t"), kafkatest.Name(t, "g")
	ensure(t, ctx, cfg, topic)
	e := promo.Event{V: 1, PromotionID: "9", BatchNo: 3, SeqStart: 150000, CodeCount: 50000}
	m := kafka.EventMessage(topic, e)
	m.SetHeader(promo.HeaderRetryCount, "2")
	m.SetHeader(promo.HeaderError, "deadlock detected")
	m.SetHeader(promo.HeaderOriginTopic, "promotion-code-batches")
	m.SetHeader(promo.HeaderOriginOffset, "17")
	if err := newProducer(t, cfg).Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	got := fetchN(t, ctx, newConsumer(t, cfg, group, topic), 1)[0]
	if string(got.Key) != "9/3" || string(got.Value) != string(e.Marshal()) {
		t.Fatalf("key %q value %q", got.Key, got.Value)
	}
	for _, h := range m.Headers {
		if v, ok := got.Header(h.Key); !ok || v != string(h.Value) {
			t.Errorf("header %s = %q, %v; want %q", h.Key, v, ok, h.Value)
		}
	}
	if len(got.Headers) != len(m.Headers) || got.Time.IsZero() {
		t.Errorf("headers %v time %v", got.Headers, got.Time)
	}
}

// TestKeyAffinity: every message of a key lands on one partition, in order.
func TestKeyAffinity(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 30*time.Second)
	cfg := cfgFor(kafkatest.Broker(t), 8)
	topic := kafkatest.Name(t, "t")
	ensure(t, ctx, cfg, topic)
	p := newProducer(t, cfg)
	var all []kafka.Message
	for round := range 3 {
		for k := range 20 {
			all = append(all, kafka.Message{Topic: topic, Key: fmt.Appendf(nil, "%d/%d", k, k), Value: fmt.Appendf(nil, "%d", round)})
		}
	}
	if err := p.Publish(ctx, all[:20]...); err != nil { // one at a time and in bulk
		t.Fatal(err)
	}
	for _, m := range all[20:] {
		if err := p.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	cl := newClient(t, cfg)
	_, high, err := cl.Offsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	partOf := map[string]int{}
	used := 0
	for part, h := range high {
		if h > 0 {
			used++
		}
		round := map[string]int{}
		err := cl.ReadRange(ctx, topic, part, 0, h, func(m kafka.Message) error {
			if p, ok := partOf[string(m.Key)]; ok && p != part {
				return fmt.Errorf("key %s on partitions %d and %d", m.Key, p, part)
			}
			partOf[string(m.Key)] = part
			r, _ := strconv.Atoi(string(m.Value))
			if r != round[string(m.Key)] {
				return fmt.Errorf("key %s: round %d after %d", m.Key, r, round[string(m.Key)]-1)
			}
			round[string(m.Key)]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(partOf) != 20 || used < 2 {
		t.Fatalf("%d keys over %d partitions", len(partOf), used)
	}
}

// TestSimpleCommit: offsets committed without group membership (the
// shovel's way) are read back and are where a group consumer starts.
func TestSimpleCommit(t *testing.T) {
	t.Parallel()
	testSimpleCommit(t, kafkatest.Brokers(t))
}

func testSimpleCommit(t *testing.T, brokers []string) {
	ctx := testCtx(t, 30*time.Second)
	cfg := cfgFor(brokers, 2)
	topic, group := kafkatest.Name(t, "t"), kafkatest.Name(t, "g")
	ensure(t, ctx, cfg, topic)
	if err := newProducer(t, cfg).Publish(ctx, msgs(topic, 40, "m")...); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, cfg)
	got, err := cl.CommittedOffsets(ctx, group, topic)
	if err != nil || len(got) != 0 {
		t.Fatalf("CommittedOffsets before any commit = %v, %v", got, err)
	}
	_, high, err := cl.Offsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	// Commit all but the last 3 messages of each partition.
	want := map[int]int64{}
	for p, h := range high {
		want[p] = h - 3
	}
	if err := cl.CommitOffsets(ctx, group, topic, want); err != nil {
		t.Fatal(err)
	}
	got, err = cl.CommittedOffsets(ctx, group, topic)
	if err != nil || !mapsEqual(got, want) {
		t.Fatalf("CommittedOffsets = %v, %v; want %v", got, err, want)
	}
	if lag, err := cl.Lag(ctx, group, topic); err != nil || lag != 6 {
		t.Fatalf("Lag = %d, %v; want 6", lag, err)
	}

	c := newConsumer(t, cfg, group, topic)
	for _, m := range fetchN(t, ctx, c, 6) {
		if m.Offset < want[m.Partition] {
			t.Fatalf("consumer started before the committed offset: %s", m)
		}
	}
	fetchNone(t, c, 500*time.Millisecond)

	// While the group has a live member, a simple commit is refused.
	if err := cl.CommitOffsets(ctx, group, topic, want); err == nil {
		t.Fatal("simple commit accepted while the group has a member")
	}
}

func mapsEqual(a, b map[int]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestReadRangeBounded: a range bounded by high-water marks captured earlier
// does not include messages produced later, and fn's error stops it.
func TestReadRangeBounded(t *testing.T) {
	t.Parallel()
	testReadRangeBounded(t, kafkatest.Brokers(t))
}

func testReadRangeBounded(t *testing.T, brokers []string) {
	ctx := testCtx(t, 30*time.Second)
	cfg := cfgFor(brokers, 1)
	topic := kafkatest.Name(t, "t")
	ensure(t, ctx, cfg, topic)
	p := newProducer(t, cfg)
	if err := p.Publish(ctx, msgs(topic, 5, "old")...); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, cfg)
	low, high, err := cl.Offsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if low[0] != 0 || high[0] != 5 {
		t.Fatalf("offsets low %v high %v", low, high)
	}
	if err := p.Publish(ctx, msgs(topic, 5, "new")...); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := cl.ReadRange(ctx, topic, 0, 0, high[0], func(m kafka.Message) error {
		got = append(got, string(m.Value))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"old-0", "old-1", "old-2", "old-3", "old-4"}) {
		t.Fatalf("ReadRange = %v", got)
	}
	got = nil
	if err := cl.ReadRange(ctx, topic, 0, 3, 7, func(m kafka.Message) error {
		got = append(got, string(m.Value))
		return nil
	}); err != nil || !slices.Equal(got, []string{"old-3", "old-4", "new-0", "new-1"}) {
		t.Fatalf("ReadRange [3,7) = %v, %v", got, err)
	}
	stop := errors.New("stop")
	n := 0
	if err := cl.ReadRange(ctx, topic, 0, 0, 10, func(kafka.Message) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	}); !errors.Is(err, stop) || n != 2 {
		t.Fatalf("ReadRange stopping: %v after %d", err, n)
	}
	if err := cl.ReadRange(ctx, topic, 0, 4, 4, func(kafka.Message) error { return stop }); err != nil {
		t.Fatalf("empty range: %v", err)
	}
}

func TestLag(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 30*time.Second)
	cfg := cfgFor(kafkatest.Broker(t), 3)
	t1, t2, group := kafkatest.Name(t, "t1"), kafkatest.Name(t, "t2"), kafkatest.Name(t, "g")
	ensure(t, ctx, cfg, t1, t2)
	cl := newClient(t, cfg)
	if lag, err := cl.Lag(ctx, group, t1, t2); err != nil || lag != 0 {
		t.Fatalf("Lag of empty topics = %d, %v", lag, err)
	}
	p := newProducer(t, cfg)
	if err := p.Publish(ctx, append(msgs(t1, 7, "a"), msgs(t2, 5, "b")...)...); err != nil {
		t.Fatal(err)
	}
	if lag, err := cl.Lag(ctx, group, t1, t2); err != nil || lag != 12 {
		t.Fatalf("Lag = %d, %v; want 12", lag, err)
	}
	c := newConsumer(t, cfg, group, t1, t2)
	got := fetchN(t, ctx, c, 12)
	// Commit the highest fetched offset of each partition of t1 only.
	last := map[int]kafka.Message{}
	for _, m := range got {
		if m.Topic == t1 {
			last[m.Partition] = m
		}
	}
	for _, m := range last {
		if err := c.Commit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if lag, err := cl.Lag(ctx, group, t1, t2); err != nil || lag != 5 {
		t.Fatalf("Lag = %d, %v; want 5", lag, err)
	}
	// Per partition: t1's partitions committed up to their high-water marks,
	// t2's without a commit (-1) and lagging by all they hold.
	parts, err := cl.GroupLag(ctx, group, t1, t2)
	if err != nil || len(parts) != 6 {
		t.Fatalf("GroupLag = %+v, %v; want 3 partitions of each topic", parts, err)
	}
	var sum [2]int64
	for i, pl := range parts {
		wantTopic := t1
		if i >= 3 {
			wantTopic = t2
		}
		if pl.Topic != wantTopic || pl.Partition != i%3 {
			t.Errorf("GroupLag[%d] = %s/%d, want %s/%d (topic, partition order)", i, pl.Topic, pl.Partition, wantTopic, i%3)
		}
		switch {
		case pl.Topic == t1 && pl.High > 0 && (pl.Committed != pl.High || pl.Lag != 0):
			t.Errorf("%s/%d: committed %d, high %d, lag %d; want committed at high, no lag", pl.Topic, pl.Partition, pl.Committed, pl.High, pl.Lag)
		case pl.Topic == t2 && (pl.Committed != -1 || pl.Lag != pl.High-pl.Low):
			t.Errorf("%s/%d: committed %d, lag %d; want no commit (-1), lag %d", pl.Topic, pl.Partition, pl.Committed, pl.Lag, pl.High-pl.Low)
		}
		sum[i/3] += pl.High
	}
	if sum != [2]int64{7, 5} {
		t.Errorf("high-water marks sum to %v, want 7 and 5", sum)
	}
}

// Latest reads the newest n messages of each partition, newest first.
func TestLatest(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 30*time.Second)
	cfg := cfgFor(kafkatest.Broker(t), 2)
	topic := kafkatest.Name(t, "latest")
	ensure(t, ctx, cfg, topic)
	cl := newClient(t, cfg)
	if got, err := cl.Latest(ctx, topic, 5); err != nil || len(got) != 0 {
		t.Fatalf("Latest of an empty topic = %v, %v", got, err)
	}
	p := newProducer(t, cfg)
	for i := range 6 { // one at a time: broker times in order
		m := kafka.Message{Topic: topic, Partition: i % 2, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprint(i)),
			Headers: []kafka.Header{{Key: "x-n", Value: []byte(fmt.Sprint(i))}}}
		if err := p.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, err := cl.Latest(ctx, topic, 2)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, m := range got {
		vals = append(vals, string(m.Value))
		if h, _ := m.Header("x-n"); h != string(m.Value) {
			t.Errorf("message %s has header x-n %q", m.Value, h)
		}
	}
	if fmt.Sprint(vals) != "[5 4 3 2]" {
		t.Errorf("Latest(2 per partition) = %v, want [5 4 3 2] (newest first)", vals)
	}
}
