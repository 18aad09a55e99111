//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// dbProxy puts a cuttable TCP proxy between PostgreSQL and the processes
// started with the returned env.
func (s *stack) dbProxy() (*tcpProxy, string) {
	s.t.Helper()
	pc, err := pgx.ParseConfig(s.dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	p := newTCPProxy(s.t, net.JoinHostPort(pc.Host, strconv.Itoa(int(pc.Port))))
	u, err := url.Parse(s.dsn)
	if err != nil || u.Scheme == "" {
		s.t.Fatalf("the fault tests need a URL-style DSN, got an unparsable one")
	}
	u.Host = p.Addr()
	q := u.Query()
	q.Set("search_path", s.schema)
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	return p, "PROMOCODES_DB_DSN=" + u.String()
}

// outage is how long TestFaultDatabaseOutageParksNothing cuts the database:
// PROMOCODES_TEST_DB_OUTAGE (a Go duration; "3m" is the real test of issue
// 10), default 75s for CI. Without the circuit breaker 75 s already park
// batches: an event fails in about 2 s and the shovel moves it every 10 s, so
// its 6 tries are used up in about a minute.
func outage(t *testing.T) time.Duration {
	v := os.Getenv("PROMOCODES_TEST_DB_OUTAGE")
	if v == "" {
		return 75 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("PROMOCODES_TEST_DB_OUTAGE=%q: want a positive duration", v)
	}
	return d
}

// The generator's database is cut mid-run for minutes with the shovel on a
// 10 s interval: the circuit breaker holds the workers (nothing consumed,
// no retries burnt), the shovel's backoff spreads any retries, nothing is
// parked and the count is exact. The cut must land mid-run: the promotion
// is incomplete through it and the generator sees the database go.
func TestFaultDatabaseOutageParksNothing(t *testing.T) {
	cut := outage(t)
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	proxy, viaProxy := s.dbProxy()
	gen := s.startGenerator("generator", viaProxy, "PROMOCODES_GENERATOR_CHUNKSIZE=5000")
	s.startShovel("shovel", "PROMOCODES_SHOVEL_INTERVAL=10s")
	id := s.create(500_000)
	s.waitFor(id, time.Minute, "some progress", func(st status) bool { return st.GeneratedCount >= 50_000 })
	proxy.Cut()
	t.Logf("database cut for %s", cut)
	time.Sleep(cut / 2)
	mid := s.status(id).GeneratedCount
	time.Sleep(cut - cut/2)
	if now := s.status(id).GeneratedCount; now != mid {
		t.Errorf("progress moved from %d to %d while the database was cut", mid, now)
	}
	if mid >= 500_000 {
		t.Fatalf("the promotion was complete (%d codes) in the middle of the cut: the fault did not land mid-run", mid)
	}
	if !gen.logged("database unreachable") {
		t.Fatalf("the generator never found the database unreachable during a %s cut: the fault did not land", cut)
	}
	remainders := len(s.events(s.topics.Error))
	proxy.Restore()
	t.Logf("database restored at %d / 500,000; %d remainders were published during the outage", mid, remainders)
	st := s.waitCompleted(id, 3*time.Minute)
	s.assertExact(id, 500_000)
	if n := len(s.events(s.topics.Dead)); n != 0 {
		t.Errorf("%d events parked over a %s outage; want none", n, cut)
	}
	t.Logf("outage %s: %d remainders, %d retries, 0 parked; %s", cut, len(s.events(s.topics.Error)),
		len(s.events(s.topics.Retry)), st.Summary)
}

// Chunk commits keep failing while the database answers (injected fault),
// so the circuit breaker does not hold them: the events park in the
// dead-letter topic after every retry (the status says so); with a healthy
// generator, `topics replay --reset-retries` completes the promotion exactly.
func TestFaultCommitsFailPastAllRetriesThenReplay(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	faulty := s.startGenerator("generator-faulty", "PROMOCODES_FAULT_GENERATOR=fail-commits", "PROMOCODES_GENERATOR_MAXATTEMPTS=2",
		"PROMOCODES_GENERATOR_WORKERS=1")
	s.startShovel("shovel", "PROMOCODES_SHOVEL_INTERVAL=1s", "PROMOCODES_SHOVEL_RETRYBACKOFF=0s")
	id := s.create(150_000) // 3 batches
	st := s.waitFor(id, 2*time.Minute, "every batch parked", func(st status) bool { return st.Batches.Parked == 3 })
	if st.Status != "failed" || !strings.Contains(st.Summary, "parked") {
		t.Fatalf("status %q summary %q", st.Status, st.Summary)
	}
	t.Logf("status while parked: %s", st.Summary)
	dead := s.events(s.topics.Dead)
	keys := map[string]bool{}
	for _, m := range dead {
		keys[string(m.Key)] = true
		if rc, _ := m.Header(promo.HeaderRetryCount); rc != "5" {
			t.Errorf("parked %s with x-retry-count %q, want 5", m.Key, rc)
		}
		if r, _ := m.Header(promo.HeaderDeadReason); !strings.Contains(r, "max retries") {
			t.Errorf("parked %s with reason %q", m.Key, r)
		}
	}
	for b := 0; b < 3; b++ {
		if !keys[fmt.Sprintf("%s/%d", id, b)] {
			t.Errorf("batch %s/%d is neither complete nor in the dead-letter topic", id, b)
		}
	}
	// Each batch went through retry with x-retry-count 1..5. (At least once:
	// a redelivered event in the generator starts a second chain of moves,
	// so the count of retry events may exceed 3 × 5.)
	counts := map[string]map[string]bool{}
	for _, m := range s.events(s.topics.Retry) {
		rc, _ := m.Header(promo.HeaderRetryCount)
		if counts[string(m.Key)] == nil {
			counts[string(m.Key)] = map[string]bool{}
		}
		counts[string(m.Key)][rc] = true
	}
	for b := 0; b < 3; b++ {
		key := fmt.Sprintf("%s/%d", id, b)
		for rc := 1; rc <= 5; rc++ {
			if !counts[key][fmt.Sprint(rc)] {
				t.Errorf("batch %s never went to retry with x-retry-count %d (moves seen: %v)", key, rc, counts[key])
			}
		}
	}
	faulty.stop(t, syscall.SIGTERM, 20*time.Second)
	s.startGenerator("generator")
	out, err := s.run("topics", "replay", "--from", s.topics.Dead, "--to", s.topics.Batches, "--reset-retries")
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	t.Logf("replay: %s", lastLine(out))
	s.waitCompleted(id, 2*time.Minute)
	s.assertExact(id, 150_000)
}

// The broker (embedded, with its data dir) is killed and restarted mid-run:
// the count is exact. The kill must land mid-run: the promotion is
// incomplete when the broker dies, and it stays down until a generator has
// run into the outage (a failed offset commit or fetch).
func TestFaultBrokerRestartMidRun(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	gens := []*proc{s.startGenerator("generator-1", "PROMOCODES_GENERATOR_CHUNKSIZE=5000"),
		s.startGenerator("generator-2", "PROMOCODES_GENERATOR_CHUNKSIZE=5000")}
	id := s.create(600_000)
	s.waitFor(id, time.Minute, "some progress", func(st status) bool { return st.GeneratedCount >= 50_000 })
	s.broker.stop(t, syscall.SIGKILL, 5*time.Second)
	mid := s.status(id)
	if mid.GeneratedCount >= 600_000 {
		t.Fatalf("the promotion was complete (%d codes) when the broker was killed: the fault did not land mid-run", mid.GeneratedCount)
	}
	t.Logf("broker killed at %d / 600,000", mid.GeneratedCount)
	noticed := func() bool {
		for _, g := range gens {
			if g.logged("offset commit failed") || g.logged("fetch failed") {
				return true
			}
		}
		return false
	}
	down := time.Now()
	for !noticed() {
		if time.Since(down) > time.Minute {
			t.Fatal("no generator ran into the broker outage within a minute (no failed offset commit or fetch): the fault did not land")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("a generator ran into the outage %s after the kill, at %d / 600,000", time.Since(down).Round(100*time.Millisecond),
		s.status(id).GeneratedCount)
	s.startBroker()
	s.waitCompleted(id, 3*time.Minute)
	s.assertExact(id, 600_000)
}

// The shovel is SIGKILLed between a publish and its offset commit: the
// duplicate on the retry topic is harmless and the count exact.
func TestFaultShovelKilledBetweenPublishAndCommit(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	faulty := s.startGenerator("generator-faulty", "PROMOCODES_FAULT_GENERATOR=fail-commits", "PROMOCODES_GENERATOR_MAXATTEMPTS=2")
	id := s.create(100_000)
	deadline := time.Now().Add(30 * time.Second)
	for len(s.events(s.topics.Error)) < 2 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(s.events(s.topics.Error)); n < 2 {
		t.Fatalf("error topic holds %d events, want the 2 batches", n)
	}
	faulty.stop(t, syscall.SIGTERM, 20*time.Second)
	killed := s.startShovel("shovel-killed", "PROMOCODES_FAULT_SHOVEL=kill-after-publish", "PROMOCODES_SHOVEL_INTERVAL=1s",
		"PROMOCODES_SHOVEL_RETRYBACKOFF=0s")
	select {
	case <-killed.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the fault-injected shovel did not die")
	}
	if ws, ok := killed.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("shovel ended with %v, want SIGKILL", killed.cmd.ProcessState)
	}
	moved := len(s.events(s.topics.Retry))
	t.Logf("shovel SIGKILLed after publishing %d event(s), before committing", moved)
	s.startGenerator("generator")
	s.startShovel("shovel", "PROMOCODES_SHOVEL_INTERVAL=1s", "PROMOCODES_SHOVEL_RETRYBACKOFF=0s")
	s.waitCompleted(id, 2*time.Minute)
	s.assertExact(id, 100_000)
	keys := map[string]int{}
	for _, m := range s.events(s.topics.Retry) {
		keys[string(m.Key)]++
	}
	dup := false
	for _, n := range keys {
		dup = dup || n > 1
	}
	if !dup {
		t.Errorf("expected the killed move to be repeated (a duplicate on the retry topic): %v", keys)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestFaultHooksAreNotInTheShippedBinary: the binary make build ships has no
// fault injection. A shovel started from it with
// PROMOCODES_FAULT_SHOVEL=kill-after-publish moves the failed events and
// keeps running (a binary with the hooks SIGKILLs itself after its first
// publish), and neither the variables' names nor the hooks' messages are in
// the file; the binary built with -tags faults has them (so the check can
// see them).
func TestFaultHooksAreNotInTheShippedBinary(t *testing.T) {
	for _, tc := range []struct {
		what, bin string
		hooks     bool
	}{{"shipped binary", binary, false}, {"binary built with -tags faults", faultBin(t), true}} {
		b, err := os.ReadFile(tc.bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"PROMOCODES_FAULT_GENERATOR", "PROMOCODES_FAULT_SHOVEL", "fault injection"} {
			if got := bytes.Contains(b, []byte(s)); got != tc.hooks {
				t.Errorf("%s (%s) contains %q: %v, want %v", tc.what, tc.bin, s, got, tc.hooks)
			}
		}
	}

	s := newStack(t)
	s.startBroker()
	kc := kafka.Config{Brokers: []string{s.brokerAddr}}
	if err := kafka.EnsureTopics(context.Background(), kc, s.topics.All()...); err != nil {
		t.Fatal(err)
	}
	pub := kafka.NewProducer(kc)
	defer pub.Close()
	for b := range 2 {
		if err := pub.Publish(context.Background(), kafka.EventMessage(s.topics.Error,
			promo.Event{V: 1, PromotionID: "9", BatchNo: b, SeqStart: uint64(b) * 10, CodeCount: 10})); err != nil {
			t.Fatal(err)
		}
	}
	sh := s.startBinary(binary, "shovel", []string{"PROMOCODES_FAULT_SHOVEL=kill-after-publish",
		"PROMOCODES_SHOVEL_INTERVAL=1s", "PROMOCODES_SHOVEL_RETRYBACKOFF=0s", "PROMOCODES_HTTP_ADDR=" + freePort(t)}, "shovel")
	deadline := time.Now().Add(30 * time.Second)
	for len(s.events(s.topics.Retry)) < 2 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(s.events(s.topics.Retry)); n != 2 {
		t.Fatalf("the shovel moved %d of 2 events to retry within 30 s", n)
	}
	time.Sleep(2 * time.Second) // a cycle or two more
	select {
	case <-sh.done:
		t.Fatalf("the shipped binary's shovel ended (%v) with PROMOCODES_FAULT_SHOVEL set: it carries the fault hook", sh.cmd.ProcessState)
	default:
	}
	t.Logf("shipped binary: no fault hook; its shovel moved both events and runs on with PROMOCODES_FAULT_SHOVEL set")
}
