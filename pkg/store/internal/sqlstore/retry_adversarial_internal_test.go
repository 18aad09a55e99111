//go:build integration

package sqlstore

import (
	"context"
	"errors"
	"testing"

	"github.com/cenkalti/backoff/v5"
)

// backoff.Retry checks its run limit before it unwraps a permanent error: a
// non-retryable error on the last allowed run came back still wrapped in
// *backoff.PermanentError. The error must be the run's own (as before the
// move onto backoff.Retry): a caller that retries with backoff.Retry itself
// (the generator's worker) would otherwise take any store error of that
// run as permanent and give up with attempts left.
func TestAdversarialRetryLastRunPermanent(t *testing.T) {
	victim, bad := errors.New("deadlock victim"), errors.New("bad")
	s := &Core[*SQLTx]{d: Dialect[*SQLTx]{Retryable: func(err error) bool { return errors.Is(err, victim) }}}
	runs := 0
	err := s.retry(context.Background(), func() error {
		runs++
		if runs < maxTxAttempts {
			return victim
		}
		return bad
	})
	var p *backoff.PermanentError
	if runs != maxTxAttempts || err != bad || errors.As(err, &p) {
		t.Fatalf("adversarial: retry, permanent error on the last run [core]: %d runs, err %T %v; want %d runs and the run's own error",
			runs, err, err, maxTxAttempts)
	}
	t.Logf("adversarial: retry, permanent error on the last run [core]: the run's own error after %d runs", runs)
}
