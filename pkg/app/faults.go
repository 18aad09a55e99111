//go:build faults

package app

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/generator"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/shovel"
)

// Fault injection for the end-to-end tests. It exists only in a binary
// built with -tags faults (make test-integration builds one for the fault
// tests); the shipped binary has none of it (faults_off.go), so no
// environment variable can make a production process misbehave.
//
//   - PROMOCODES_FAULT_GENERATOR=fail-commits: every chunk commit fails while
//     the database answers pings, which the circuit breaker does not hold
//     back: the path to the error and dead-letter topics.
//   - PROMOCODES_FAULT_SHOVEL=kill-after-publish: the shovel SIGKILLs its own
//     process right after its first publish is acknowledged, before the
//     offset commit: the window a crashed pod would hit.

// generatorFaults returns the generator's store with the fault the
// environment asks for, if any.
func generatorFaults(st generator.Store, log *zap.Logger) generator.Store {
	if os.Getenv("PROMOCODES_FAULT_GENERATOR") != "fail-commits" {
		return st
	}
	log.Warn("fault injection: every chunk commit of this generator fails")
	return failingCommits{st}
}

// failingCommits is the fail-commits fault: CommitChunk always fails with a
// transient-looking error.
type failingCommits struct{ generator.Store }

func (failingCommits) CommitChunk(context.Context, promo.Chunk) (int64, error) {
	return 0, errors.New("injected fault (PROMOCODES_FAULT_GENERATOR=fail-commits): chunk commit refused")
}

// shovelFaults returns the shovel's publisher with the fault the
// environment asks for, if any.
func shovelFaults(pub shovel.Publisher, log *zap.Logger) shovel.Publisher {
	if os.Getenv("PROMOCODES_FAULT_SHOVEL") != "kill-after-publish" {
		return pub
	}
	log.Warn("fault injection: the shovel will SIGKILL itself after its first publish")
	return &killAfterPublish{Publisher: pub}
}

// killAfterPublish is the kill-after-publish fault.
type killAfterPublish struct {
	shovel.Publisher
	once sync.Once
}

func (k *killAfterPublish) Publish(ctx context.Context, msgs ...kafka.Message) error {
	err := k.Publisher.Publish(ctx, msgs...)
	if err == nil {
		k.once.Do(func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) })
	}
	return err
}
