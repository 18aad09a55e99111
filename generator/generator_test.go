package generator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// fakeStore keeps batches and codes in memory with CommitChunk's semantics.
type fakeStore struct {
	mu        sync.Mutex
	promo     promo.Promotion
	batches   map[int]*promo.Batch
	codes     map[string]bool
	failNext  int   // CommitChunk fails this many more times
	failErr   error // with this error
	states    map[int]promo.BatchState
	loadFails bool
	down      bool // the database is unreachable: every call fails, Ping too
	pings     int
}

func (s *fakeStore) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pings++
	if s.down {
		return errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	return nil
}

// errLockTimeout is the fake store's lock timeout (what 55P03 is to
// PostgreSQL).
var errLockTimeout = errors.New("canceling statement due to lock timeout")

func (s *fakeStore) LockTimeout(err error) bool { return errors.Is(err, errLockTimeout) }

func (s *fakeStore) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func newFakeStore(batches ...promo.Batch) *fakeStore {
	f := promo.Format{Charset: "numeric", Length: 8}
	s := &fakeStore{promo: promo.Promotion{ID: 7, Kind: promo.KindGenerated, Format: &f, CounterName: "c"},
		batches: map[int]*promo.Batch{}, codes: map[string]bool{}, states: map[int]promo.BatchState{}}
	for i := range batches {
		b := batches[i]
		s.batches[b.BatchNo] = &b
	}
	return s
}

func (s *fakeStore) LoadBatch(_ context.Context, ref promo.BatchRef) (promo.BatchWork, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadFails || s.down {
		return promo.BatchWork{}, errors.New("connection refused")
	}
	b, ok := s.batches[ref.BatchNo]
	if !ok || ref.PromotionID != s.promo.ID {
		return promo.BatchWork{}, promo.Errorf(promo.ENotFound, "no batch")
	}
	return promo.BatchWork{Batch: *b, Promotion: s.promo}, nil
}

func (s *fakeStore) CommitChunk(_ context.Context, c promo.Chunk) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return 0, errors.New("read tcp: connection reset by peer")
	}
	if s.failNext > 0 {
		s.failNext--
		return 0, s.failErr
	}
	b := s.batches[c.Batch.BatchNo]
	if b.Done != c.From {
		return 0, promo.Errorf(promo.EMoved, "moved")
	}
	for i := 0; i < c.Count; i++ {
		code := string(c.Code(i))
		if s.codes[code] {
			return 0, fmt.Errorf("duplicate code %s", code)
		}
		s.codes[code] = true
	}
	b.Done += int64(c.Count)
	return b.Done, nil
}

func (s *fakeStore) SetBatchState(_ context.Context, ref promo.BatchRef, st promo.BatchState, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states[ref.BatchNo] = st
	return nil
}

// fakeConsumer serves a fixed list of messages, then blocks.
type fakeConsumer struct {
	mu        sync.Mutex
	msgs      []kafka.Message
	next      int
	committed []int64
	closed    bool
}

func (c *fakeConsumer) Fetch(ctx context.Context) (kafka.Message, error) {
	c.mu.Lock()
	if c.next < len(c.msgs) {
		m := c.msgs[c.next]
		c.next++
		c.mu.Unlock()
		return m, nil
	}
	c.mu.Unlock()
	<-ctx.Done()
	return kafka.Message{}, ctx.Err()
}

func (c *fakeConsumer) Commit(_ context.Context, msgs ...kafka.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		c.committed = append(c.committed, m.Offset)
	}
	return nil
}

func (c *fakeConsumer) Close() error { c.closed = true; return nil }

type fakePub struct {
	mu   sync.Mutex
	fail bool
	msgs []kafka.Message
}

func (p *fakePub) Publish(_ context.Context, msgs ...kafka.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail {
		return errors.New("broker unreachable")
	}
	p.msgs = append(p.msgs, msgs...)
	return nil
}

