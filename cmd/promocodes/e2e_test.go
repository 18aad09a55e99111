//go:build integration

package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Acceptance: the broker, the API and two generator processes on
// PostgreSQL; a 1,000,000-code promotion ends with exactly 1,000,000 distinct
// codes.
func TestProcessesOneMillionCodesTwoGenerators(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	s.startGenerator("generator-1")
	s.startGenerator("generator-2")
	start := time.Now()
	id := s.create(1_000_000)
	st := s.waitCompleted(id, 3*time.Minute)
	t.Logf("1,000,000 codes in %s across 2 generator processes (%.0f codes/s); %s",
		time.Since(start).Round(time.Millisecond), 1e6/time.Since(start).Seconds(), st.Summary)
	if st.GeneratedCount != 1_000_000 || st.Batches.Completed != st.Batches.Total || st.Batches.Total != 20 {
		t.Fatalf("status %+v", st)
	}
	s.assertExact(id, 1_000_000)
}

// Every batch event delivered twice (and once more while generating) →
// still exact.
func TestProcessesDuplicatedEventsStayExact(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	id := s.create(300_000)
	// Wait for the outbox to publish every batch, then duplicate them all
	// before any generator runs, and start generators.
	deadline := time.Now().Add(30 * time.Second)
	var evs []kafka.Message
	for time.Now().Before(deadline) {
		if evs = s.events(s.topics.Batches); len(evs) == 6 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(evs) != 6 {
		t.Fatalf("batches topic holds %d events, want 6", len(evs))
	}
	pub := kafka.NewProducer(kafka.Config{Brokers: []string{s.brokerAddr}})
	defer pub.Close()
	dup := func() {
		for _, e := range evs {
			if err := pub.Publish(context.Background(), kafka.Message{Topic: s.topics.Batches, Key: e.Key, Value: e.Value}); err != nil {
				t.Fatal(err)
			}
		}
	}
	dup()
	s.startGenerator("generator-1")
	s.startGenerator("generator-2")
	dup() // and a third copy while they work
	s.waitCompleted(id, 2*time.Minute)
	time.Sleep(2 * time.Second) // let the duplicates drain too
	s.assertExact(id, 300_000)
	if n := len(s.events(s.topics.Batches)); n != 18 {
		t.Fatalf("batches topic holds %d events, want 18 (every batch three times)", n)
	}
}

// A generator SIGKILLed mid-batch and restarted → exact.
func TestProcessesSIGKILLGeneratorMidBatchThenRestart(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	// One worker, small chunks: the kill lands inside a batch.
	g := s.startGenerator("generator", "PROMOCODES_GENERATOR_WORKERS=1", "PROMOCODES_GENERATOR_CHUNKSIZE=2000")
	id := s.create(400_000)
	s.waitFor(id, time.Minute, "some progress", func(st status) bool { return st.GeneratedCount >= 60_000 })
	g.stop(t, syscall.SIGKILL, 5*time.Second)
	mid := s.status(id)
	if mid.Status == "completed" {
		t.Fatalf("the generator finished before it was killed; make the promotion bigger")
	}
	// Rows and progress from one snapshot (one statement): a chunk whose
	// COMMIT was already on its way when the client died still commits after
	// the kill, so two separate reads may straddle it.
	rows, progress := s.rowsAndProgress(id)
	if rows != progress {
		t.Fatalf("after SIGKILL: %d rows but progress says %d: progress and codes diverged", rows, progress)
	}
	t.Logf("killed at %d / 400,000 codes", mid.GeneratedCount)
	s.startGenerator("generator-restarted", "PROMOCODES_GENERATOR_WORKERS=1", "PROMOCODES_GENERATOR_CHUNKSIZE=2000")
	s.waitCompleted(id, 2*time.Minute)
	s.assertExact(id, 400_000)
}

// SIGTERM during a batch: the process exits cleanly, what it committed
// matches its progress exactly (nothing half-written), and a restart
// finishes exactly.
func TestProcessesSIGTERMDuringABatchLosesNothingAddsNothing(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	g := s.startGenerator("generator", "PROMOCODES_GENERATOR_WORKERS=1", "PROMOCODES_GENERATOR_CHUNKSIZE=5000")
	id := s.create(300_000)
	s.waitFor(id, time.Minute, "some progress", func(st status) bool { return st.GeneratedCount >= 20_000 })
	g.stop(t, syscall.SIGTERM, 30*time.Second)
	if g.err != nil {
		t.Fatalf("generator exit after SIGTERM: %v (want a clean exit 0)", g.err)
	}
	mid := s.status(id)
	rows, _ := s.rowCount(id)
	if rows != mid.GeneratedCount || mid.Status == "completed" {
		t.Fatalf("after SIGTERM: %d rows, progress %d, status %s", rows, mid.GeneratedCount, mid.Status)
	}
	if mid.GeneratedCount%5000 != 0 {
		t.Fatalf("progress %d is not a whole number of chunks: a chunk was half-written", mid.GeneratedCount)
	}
	s.startGenerator("generator-restarted")
	s.waitCompleted(id, 2*time.Minute)
	s.assertExact(id, 300_000)
}

// Malformed events of several kinds are parked with a reason; the workers
// keep going and the promotion completes.
func TestProcessesMalformedEventsAreParkedWorkersKeepGoing(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	s.startGenerator("generator")
	pub := kafka.NewProducer(kafka.Config{Brokers: []string{s.brokerAddr}})
	defer pub.Close()
	bad := []kafka.Message{
		{Topic: s.topics.Batches, Key: []byte("junk"), Value: []byte("not json at all")},
		{Topic: s.topics.Batches, Key: []byte("x/1"), Value: []byte(`{"v":1,"promotionId":"x","batchNo":1,"seqStart":0,"codeCount":5}`)},
		{Topic: s.topics.Batches, Key: []byte("999999/0"), Value: promo.Event{V: 1, PromotionID: "999999", BatchNo: 0, CodeCount: 5}.Marshal()},
		{Topic: s.topics.Batches, Key: []byte("1/0"), Value: []byte(`{"v":9,"promotionId":"1","batchNo":0,"seqStart":0,"codeCount":5}`)},
		{Topic: s.topics.Batches, Key: []byte("1/0"), Value: []byte(`{"v":1,"promotionId":"1","batchNo":0,"seqStart":0,"codeCount":5,"extra":true}`)},
	}
	if err := pub.Publish(context.Background(), bad...); err != nil {
		t.Fatal(err)
	}
	id := s.create(200_000)
	// An event whose range lies outside its batch.
	out := promo.Event{V: 1, PromotionID: id, BatchNo: 0, SeqStart: 1 << 40, CodeCount: 10}
	if err := pub.Publish(context.Background(), kafka.EventMessage(s.topics.Batches, out)); err != nil {
		t.Fatal(err)
	}
	s.waitCompleted(id, 2*time.Minute)
	s.assertExact(id, 200_000)
	deadline := time.Now().Add(20 * time.Second)
	var dead []kafka.Message
	for time.Now().Before(deadline) {
		if dead = s.events(s.topics.Dead); len(dead) >= len(bad)+1 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(dead) != len(bad)+1 {
		t.Fatalf("dead-letter topic holds %d events, want %d", len(dead), len(bad)+1)
	}
	for _, m := range dead {
		reason, _ := m.Header(promo.HeaderDeadReason)
		origin, _ := m.Header(promo.HeaderOriginTopic)
		if reason == "" || origin != s.topics.Batches {
			t.Errorf("parked %q: reason %q origin %q", m.Value, reason, origin)
		}
		t.Logf("parked %-12s reason: %s", m.Key, reason)
	}
	out2, err := s.run("topics", "inspect", s.topics.Dead, "--limit", "0")
	if err != nil || !strings.Contains(out2, "undecodable") {
		t.Fatalf("topics inspect: %v\n%s", err, out2)
	}
}
