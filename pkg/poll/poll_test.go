package poll

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The loop of the relays and the roller: a pass every interval or when
// woken; failures back off (a wake-up does not shorten it) and are logged
// once when they start and once when they end.
func TestLoopBacksOffAndLogsOnce(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	p := NewLoop(20*time.Millisecond, zap.New(core), Messages{Failing: "passes fail", Recovered: "passes work again",
		Level: zapcore.WarnLevel})
	var calls atomic.Int32
	var failUntil int32 = 4 // passes 1-4 fail
	start := time.Now()
	var recovered atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Run(ctx, func(context.Context) error {
			n := calls.Add(1)
			if n <= failUntil {
				p.Notify() // wake-ups while failing must not shorten the back-off
				return errors.New("database down")
			}
			if n == failUntil+1 {
				recovered.Store(int64(time.Since(start)))
			}
			return nil
		})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < failUntil+3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run = %v, want nil after cancel", err)
	}
	if calls.Load() < failUntil+3 {
		t.Fatalf("%d passes in 5 s", calls.Load())
	}
	// Back-offs after failures 1-4: 20, 40, 80, 160 ms = 300 ms at least.
	if got := time.Duration(recovered.Load()); got < 300*time.Millisecond {
		t.Errorf("recovered after %v: the back-off was shortened (want at least 300ms)", got)
	}
	if n := logs.FilterMessage("passes fail").FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Errorf("failure logged %d times, want once", n)
	}
	if n := logs.FilterMessage("passes work again").Len(); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
}

// Notify coalesces: one pending wake-up at most, never blocking.
func TestLoopNotifyDoesNotBlock(t *testing.T) {
	p := NewLoop(time.Hour, zap.NewNop(), Messages{})
	for range 100 {
		p.Notify()
	}
	if len(p.wake) != 1 {
		t.Fatalf("%d pending wake-ups, want 1", len(p.wake))
	}
}
