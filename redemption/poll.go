package redemption

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// poller is the loop the event publisher and the totals roller share: run
// a pass every interval or when woken, and while passes fail, back off
// (doubling up to MaxBackoff; a wake-up does not shorten a back-off). It
// logs the first failure and the recovery once each, not every retry.
type poller struct {
	interval time.Duration
	wake     chan struct{}
	log      *zap.Logger
	failMsg  string // logged with the error when passes start failing
	okMsg    string // logged when they succeed again
	failWarn bool   // log the failure at Warn instead of Error
}

func newPoller(interval time.Duration, log *zap.Logger, failMsg, okMsg string, failWarn bool) poller {
	return poller{interval: interval, wake: make(chan struct{}, 1), log: log,
		failMsg: failMsg, okMsg: okMsg, failWarn: failWarn}
}

// notify asks for a pass now (coalesced: one pending wake-up at most).
func (p poller) notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run calls pass until ctx ends.
func (p poller) run(ctx context.Context, pass func(context.Context) error) error {
	backoff := time.Duration(0)
	for {
		err := pass(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if backoff == 0 {
				if p.failWarn {
					p.log.Warn(p.failMsg, zap.Error(err))
				} else {
					p.log.Error(p.failMsg, zap.Error(err))
				}
				backoff = p.interval
			} else {
				backoff = min(2*backoff, MaxBackoff)
			}
		case backoff != 0:
			p.log.Info(p.okMsg)
			backoff = 0
		}
		wait := p.interval
		if backoff != 0 {
			wait = backoff
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-p.wake:
			if backoff != 0 { // failing: a wake-up does not shorten the back-off
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
		case <-t.C:
		}
		t.Stop()
	}
}