func newTestGenerator(t *testing.T, st Store, pub Publisher) *Generator {
	t.Helper()
	g, err := New(Config{Workers: 1, ChunkSize: 300, MaxAttempts: 3, RetryInitial: time.Millisecond,
		RetryMax: 2 * time.Millisecond, ErrorTopic: "err", DeadTopic: "dead",
		Secret: []byte("0123456789abcdef0123456789abcdef")}, st, pub, nil, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func eventMsg(offset int64, e promo.Event) kafka.Message {
	m := kafka.EventMessage("batches", e)
	m.Offset = offset
	return m
}

// runUntilCommitted runs consume until the consumer committed n offsets.
func runUntilCommitted(t *testing.T, g *Generator, c *fakeConsumer, n int) error {
	t.Helper()
	return runUntilCommittedLog(t, g, c, n, zap.NewNop())
}

// runUntilCommittedLog is runUntilCommitted with the workers logging to log.
func runUntilCommittedLog(t *testing.T, g *Generator, c *fakeConsumer, n int, log *zap.Logger) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- g.consume(ctx, c, log) }()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.committed)
		c.mu.Unlock()
		if got >= n {
			cancel()
			return <-errc
		}
		select {
		case err := <-errc:
			return err
		case <-deadline:
			t.Fatalf("only %d of %d offsets committed", got, n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestBatchIsWrittenExactlyOnceEvenWhenDelivered3Times(t *testing.T) {
	b := promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 1000, CodeCount: 1000}
	st := newFakeStore(b)
	pub := &fakePub{}
	g := newTestGenerator(t, st, pub)
	ev := promo.EventFor(b)
	c := &fakeConsumer{msgs: []kafka.Message{eventMsg(1, ev), eventMsg(2, ev), eventMsg(3, ev)}}
	if err := runUntilCommitted(t, g, c, 3); err != nil {
		t.Fatal(err)
	}
	if len(st.codes) != 1000 || st.batches[0].Done != 1000 {
		t.Fatalf("codes = %d, done = %d; want exactly 1000", len(st.codes), st.batches[0].Done)
	}
	if len(pub.msgs) != 0 {
		t.Fatalf("published %d messages on the happy path", len(pub.msgs))
	}
}

func TestPoisonEventsAreParkedWithAReasonAndTheWorkerGoesOn(t *testing.T) {
	b := promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 0, CodeCount: 10}
	st := newFakeStore(b)
	pub := &fakePub{}
	g := newTestGenerator(t, st, pub)
	bad := []kafka.Message{
		{Topic: "batches", Offset: 1, Key: []byte("x"), Value: []byte("not json")},
		{Topic: "batches", Offset: 2, Key: []byte("7/9"), Value: promo.Event{V: 1, PromotionID: "7", BatchNo: 9, CodeCount: 1}.Marshal()},
		{Topic: "batches", Offset: 3, Key: []byte("7/0"), Value: promo.Event{V: 1, PromotionID: "7", BatchNo: 0, SeqStart: 5, CodeCount: 50}.Marshal()},
		{Topic: "batches", Offset: 4, Key: []byte("7/0"), Value: []byte(`{"v":2,"promotionId":"7","batchNo":0,"seqStart":0,"codeCount":10}`)},
		eventMsg(5, promo.EventFor(b)),
	}
	bad[1].SetHeader(promo.HeaderRetryCount, "3")
	c := &fakeConsumer{msgs: bad}
	if err := runUntilCommitted(t, g, c, 5); err != nil {
		t.Fatal(err)
	}
	if len(pub.msgs) != 4 {
		t.Fatalf("parked %d events, want 4", len(pub.msgs))
	}
	for i, m := range pub.msgs {
		reason, ok := m.Header(promo.HeaderDeadReason)
		if m.Topic != "dead" || !ok || reason == "" {
			t.Errorf("event %d: topic %q reason %q", i, m.Topic, reason)
		}
		if string(m.Key) != string(bad[i].Key) || string(m.Value) != string(bad[i].Value) {
			t.Errorf("event %d: key/value not kept", i)
		}
		if o, _ := m.Header(promo.HeaderOriginOffset); o != fmt.Sprint(bad[i].Offset) {
			t.Errorf("event %d: origin offset %q", i, o)
		}
	}
	if rc, _ := pub.msgs[1].Header(promo.HeaderRetryCount); rc != "3" {
		t.Errorf("x-retry-count not carried over: %q", rc)
	}
	if st.batches[0].Done != 10 {
		t.Fatalf("the good event after the poison ones was not processed: done = %d", st.batches[0].Done)
	}
}

