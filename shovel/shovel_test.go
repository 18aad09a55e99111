package shovel

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/promocodes/promocodes/pkg/broker"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
)

type rig struct {
	cfg    Config
	kc     kafka.Config
	client *kafka.Client
	prod   *kafka.Producer
}

func newRig(t *testing.T, brokers []string) *rig {
	t.Helper()
	cfg := Config{ErrorTopic: kafkatest.Name(t, "error"), RetryTopic: kafkatest.Name(t, "retry"),
		DeadTopic: kafkatest.Name(t, "dead"), GroupID: kafkatest.Name(t, "shovel"), MaxRetries: 5, Interval: time.Hour}
	kc := kafka.Config{Brokers: brokers, Partitions: 3}
	ctx := context.Background()
	if err := kafka.EnsureTopics(ctx, kc, cfg.ErrorTopic, cfg.RetryTopic, cfg.DeadTopic); err != nil {
		t.Fatal(err)
	}
	r := &rig{cfg: cfg, kc: kc, client: kafka.NewClient(kc), prod: kafka.NewProducer(kc)}
	t.Cleanup(func() { r.prod.Close(); r.client.Close() })
	return r
}

// all reads every message of topic.
func (r *rig) all(t *testing.T, topic string) []kafka.Message {
	t.Helper()
	ctx := context.Background()
	low, high, err := r.client.Offsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for p, hw := range high {
		if err := r.client.ReadRange(ctx, topic, p, low[p], hw, func(m kafka.Message) error {
			out = append(out, m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// failAgain does what a generator does when a retried event fails again:
// publish it to the error topic with x-retry-count carried over unchanged.
func (r *rig) failAgain(t *testing.T, m kafka.Message) {
	t.Helper()
	out := kafka.Message{Topic: r.cfg.ErrorTopic, Key: m.Key, Value: m.Value}
	if rc, ok := m.Header(promo.HeaderRetryCount); ok {
		out.SetHeader(promo.HeaderRetryCount, rc)
	}
	out.SetHeader(promo.HeaderError, "connection refused")
	if err := r.prod.Publish(context.Background(), out); err != nil {
		t.Fatal(err)
	}
}

func TestRetryBoundaryMovesFiveTimesThenParksOnTheSixthFailure(t *testing.T) {
	r := newRig(t, kafkatest.Brokers(t))
	s, err := New(r.cfg, r.client, r.prod, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := promo.Event{V: 1, PromotionID: "12", BatchNo: 3, SeqStart: 150_000, CodeCount: 50_000}
	r.failAgain(t, kafka.EventMessage("", ev)) // first failure: count absent (0)

	for move := 1; move <= 5; move++ {
		st, err := s.Cycle(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Moved != 1 || st.Parked != 0 {
			t.Fatalf("move %d: stats %+v, want exactly one move", move, st)
		}
		retry := r.all(t, r.cfg.RetryTopic)
		if len(retry) != move {
			t.Fatalf("retry topic holds %d events after move %d", len(retry), move)
		}
		last := retry[len(retry)-1]
		if got, _ := last.Header(promo.HeaderRetryCount); got != strconv.Itoa(move) {
			t.Fatalf("move %d: x-retry-count = %q", move, got)
		}
		if string(last.Key) != ev.Key() || string(last.Value) != string(ev.Marshal()) {
			t.Fatalf("move %d: key %q or value changed", move, last.Key)
		}
		r.failAgain(t, last) // the retried event fails again
	}
	st, err := s.Cycle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Moved != 0 || st.Parked != 1 {
		t.Fatalf("sixth failure: stats %+v, want one parked", st)
	}
	dead := r.all(t, r.cfg.DeadTopic)
	if len(dead) != 1 {
		t.Fatalf("dead topic holds %d events", len(dead))
	}
	d := dead[0]
	if rc, _ := d.Header(promo.HeaderRetryCount); rc != "5" {
		t.Errorf("parked event x-retry-count = %q, want 5", rc)
	}
	if reason, _ := d.Header(promo.HeaderDeadReason); reason == "" {
		t.Error("parked event has no x-dead-reason")
	}
	if e, _ := d.Header(promo.HeaderError); e != "connection refused" {
		t.Errorf("x-error = %q", e)
	}
	if string(d.Key) != ev.Key() {
		t.Errorf("key = %q", d.Key)
	}
	if n := len(r.all(t, r.cfg.RetryTopic)); n != 5 {
		t.Errorf("retry topic holds %d events, want exactly 5 moves", n)
	}
	// A cycle with nothing new does nothing: it never chases its own output.
	if st, err := s.Cycle(ctx); err != nil || st.Moved+st.Parked != 0 {
		t.Fatalf("idle cycle: %+v %v", st, err)
	}
}

func TestUndecodableEventsAreParkedAtOnce(t *testing.T) {
	r := newRig(t, kafkatest.Broker(t))
	s, _ := New(r.cfg, r.client, r.prod, nil, zaptest.NewLogger(t))
	ctx := context.Background()
	for _, v := range []string{"garbage", `{"v":1}`, `{"v":1,"promotionId":"x","batchNo":0,"seqStart":0,"codeCount":1}`} {
		if err := r.prod.Publish(ctx, kafka.Message{Topic: r.cfg.ErrorTopic, Key: []byte("k"), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Cycle(ctx)
	if err != nil || st.Parked != 3 || st.Moved != 0 {
		t.Fatalf("stats %+v err %v; want 3 parked", st, err)
	}
	for _, m := range r.all(t, r.cfg.DeadTopic) {
		if reason, _ := m.Header(promo.HeaderDeadReason); reason == "" {
			t.Errorf("%q parked without a reason", m.Value)
		}
	}
}

// A shovel killed after publishing and before committing repeats the move
// next time: a duplicate on the retry topic, never a loss.
func TestKilledBetweenPublishAndCommitRepeatsNeverLoses(t *testing.T) {
	r := newRig(t, kafkatest.Broker(t))
	ctx := context.Background()
	const n = 7
	for i := 0; i < n; i++ {
		r.failAgain(t, kafka.EventMessage("", promo.Event{V: 1, PromotionID: "5", BatchNo: i, CodeCount: 10}))
	}
	kctx, kill := context.WithCancel(ctx)
	kcfg := r.cfg
	kcfg.AfterPublish = kill // dies in the window between publish and commit
	killed, err := New(kcfg, r.client, r.prod, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = killed.Cycle(kctx)

	s, _ := New(r.cfg, r.client, r.prod, nil, zaptest.NewLogger(t))
	if _, err := s.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range r.all(t, r.cfg.RetryTopic) {
		seen[string(m.Key)]++
	}
	if len(seen) != n {
		t.Fatalf("retry topic has %d distinct batches, want %d (nothing lost): %v", len(seen), n, seen)
	}
	if st, err := s.Cycle(ctx); err != nil || st.Moved != 0 {
		t.Fatalf("third cycle moved %d (err %v): offsets were not committed", st.Moved, err)
	}
}

// An offset beyond the end of the error topic (topic truncated or recreated
// under surviving offsets) must not make the shovel skip the new events.
func TestOffsetBeyondTheEndRestartsFromTheBeginning(t *testing.T) {
	r := newRig(t, kafkatest.Broker(t))
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		r.failAgain(t, kafka.EventMessage("", promo.Event{V: 1, PromotionID: "3", BatchNo: i, CodeCount: 1}))
	}
	stale := map[int]int64{}
	_, high, err := r.client.Offsets(ctx, r.cfg.ErrorTopic)
	if err != nil {
		t.Fatal(err)
	}
	for p := range high {
		stale[p] = 1000
	}
	if err := r.client.CommitOffsets(ctx, r.cfg.GroupID, r.cfg.ErrorTopic, stale); err != nil {
		t.Fatal(err)
	}
	s, _ := New(r.cfg, r.client, r.prod, nil, zaptest.NewLogger(t))
	st, err := s.Cycle(ctx)
	if err != nil || st.Moved != 2 {
		t.Fatalf("stats %+v err %v; want both events moved", st, err)
	}
}

// A garbage, negative or overflowing x-retry-count is parked with a reason,
// never read as 0 (which would retry the event forever).
func TestInvalidRetryCountIsParkedWithAReason(t *testing.T) {
	s, err := New(Config{ErrorTopic: "e", RetryTopic: "r", DeadTopic: "d", GroupID: "g", MaxRetries: 5, Interval: time.Hour},
		nil, nil, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ev := promo.Event{V: 1, PromotionID: "12", BatchNo: 3, SeqStart: 150_000, CodeCount: 50_000}
	for _, v := range []string{"abc", "-1", "99999999999999999999", "1e3", " 2", "+2", "2000000"} {
		m := kafka.EventMessage("e", ev)
		m.SetHeader(promo.HeaderRetryCount, v)
		out := s.route(m)
		reason, _ := out.Header(promo.HeaderDeadReason)
		if out.Topic != "d" || !strings.Contains(reason, "x-retry-count") {
			t.Errorf("x-retry-count %q: routed to %q with reason %q; want parked naming the header", v, out.Topic, reason)
		}
	}
	for v, want := range map[string]string{"": "r", "0": "r", "4": "r", "5": "d"} {
		m := kafka.EventMessage("e", ev)
		if v != "" {
			m.SetHeader(promo.HeaderRetryCount, v)
		}
		if out := s.route(m); out.Topic != want {
			t.Errorf("x-retry-count %q: routed to %q, want %q", v, out.Topic, want)
		}
	}
}

// The shovel's group has no members, so the broker expires its offsets
// offsets.retention.minutes after the last commit (7 days by default; 2 s
// here). Quiet cycles must keep them alive: otherwise the next cycle starts
// from the low watermark and moves every retained event again.
func TestQuietCyclesKeepTheOffsetsFromExpiring(t *testing.T) {
	b := kafkatest.StartEmbedded(t, func(c *broker.Config) {
		c.BrokerConfigs = map[string]string{"offset.retention.ms": "2000", "offsets.retention.check.interval.ms": "200"}
	})
	r := newRig(t, b.Addrs())
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		r.failAgain(t, kafka.EventMessage("", promo.Event{V: 1, PromotionID: "4", BatchNo: i, CodeCount: 1}))
	}
	s, _ := New(r.cfg, r.client, r.prod, nil, zaptest.NewLogger(t))
	if st, err := s.Cycle(ctx); err != nil || st.Moved != 3 {
		t.Fatalf("first cycle %+v err %v; want 3 moved", st, err)
	}
	// Quiet cycles, more often than the retention, for twice the retention.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(700 * time.Millisecond) {
		if st, err := s.Cycle(ctx); err != nil || st.Moved != 0 || st.Parked != 0 {
			t.Fatalf("quiet cycle %+v err %v; want nothing moved (offsets expired?)", st, err)
		}
	}
	if n := len(r.all(t, r.cfg.RetryTopic)); n != 3 {
		t.Fatalf("retry topic holds %d events, want 3 (each moved once)", n)
	}
	committed, err := r.client.CommittedOffsets(ctx, r.cfg.GroupID, r.cfg.ErrorTopic)
	if err != nil {
		t.Fatal(err)
	}
	if len(committed) != 3 {
		t.Fatalf("committed offsets %v; want a position for each of the 3 partitions", committed)
	}
}

// The shovel honours a minimum age per retry (x-failed-at, doubling with
// x-retry-count): an event is not moved before its backoff has passed, the
// partition waits at it, and it moves once old enough.
func TestRetryBackoffWaitsForTheEventsAge(t *testing.T) {
	r := newRig(t, kafkatest.Brokers(t))
	r.cfg.RetryBackoff, r.cfg.RetryBackoffMax = time.Second, time.Hour
	s, err := New(r.cfg, r.client, r.prod, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.now = func() time.Time { return now }
	ctx := context.Background()
	publish := func(batch, count int, failedAt time.Time) {
		m := kafka.EventMessage(r.cfg.ErrorTopic, promo.Event{V: 1, PromotionID: "9", BatchNo: batch, CodeCount: 1})
		m.Key = []byte("same-partition") // one partition: order matters
		m.SetHeader(promo.HeaderRetryCount, strconv.Itoa(count))
		m.SetHeader(promo.HeaderFailedAt, failedAt.UTC().Format(time.RFC3339))
		if err := r.prod.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	publish(0, 0, now.Add(-5*time.Second)) // needs 1 s: due
	publish(1, 3, now.Add(-5*time.Second)) // needs 8 s: waits 3 s more
	publish(2, 0, now.Add(-5*time.Second)) // due, but behind batch 1 in the partition
	publish(3, 5, now)                     // exhausted: parked whatever its age
	st, err := s.Cycle(ctx)
	if err != nil || st.Moved != 1 || st.Waiting != 1 {
		t.Fatalf("cycle %+v err %v; want 1 moved and the partition waiting", st, err)
	}
	if st, err := s.Cycle(ctx); err != nil || st.Moved != 0 || st.Waiting != 1 {
		t.Fatalf("same time again: %+v err %v; want nothing more moved", st, err)
	}
	now = now.Add(4 * time.Second)
	if st, err := s.Cycle(ctx); err != nil || st.Moved != 2 || st.Parked != 1 || st.Waiting != 0 {
		t.Fatalf("4 s later: %+v err %v; want 2 moved, 1 parked", st, err)
	}
	if n := len(r.all(t, r.cfg.RetryTopic)); n != 3 {
		t.Fatalf("retry topic holds %d, want 3", n)
	}
}

type recordedStates struct {
	mu   sync.Mutex
	refs []promo.BatchRef
}

func (r *recordedStates) SetBatchState(_ context.Context, ref promo.BatchRef, st promo.BatchState, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st == promo.BatchParked {
		r.refs = append(r.refs, ref)
	}
	return nil
}

// Only a batch that used up its retries is marked parked; an event parked for
// a header it carries (crafted or corrupted) leaves the real batch alone.
func TestOnlyExhaustedBatchesAreMarkedParked(t *testing.T) {
	r := newRig(t, kafkatest.Brokers(t))
	states := &recordedStates{}
	s, err := New(r.cfg, r.client, r.prod, states, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	exhausted := kafka.EventMessage(r.cfg.ErrorTopic, promo.Event{V: 1, PromotionID: "5", BatchNo: 1, CodeCount: 1})
	exhausted.SetHeader(promo.HeaderRetryCount, "5")
	crafted := kafka.EventMessage(r.cfg.ErrorTopic, promo.Event{V: 1, PromotionID: "5", BatchNo: 2, CodeCount: 1})
	crafted.SetHeader(promo.HeaderRetryCount, "-7")
	if err := r.prod.Publish(context.Background(), exhausted, crafted); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Cycle(context.Background()); err != nil || st.Parked != 2 {
		t.Fatalf("cycle %+v err %v; want both parked", st, err)
	}
	if len(states.refs) != 1 || states.refs[0] != (promo.BatchRef{PromotionID: 5, BatchNo: 1}) {
		t.Fatalf("marked parked: %v; want only batch 5/1", states.refs)
	}
}

// A generator whose clock is two hours off, either way, must not decide when
// its failed batches are retried: its x-failed-at and its records'
// timestamps both carry its clock. Two hours fast, the old shovel held the
// batch (and every event behind it in its partition) for two hours; two
// hours slow, it skipped the backoff and parked the batch within a few
// cycles. The shovel's clock here is simulated: a cycle every 250 ms for 20 s.
func TestRetryBackoffDoesNotTrustTheGeneratorsClock(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	for _, skew := range []time.Duration{2 * time.Hour, -2 * time.Hour} {
		t.Run(fmt.Sprintf("generator %+v", skew), func(t *testing.T) {
			r := newRig(t, brokers)
			r.cfg.RetryBackoff, r.cfg.RetryBackoffMax = time.Second, time.Hour
			s, err := New(r.cfg, r.client, r.prod, nil, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			now := start
			s.now = func() time.Time { return now }
			ctx := context.Background()
			const failing, healthy = 0, 1
			fail := func(batch, count int, clock time.Time) {
				m := kafka.EventMessage(r.cfg.ErrorTopic, promo.Event{V: 1, PromotionID: "9", BatchNo: batch, CodeCount: 1})
				m.Key = []byte("same-partition")
				m.Time = clock // the record's timestamp: the generator's clock
				m.SetHeader(promo.HeaderRetryCount, strconv.Itoa(count))
				m.SetHeader(promo.HeaderFailedAt, clock.UTC().Format(time.RFC3339))
				if err := r.prod.Publish(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Cycle(ctx); err != nil { // the shovel was running before the failure
				t.Fatal(err)
			}
			fail(failing, 0, now.Add(skew))
			now = now.Add(100 * time.Millisecond)
			fail(healthy, 0, now) // a generator with a good clock, behind it in the partition
			var moves [2][]time.Duration
			seen, parked := 0, 0
			for now.Sub(start) < 20*time.Second {
				now = now.Add(250 * time.Millisecond)
				st, err := s.Cycle(ctx)
				if err != nil {
					t.Fatal(err)
				}
				parked += st.Parked
				retry := r.all(t, r.cfg.RetryTopic)
				for _, m := range retry[seen:] {
					ev, _ := promo.DecodeEvent(m.Value)
					moves[ev.BatchNo] = append(moves[ev.BatchNo], now.Sub(start))
					if ev.BatchNo == failing { // it fails again at once, on the skewed generator
						fail(failing, RetryCount(m), now.Add(skew))
					}
				}
				seen = len(retry)
			}
			t.Logf("generator %+v: failing batch moved at %v, healthy batch at %v, parked %d", skew, moves[failing], moves[healthy], parked)
			if parked != 0 {
				t.Fatalf("%d parked within 20 s: the backoff of 1+2+4+8+16 s was skipped", parked)
			}
			if len(moves[healthy]) != 1 || moves[healthy][0] > 2*time.Second {
				t.Fatalf("healthy batch moved at %v; want once, within its 1 s backoff and a cycle", moves[healthy])
			}
			if len(moves[failing]) == 0 || moves[failing][0] > 2*time.Second {
				t.Fatalf("failing batch first moved at %v; want within its 1 s backoff and a cycle", moves[failing])
			}
			// The k-th move waits 1, 2, 4, ... s after the failure before it,
			// give or take a cycle (the shovel dates a failure by its sightings).
			for k := 1; k < len(moves[failing]); k++ {
				need := time.Second << k
				if gap := moves[failing][k] - moves[failing][k-1]; gap < need-250*time.Millisecond {
					t.Fatalf("move %d came %v after the failure before it; its backoff is %v", k+1, gap, need)
				}
			}
		})
	}
}

func TestSightingsBoundTheFailureTime(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	// Marks 10 (seen from t0 to t0+1m), 20 (t0+5m), 30 (t0+10m).
	seen := sightings{}.add(10, t0).add(10, t0.Add(time.Minute)).add(20, t0.Add(5*time.Minute)).add(30, t0.Add(10*time.Minute))
	if len(seen) != 3 || !seen[0].last.Equal(t0.Add(time.Minute)) {
		t.Fatalf("sightings %v; want 3, the first seen until t0+1m", seen)
	}
	if back := parseSightings(seen.String()); back.String() != seen.String() {
		t.Fatalf("round trip %q -> %q", seen, back)
	}
	for _, bad := range []string{"", "s2 1:2:2", "s1 x:1:1", "s1 5:2", "s1 5:2:2 4:3:3", "s1 5:3:3 6:2:2", "s1 5:3:2", "s1 -1:0:0"} {
		if got := parseSightings(bad); got != nil {
			t.Errorf("parseSightings(%q) = %v, want none", bad, got)
		}
	}
	now := t0.Add(time.Hour)
	msg := func(offset int64, header, record time.Time) kafka.Message {
		m := kafka.Message{Offset: offset, Time: record}
		if !header.IsZero() {
			m.SetHeader(promo.HeaderFailedAt, header.UTC().Format(time.RFC3339))
		}
		return m
	}
	for _, tc := range []struct {
		name           string
		m              kafka.Message
		want           time.Time
		headerOutOfBox bool
	}{
		{"within its sightings", msg(15, t0.Add(3*time.Minute), t0.Add(3*time.Minute)), t0.Add(3 * time.Minute), false},
		{"fast clock: first sighting", msg(15, t0.Add(2*time.Hour), t0.Add(2*time.Hour)), t0.Add(5 * time.Minute), true},
		{"slow clock: last sighting without it", msg(15, t0.Add(-2*time.Hour), t0.Add(-2*time.Hour)), t0.Add(time.Minute), true},
		{"no header: the record time", msg(25, time.Time{}, t0.Add(7*time.Minute)), t0.Add(7 * time.Minute), false},
		{"header after its record", msg(25, t0.Add(8*time.Minute), t0.Add(7*time.Minute)), t0.Add(7 * time.Minute), true},
		{"not seen yet: at most now", msg(35, now.Add(time.Hour), now.Add(time.Hour)), now, true},
	} {
		got, off := failedAt(tc.m, seen, now)
		if !got.Equal(tc.want) || (off != 0) != tc.headerOutOfBox {
			t.Errorf("%s: failedAt = %v (header off by %v), want %v", tc.name, got.Sub(t0), off, tc.want.Sub(t0))
		}
	}
	// The shovel's clock stepped back (it ran an hour fast): its old
	// sightings are brought back to the new now, never left in its future.
	back := seen.add(40, t0)
	if last := back[len(back)-1]; len(back) != 4 || !last.first.Equal(t0) || back[2].first.After(t0) {
		t.Errorf("after a step back: %v", back)
	}
	if kept := seen.keep(20); len(kept) != 2 || kept[0].hw != 20 {
		t.Errorf("keep(20) = %v; want the sighting at 20 (the lower bound of offset 20 on) and the later one", kept)
	}
	many := sightings{}
	for i := int64(1); i <= 3*maxSightings; i++ {
		many = many.add(i, t0.Add(time.Duration(i)*time.Second))
	}
	if kept := many.keep(0); len(kept) != maxSightings || kept[0].hw != 1 || kept[len(kept)-1].hw != 3*maxSightings {
		t.Errorf("keep over the cap: %d kept, first %v last %v", len(kept), kept[0], kept[len(kept)-1])
	}
}

// TestIdleCyclesLogAtDebug: Run logs a cycle that moved something at info,
// and the idle cycles after it at debug only; `shovel --once` (Once) logs
// its cycle at info even when idle.
func TestIdleCyclesLogAtDebug(t *testing.T) {
	r := newRig(t, kafkatest.Broker(t))
	r.cfg.Interval = 100 * time.Millisecond
	r.failAgain(t, kafka.EventMessage("", promo.Event{V: 1, PromotionID: "4", BatchNo: 0, CodeCount: 1}))
	core, logs := observer.New(zap.DebugLevel)
	s, err := New(r.cfg, r.client, r.prod, nil, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for logs.FilterMessage("shovel cycle").Len() < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cycles := logs.FilterMessage("shovel cycle").All()
	if len(cycles) < 4 {
		t.Fatalf("%d cycles logged in 30 s, want at least 4", len(cycles))
	}
	for i, e := range cycles {
		want := zap.DebugLevel
		if i == 0 { // it moved the event
			want = zap.InfoLevel
		}
		if e.Level != want {
			t.Errorf("cycle %d (%v) logged at %s, want %s", i+1, e.ContextMap(), e.Level, want)
		}
	}
	if _, err := s.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if last := logs.FilterMessage("shovel cycle").All(); last[len(last)-1].Level != zap.InfoLevel {
		t.Errorf("Once logged its idle cycle at %s, want info", last[len(last)-1].Level)
	}
}
