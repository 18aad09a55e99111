package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
)

// retry calls fn until it succeeds or ctx ends, the way callers must treat
// transient errors while the broker is away. It returns the errors seen.
func retry(ctx context.Context, fn func(context.Context) error) (errs []error, err error) {
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(actx)
		cancel()
		if err == nil {
			return errs, nil
		}
		errs = append(errs, err)
		if !kafka.IsTransient(err) && !errors.Is(err, context.DeadlineExceeded) {
			return errs, err
		}
		select {
		case <-ctx.Done():
			return errs, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestBrokerRestart: a broker restarted on the same data dir keeps messages
// and committed offsets, and a Producer, Consumer and Client created before
// the restart keep working after it (callers retry transient errors).
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 55*time.Second)
	e := kafkatest.StartEmbedded(t)
	cfg := cfgFor(e.Addrs(), 1)
	topic, group := kafkatest.Name(t, "t"), kafkatest.Name(t, "g")
	ensure(t, ctx, cfg, topic)
	p := newProducer(t, cfg)
	c := newConsumer(t, cfg, group, topic)
	cl := newClient(t, cfg)

	if err := p.Publish(ctx, msgs(topic, 10, "before")...); err != nil {
		t.Fatal(err)
	}
	got := fetchN(t, ctx, c, 10)
	if err := c.Commit(ctx, got[5]); err != nil { // before-0..5 done
		t.Fatal(err)
	}

	start := time.Now()
	e.Restart()
	t.Logf("broker restarted in %v", time.Since(start))

	// Committed offsets and messages survived.
	var committed map[int]int64
	errs, err := retry(ctx, func(ctx context.Context) (err error) {
		committed, err = cl.CommittedOffsets(ctx, group, topic)
		return err
	})
	t.Logf("client after restart: %d errors before success %v", len(errs), errs)
	if err != nil || committed[0] != 6 {
		t.Fatalf("committed after restart = %v, %v; want 6", committed, err)
	}
	if _, high, err := cl.Offsets(ctx, topic); err != nil || high[0] != 10 {
		t.Fatalf("high-water after restart = %v, %v; want 10", high, err)
	}

	// The producer created before the restart publishes again.
	start = time.Now()
	errs, err = retry(ctx, func(ctx context.Context) error { return p.Publish(ctx, msgs(topic, 5, "after")...) })
	t.Logf("producer after restart: %v, %d errors %v", time.Since(start), len(errs), errs)
	if err != nil {
		t.Fatal(err)
	}

	// The consumer created before the restart delivers what is not
	// committed: the new messages, and maybe before-6..9 again (fetched but
	// uncommitted); never before-0..5. Its Commit may fail while it
	// reconnects ("use of closed network connection"): retried.
	start = time.Now()
	seen := map[string]int{}
	for seen["after-4"] == 0 {
		m, err := c.Fetch(ctx)
		if err != nil {
			t.Fatalf("consumer after restart: %v (seen %v)", err, seen)
		}
		seen[string(m.Value)]++
		if m.Offset < 6 {
			t.Fatalf("committed message %s %q redelivered", m, m.Value)
		}
		errs, err := retry(ctx, func(ctx context.Context) error { return c.Commit(ctx, m) })
		if len(errs) > 0 {
			t.Logf("commit %s after restart: %d errors %v", m, len(errs), errs)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("consumer after restart: %v, saw %v", time.Since(start), seen)
	// At least once: a commit that failed during the outage may be
	// followed by a redelivery.
	for i := range 5 {
		if seen[fmt.Sprintf("after-%d", i)] == 0 {
			t.Fatalf("after-%d not delivered", i)
		}
	}
	if lag, err := cl.Lag(ctx, group, topic); err != nil || lag != 0 {
		t.Fatalf("lag = %d, %v; want 0", lag, err)
	}
}

// TestBrokerOutage: while the broker is down Ping fails and Publish returns
// errors the caller retries; once it is back, the same Producer and Consumer
// carry on.
func TestBrokerOutage(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 55*time.Second)
	e := kafkatest.StartEmbedded(t)
	cfg := cfgFor(e.Addrs(), 2)
	topic, group := kafkatest.Name(t, "t"), kafkatest.Name(t, "g")
	ensure(t, ctx, cfg, topic)
	p := newProducer(t, cfg)
	c := newConsumer(t, cfg, group, topic)
	cl := newClient(t, cfg)
	if err := p.Publish(ctx, msgs(topic, 4, "before")...); err != nil {
		t.Fatal(err)
	}
	for _, m := range fetchN(t, ctx, c, 4) {
		if err := c.Commit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	e.Stop()
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := cl.Ping(pctx)
	cancel()
	if err == nil {
		t.Fatal("Ping succeeded with the broker down")
	}
	t.Logf("ping while down: %v (transient %v)", err, kafka.IsTransient(err))

	published := make(chan error, 1)
	start := time.Now()
	go func() {
		errs, err := retry(ctx, func(ctx context.Context) error { return p.Publish(ctx, msgs(topic, 4, "during")...) })
		t.Logf("publish during outage: %v, %d errors, first %v", time.Since(start), len(errs), first(errs))
		published <- err
	}()
	time.Sleep(2 * time.Second)
	e.Start()
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	seen := map[string]bool{}
	for len(seen) < 4 {
		// Fetch reports the failed reconnects of the outage; the consumer
		// stays usable and the caller fetches again.
		var m kafka.Message
		errs, err := retry(ctx, func(ctx context.Context) (err error) {
			m, err = c.Fetch(ctx)
			return err
		})
		if len(errs) > 0 {
			t.Logf("fetch after outage: %d errors, first %v", len(errs), errs[0])
		}
		if err != nil {
			t.Fatal(err)
		}
		if v := string(m.Value); len(v) > 6 && v[:6] == "before" {
			t.Fatalf("committed %s redelivered", v)
		}
		seen[string(m.Value)] = true
		if _, err := retry(ctx, func(ctx context.Context) error { return c.Commit(ctx, m) }); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("consumer after outage: %v", time.Since(start))
}

func first(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}