// TestFormatRefusedSinceCreationIsParked: a promotion stored with a format
// that has no canonical form (a case-sensitive custom charset, accepted before
// canonical codes) does not crash the worker: its batch is parked with the
// reason, and nothing is written.
func TestFormatRefusedSinceCreationIsParked(t *testing.T) {
	b := promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 0, CodeCount: 10}
	st := newFakeStore(b)
	st.promo.Format = &promo.Format{Charset: "abcdefghABCDEFGH", Length: 8}
	pub := &fakePub{}
	g := newTestGenerator(t, st, pub)
	c := &fakeConsumer{msgs: []kafka.Message{eventMsg(1, promo.EventFor(b))}}
	if err := runUntilCommitted(t, g, c, 1); err != nil {
		t.Fatal(err)
	}
	if len(pub.msgs) != 1 || pub.msgs[0].Topic != "dead" {
		t.Fatalf("published %d messages (%v), want the event parked in dead", len(pub.msgs), pub.msgs)
	}
	reason, _ := pub.msgs[0].Header(promo.HeaderDeadReason)
	xerr, _ := pub.msgs[0].Header(promo.HeaderError)
	for _, want := range []string{"promotion 7: stored code format cannot be generated", "format.charset",
		"case-insensitively"} {
		if !strings.Contains(xerr, want) {
			t.Errorf("x-error %q does not say %q (reason %q)", xerr, want, reason)
		}
	}
	if len(st.codes) != 0 || st.states[0] != promo.BatchParked {
		t.Errorf("codes %d, batch state %q; want none written and the batch parked", len(st.codes), st.states[0])
	}
}

func TestTransientFailureOutlastingRetriesPublishesTheRemainderThenCommits(t *testing.T) {
	b := promo.Batch{PromotionID: 7, BatchNo: 3, SeqStart: 5000, CodeCount: 1000, Done: 600}
	st := newFakeStore(b)
	st.failNext, st.failErr = 100, errors.New("connection reset by peer")
	pub := &fakePub{}
	g := newTestGenerator(t, st, pub)
	in := eventMsg(42, promo.EventFor(b))
	in.SetHeader(promo.HeaderRetryCount, "2")
	c := &fakeConsumer{msgs: []kafka.Message{in}}
	if err := runUntilCommitted(t, g, c, 1); err != nil {
		t.Fatal(err)
	}
	if len(pub.msgs) != 1 || pub.msgs[0].Topic != "err" {
		t.Fatalf("want one remainder on the error topic, got %v", pub.msgs)
	}
	m := pub.msgs[0]
	rem, err := promo.DecodeEvent(m.Value)
	if err != nil {
		t.Fatal(err)
	}
	if rem.SeqStart != 5600 || rem.CodeCount != 400 || string(m.Key) != "7/3" {
		t.Fatalf("remainder = %+v key %s; want seqStart 5600, codeCount 400, key 7/3", rem, m.Key)
	}
	for _, h := range []string{promo.HeaderError, promo.HeaderFailedAt, promo.HeaderOriginTopic, promo.HeaderOriginPartition} {
		if v, ok := m.Header(h); !ok || v == "" {
			t.Errorf("header %s missing", h)
		}
	}
	if rc, _ := m.Header(promo.HeaderRetryCount); rc != "2" {
		t.Errorf("x-retry-count = %q, want 2 (carried over unchanged)", rc)
	}
	if st.states[3] != promo.BatchRetrying {
		t.Errorf("batch state = %q, want retrying", st.states[3])
	}
}

func TestNoCommitWhenTheRemainderCannotBePublished(t *testing.T) {
	b := promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 0, CodeCount: 100}
	st := newFakeStore(b)
	st.failNext, st.failErr = 100, errors.New("i/o timeout")
	pub := &fakePub{fail: true}
	g := newTestGenerator(t, st, pub)
	c := &fakeConsumer{msgs: []kafka.Message{eventMsg(1, promo.EventFor(b))}}
	err := g.consume(context.Background(), c, zap.NewNop())
	if err == nil {
		t.Fatal("consume returned nil; want an error so the consumer is replaced")
	}
	if len(c.committed) != 0 {
		t.Fatalf("committed %v although nothing was made durable", c.committed)
	}
}

func TestDuplicateDeliveryRacingOnOneBatchStaysExact(t *testing.T) {
	b := promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 0, CodeCount: 30_000}
	st := newFakeStore(b)
	pub := &fakePub{}
	g := newTestGenerator(t, st, pub)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &fakeConsumer{msgs: []kafka.Message{eventMsg(int64(i), promo.EventFor(b))}}
			if err := runUntilCommitted(t, g, c, 1); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(st.codes) != 30_000 {
		t.Fatalf("codes = %d, want 30000", len(st.codes))
	}
}

func TestDatabaseUnreachableUsesTheEventRangeForTheRemainder(t *testing.T) {
	b := promo.Batch{PromotionID: 7, BatchNo: 1, SeqStart: 100, CodeCount: 50}
	st := newFakeStore(b)
	st.loadFails = true
	pub := &fakePub{}
	g := newTestGenerator(t, st, pub)
	c := &fakeConsumer{msgs: []kafka.Message{eventMsg(1, promo.EventFor(b))}}
	if err := runUntilCommitted(t, g, c, 1); err != nil {
		t.Fatal(err)
	}
	rem, _ := promo.DecodeEvent(pub.msgs[0].Value)
	if pub.msgs[0].Topic != "err" || rem.SeqStart != 100 || rem.CodeCount != 50 {
		t.Fatalf("remainder %+v on %s", rem, pub.msgs[0].Topic)
	}
}

func TestHeaderValueIsPrintableAndBounded(t *testing.T) {
	long := make([]byte, 5000)
	for i := range long {
		long[i] = byte(i)
	}
	v := promo.HeaderValue(string(long))
	if len(v) != promo.MaxErrorHeader {
		t.Fatalf("len = %d", len(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			t.Fatalf("byte %d = %#x is not printable", i, v[i])
		}
	}
}

// A crafted event naming a real batch with a wrong range is parked with a
// reason, and the real batch is not marked parked (its own event completes it).
func TestCraftedEventsNeverMarkTheRealBatchParked(t *testing.T) {
	b := promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 1000, CodeCount: 100}
	st := newFakeStore(b)
	pub := &fakePub{}
	g := newTestGenerator(t, st, pub)
	crafted := []promo.Event{
		{V: 1, PromotionID: "7", BatchNo: 0, SeqStart: 1050, CodeCount: 100},                 // runs past the end
		{V: 1, PromotionID: "7", BatchNo: 0, SeqStart: 0, CodeCount: 10},                     // before the start
		{V: 1, PromotionID: "7", BatchNo: 0, SeqStart: math.MaxUint64 - 4, CodeCount: 5},     // wraps to 0
		{V: 1, PromotionID: "7", BatchNo: 0, SeqStart: math.MaxUint64 - 100, CodeCount: 100}, // near 2^64
	}
	var msgs []kafka.Message
	for i, e := range crafted {
		msgs = append(msgs, eventMsg(int64(i), e))
	}
	c := &fakeConsumer{msgs: msgs}
	if err := runUntilCommitted(t, g, c, len(crafted)); err != nil {
		t.Fatal(err)
	}
	if len(pub.msgs) != len(crafted) {
		t.Fatalf("parked %d of %d crafted events", len(pub.msgs), len(crafted))
	}
	for i, m := range pub.msgs {
		if r, _ := m.Header(promo.HeaderDeadReason); m.Topic != "dead" || r == "" {
			t.Errorf("crafted event %d: topic %q reason %q", i, m.Topic, r)
		}
	}
	if s, ok := st.states[0]; ok {
		t.Fatalf("crafted events set the real batch's state to %q", s)
	}
	if len(st.codes) != 0 {
		t.Fatalf("crafted events wrote %d codes", len(st.codes))
	}
}

func TestWithinBatchCannotWrapAround(t *testing.T) {
	b := promo.Batch{SeqStart: 0, CodeCount: 10}
	for _, tc := range []struct {
		ev   promo.Event
		want bool
	}{
		{promo.Event{SeqStart: 0, CodeCount: 10}, true},
		{promo.Event{SeqStart: 5, CodeCount: 5}, true},
		{promo.Event{SeqStart: 10, CodeCount: 0}, true},
		{promo.Event{SeqStart: 5, CodeCount: 6}, false},
		{promo.Event{SeqStart: math.MaxUint64 - 4, CodeCount: 10}, false}, // seqStart+codeCount wraps to 5
		{promo.Event{SeqStart: math.MaxUint64, CodeCount: 1}, false},
	} {
		if got := withinBatch(tc.ev, b); got != tc.want {
			t.Errorf("withinBatch(%+v, [0, +10)) = %v, want %v", tc.ev, got, tc.want)
		}
	}
}

// hangingCommits is a consumer whose commits never answer (a lost
// coordinator): only the caller's deadline ends them.
type hangingCommits struct{ fakeConsumer }

func (c *hangingCommits) Commit(ctx context.Context, _ ...kafka.Message) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestCommitThatNeverAnswersTimesOut(t *testing.T) {
	var msgs []kafka.Message
	for i := 0; i < 5; i++ {
		b := promo.Batch{PromotionID: 7, BatchNo: i, SeqStart: uint64(i) * 10, CodeCount: 10}
		msgs = append(msgs, eventMsg(int64(i), promo.EventFor(b)))
	}
	st := newFakeStore()
	for i := 0; i < 5; i++ {
		st.batches[i] = &promo.Batch{PromotionID: 7, BatchNo: i, SeqStart: uint64(i) * 10, CodeCount: 10}
	}
	g := newTestGenerator(t, st, &fakePub{})
	g.cfg.CommitTimeout = 50 * time.Millisecond
	c := &hangingCommits{fakeConsumer{msgs: msgs}}
	errc := make(chan error, 1)
	go func() { errc <- g.consume(context.Background(), c, zap.NewNop()) }()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("consume returned nil; want the repeated commit failure")
		}
		t.Logf("consume gave up: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("consume is stuck in a commit that never answers")
	}
}

// The circuit breaker: while the database does not answer, a worker holding
// an event waits instead of burning its attempts, publishes no remainder,
// fetches nothing more, and finishes the batch once the database is back.
func TestDatabaseOutageHoldsTheWorkersInsteadOfBurningRetries(t *testing.T) {
	b0 := promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 0, CodeCount: 3000}
	b1 := promo.Batch{PromotionID: 7, BatchNo: 1, SeqStart: 3000, CodeCount: 300}
	st := newFakeStore(b0, b1)
	st.failNext, st.failErr = 2, errors.New("i/o timeout") // real faults while it answers: counted (MaxAttempts 3)
	pub := &fakePub{}
	g := newTestGenerator(t, st, pub)
	c := &fakeConsumer{msgs: []kafka.Message{eventMsg(1, promo.EventFor(b0)), eventMsg(2, promo.EventFor(b1))}}
	st.setDown(true)
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { errc <- g.consume(ctx, c, zap.NewNop()) }()
	time.Sleep(1500 * time.Millisecond) // an outage 500 times the retry backoff
	c.mu.Lock()
	fetched, committed := c.next, len(c.committed)
	c.mu.Unlock()
	pub.mu.Lock()
	published := len(pub.msgs)
	pub.mu.Unlock()
	if published != 0 || committed != 0 || fetched != 1 {
		t.Fatalf("during the outage: %d published, %d committed, %d fetched; want 0, 0, 1 (the event in hand)",
			published, committed, fetched)
	}
	if v := counterValue(t, g.metrics.Retries); v != 0 {
		t.Errorf("%v retries counted during the outage; want 0", v)
	}
	st.setDown(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.committed)
		c.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 events committed after the database came back", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(pub.msgs) != 0 || len(st.codes) != 3300 {
		t.Fatalf("published %d, codes %d; want 0 and exactly 3300", len(pub.msgs), len(st.codes))
	}
}

// A promotion created under another key is refused: no code written, nothing
// committed, nothing published; the generator stops with ErrKeyMismatch.
func TestKeyMismatchRefusesTheBatchAndParksNothing(t *testing.T) {
	b := promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 0, CodeCount: 100}
	st := newFakeStore(b)
	st.promo.KeyFingerprint = codes.KeyFingerprint([]byte("the-api-key-0123456789abcdef-0123456"))
	pub := &fakePub{}
	g := newTestGenerator(t, st, pub)
	c := &fakeConsumer{msgs: []kafka.Message{eventMsg(1, promo.EventFor(b))}}
	err := g.consume(context.Background(), c, zap.NewNop())
	if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "codes.secret") ||
		!strings.Contains(err.Error(), st.promo.KeyFingerprint) {
		t.Fatalf("consume = %v; want ErrKeyMismatch naming codes.secret and the promotion's fingerprint", err)
	}
	if len(c.committed) != 0 || len(pub.msgs) != 0 || len(st.codes) != 0 || len(st.states) != 0 {
		t.Fatalf("committed %v, published %d, codes %d, states %v; want nothing at all",
			c.committed, len(pub.msgs), len(st.codes), st.states)
	}
	// Run stops (every worker) with the error rather than rejoining forever.
	g.newConsumer = func(context.Context) (Consumer, error) {
		return &fakeConsumer{msgs: []kafka.Message{eventMsg(1, promo.EventFor(b))}}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Run(ctx); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("Run = %v; want ErrKeyMismatch", err)
	}
}

// Key rotation: with the old key among PreviousSecrets, a promotion created
// under it is generated with it (its codes are the old permutation's), and
// one created under the new key with the new key.
func TestPreviousKeyStillGeneratesItsPromotions(t *testing.T) {
	oldKey, newKey := []byte("old-key-0123456789abcdef0123456789ab"), []byte("new-key-0123456789abcdef0123456789ab")
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"old", oldKey}, {"new", newKey}} {
		b := promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 40, CodeCount: 50}
		st := newFakeStore(b)
		st.promo.KeyFingerprint = codes.KeyFingerprint(tc.key)
		g, err := New(Config{Workers: 1, ChunkSize: 300, MaxAttempts: 3, ErrorTopic: "err", DeadTopic: "dead",
			Secret: newKey, PreviousSecrets: [][]byte{oldKey}}, st, &fakePub{}, nil, zap.NewNop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &fakeConsumer{msgs: []kafka.Message{eventMsg(1, promo.EventFor(b))}}
		if err := runUntilCommitted(t, g, c, 1); err != nil {
			t.Fatal(err)
		}
		l, err := codes.NewLayout(*st.promo.Format)
		if err != nil {
			t.Fatal(err)
		}
		e, err := codes.NewForCounter(l, st.promo.CounterName, tc.key)
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(40); seq < 90; seq++ {
			if code := string(e.AppendCode(nil, seq)); !st.codes[code] {
				t.Fatalf("%s key: code of seq %d (%s) not written; the batch used another key", tc.name, seq, code)
			}
		}
	}
}

// A chunk blocked behind another session's row lock (a worker frozen
// mid-chunk holds it until the database ends its session) is retried in
// process, not parked: twelve lock timeouts against 3 attempts, and the
// batch completes with nothing published. Past LockWaitMax, lock timeouts
// count as failed attempts again.
func TestChunkBlockedByAnotherSessionsLockIsRetriedNotParked(t *testing.T) {
	b := promo.Batch{PromotionID: 7, BatchNo: 0, SeqStart: 0, CodeCount: 600}
	st := newFakeStore(b)
	st.failNext, st.failErr = 12, fmt.Errorf("commit chunk 7/0: %w", errLockTimeout)
	pub := &fakePub{}
	g := newTestGenerator(t, st, pub)
	c := &fakeConsumer{msgs: []kafka.Message{eventMsg(1, promo.EventFor(b))}}
	if err := runUntilCommitted(t, g, c, 1); err != nil {
		t.Fatal(err)
	}
	if len(pub.msgs) != 0 || st.batches[0].Done != 600 {
		t.Fatalf("published %d remainders, done %d; want none and the batch complete", len(pub.msgs), st.batches[0].Done)
	}
	if got := testutil.ToFloat64(g.metrics.LockWaits); got != 12 {
		t.Errorf("lock waits counted %v, want 12", got)
	}

	st = newFakeStore(b)
	st.failNext, st.failErr = 1000, errLockTimeout
	pub = &fakePub{}
	g = newTestGenerator(t, st, pub)
	g.cfg.LockWaitMax = 20 * time.Millisecond
	c = &fakeConsumer{msgs: []kafka.Message{eventMsg(1, promo.EventFor(b))}}
	if err := runUntilCommitted(t, g, c, 1); err != nil {
		t.Fatal(err)
	}
	if len(pub.msgs) != 1 || pub.msgs[0].Topic != "err" {
		t.Fatalf("after LockWaitMax: published %d messages; want the remainder on the error topic", len(pub.msgs))
	}
}
