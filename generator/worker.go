package generator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

type verdict int

const (
	verdictDone    verdict = iota // the batch is complete in the database
	verdictDead                   // the event can never succeed: park it
	verdictFailed                 // transient trouble outlasted the retries: publish the remainder
	verdictRefused                // not this generator's to do (key mismatch): neither commit nor publish
)

// outcome is what processing one event came to.
type outcome struct {
	verdict verdict
	err     error
	batch   promo.Batch     // verdictFailed: the batch with the last known progress
	ref     *promo.BatchRef // verdictDead: the batch, when the event named a real one
}

// worker holds one consumer's reusable state: the chunk buffer, so a
// worker's memory does not grow with batch or promotion size.
type worker struct {
	g      *Generator
	log    *zap.Logger
	buf    []byte     // codes as derived
	sorter CodeSorter // the same codes in byte order
}

func dead(err error, ref *promo.BatchRef) outcome {
	return outcome{verdict: verdictDead, err: err, ref: ref}
}

// process finishes the batch an event names. It never returns a verdict
// other than done unless it has given up on the event or the batch.
func (w *worker) process(ctx context.Context, msg kafka.Message) outcome {
	g := w.g
	ev, err := promo.DecodeEvent(msg.Value)
	if err != nil {
		return dead(err, nil)
	}
	ref := ev.Ref()
	log := w.log.With(zap.Int64("promotion_id", ref.PromotionID), zap.Int("batch_no", ref.BatchNo))

	work, err := retry(ctx, w, "load batch", func(ctx context.Context) (promo.BatchWork, error) { return g.store.LoadBatch(ctx, ref) })
	switch {
	case promo.Is(err, promo.ENotFound):
		return dead(fmt.Errorf("unknown promotion or batch %s: %w", ev.Key(), err), nil)
	case err != nil:
		// The database never answered: the event's own range is the best
		// knowledge of what remains.
		return outcome{verdict: verdictFailed, err: err, batch: promo.Batch{
			PromotionID: ref.PromotionID, BatchNo: ref.BatchNo, SeqStart: ev.SeqStart, CodeCount: ev.CodeCount}}
	}
	b := work.Batch
	if !withinBatch(ev, b) {
		// A crafted or corrupted event: park it, but leave the real batch
		// alone (nil ref): its own events are what drive it.
		return dead(promo.Errorf(promo.EInvalid, "invalid range: event covers [%d, +%d), batch %s is [%d, +%d)",
			ev.SeqStart, ev.CodeCount, ev.Key(), b.SeqStart, b.CodeCount), nil)
	}
	if b.Remaining() <= 0 {
		g.metrics.Duplicates.Inc()
		log.Debug("batch already complete; nothing to do")
		return outcome{verdict: verdictDone}
	}
	if b.State == promo.BatchCancelled {
		g.logCancelled(ref.PromotionID, "promotion cancelled", log, zap.Int64("done", b.Done))
		return outcome{verdict: verdictDone} // nothing to retry or park
	}
	enc, err := g.encoder(work.Promotion)
	if errors.Is(err, ErrKeyMismatch) {
		return outcome{verdict: verdictRefused, err: err}
	}
	if err != nil {
		return dead(err, &ref)
	}
	if space := enc.Space(); b.SeqStart > space || uint64(b.CodeCount) > space-b.SeqStart {
		return dead(promo.Errorf(promo.ECapacity, "batch %s covers [%d, +%d), beyond the code space of %d",
			ev.Key(), b.SeqStart, b.CodeCount, space), &ref)
	}

	started := time.Now()
	var written int64
	for b.Remaining() > 0 {
		if ctx.Err() != nil {
			return outcome{verdict: verdictFailed, err: ctx.Err(), batch: b}
		}
		n := int(min(int64(g.cfg.ChunkSize), b.Remaining()))
		chunk := w.chunk(enc, work.Promotion, b, n)
		t0 := time.Now()
		done, err := retry(ctx, w, "commit chunk", func(ctx context.Context) (int64, error) { return g.store.CommitChunk(ctx, chunk) })
		switch {
		case err == nil:
			g.metrics.observeChunk(n, time.Since(t0))
			written += int64(n)
			b.Done = done
		case promo.Is(err, promo.EMoved):
			// Another worker (a duplicate delivery) advanced this batch:
			// continue from wherever the database says it is now.
			g.metrics.Duplicates.Inc()
			fresh, lerr := retry(ctx, w, "reload batch", func(ctx context.Context) (promo.BatchWork, error) { return g.store.LoadBatch(ctx, ref) })
			if lerr != nil {
				return outcome{verdict: verdictFailed, err: lerr, batch: b}
			}
			b = fresh.Batch
			if b.State == promo.BatchCancelled {
				// The cancel's compare-and-set refused this chunk: stop here.
				g.logCancelled(ref.PromotionID, "promotion cancelled; stopping at this chunk", log, zap.Int64("done", b.Done))
				return outcome{verdict: verdictDone}
			}
		case promo.Is(err, promo.ENotFound), promo.Is(err, promo.EInvalid), promo.Is(err, promo.ECapacity):
			// The batch itself cannot be completed (no retry would help).
			return dead(err, &ref)
		default:
			return outcome{verdict: verdictFailed, err: err, batch: w.lastKnown(ctx, ref, b)}
		}
	}
	g.metrics.BatchesCompleted.Inc()
	log.Debug("batch complete", zap.Int64("written", written), zap.Duration("took", time.Since(started)))
	if written > 0 { // this worker wrote the batch's last chunk
		g.logIfCompleted(ctx, ref.PromotionID, log)
	}
	return outcome{verdict: verdictDone}
}

// chunk renders the codes for the next n sequence numbers of b into the
// worker's buffer (reused: no allocation per code or per chunk once warm).
func (w *worker) chunk(enc Encoder, p promo.Promotion, b promo.Batch, n int) promo.Chunk {
	l := enc.CodeLen()
	if cap(w.buf) < n*l {
		w.buf = make([]byte, 0, n*l)
	}
	w.buf = enc.AppendCodes(w.buf[:0], b.SeqStart+uint64(b.Done), n)
	buf := w.sorter.Sort(w.buf, l, n)
	return promo.Chunk{Batch: b.Ref(), From: b.Done, Count: n, Codes: buf, CodeLen: l,
		CounterName: p.CounterName, Replace: enc.AppendCode, ReplaceLimit: enc.Space()}
}

// withinBatch reports whether the event's range lies inside the batch's, in
// arithmetic that cannot wrap around (a validated event's End does not, and a
// batch's range is the store's).
func withinBatch(ev promo.Event, b promo.Batch) bool {
	if b.CodeCount < 0 || ev.CodeCount > b.CodeCount || ev.SeqStart < b.SeqStart {
		return false
	}
	return ev.SeqStart-b.SeqStart <= uint64(b.CodeCount-ev.CodeCount)
}

// lastKnown asks the database, briefly, how far the batch got; when it cannot
// answer, the progress this worker saw last is used. The remainder event only
// informs: the next worker starts from the database's progress anyway.
func (w *worker) lastKnown(ctx context.Context, ref promo.BatchRef, b promo.Batch) promo.Batch {
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if fresh, err := w.g.store.LoadBatch(lctx, ref); err == nil {
		return fresh.Batch
	}
	return b
}

// FrozenCopyEnder is a Store that can end the sessions its server's limits
// cannot: a client frozen in the middle of a COPY (PostgreSQL's
// statement_timeout does not cancel a COPY that waits for its client's
// data), which holds its batch's row lock for as long as it stays frozen.
type FrozenCopyEnder interface {
	EndFrozenCopies(ctx context.Context) (int, error)
}

// endFrozenCopies ends the frozen COPY sessions, if the store can, when a
// worker is blocked behind a lock: best effort, logged.
func (w *worker) endFrozenCopies(ctx context.Context) {
	e, ok := w.g.store.(FrozenCopyEnder)
	if !ok {
		return
	}
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := e.EndFrozenCopies(ectx)
	switch {
	case err != nil:
		w.log.Info("could not look for database sessions frozen mid-COPY", zap.Error(err))
	case n > 0:
		w.log.Warn("ended database sessions frozen in the middle of a COPY (a generator stopped mid-chunk); their locks are free",
			zap.Int("sessions", n))
	}
}

// retry runs op with ctx-aware exponential backoff, each attempt under its
// own deadline (Config.OpTimeout), so a half-open connection becomes a retry
// and, in the end, a remainder, instead of a stalled worker. Domain errors
// (bad input, missing rows, lost races) are answers, not faults: they return
// at once. A failure while the database does not answer at all is not
// counted: the circuit breaker (dbGate) holds the worker until it answers,
// then the attempt is made again. Nor is an attempt that ran out of the
// database's lock timeout behind another session, for up to LockWaitMax:
// the holder is busy, or frozen until the database's session limits end it.
//
// Two backoff.Retry, one inside the other: the outer one counts the
// attempts (Config.MaxAttempts, RetryInitial growing to RetryMax); each of
// its attempts is an inner one that calls op again, without counting, while
// a lock blocks it (RetryInitial apart) or after an outage (at once: the
// gate waited). Whatever ends them (a result, an answer, the attempts spent,
// ctx), retry returns op's last result.
func retry[T any](ctx context.Context, w *worker, what string, op func(ctx context.Context) (T, error)) (T, error) {
	cfg := w.g.cfg
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = cfg.RetryInitial
	bo.MaxInterval = cfg.RetryMax
	var (
		v            T
		err          error // op's last result
		blockedSince time.Time
	)
	// call runs op once. nil: done (a result, an answer, or ctx ended); a
	// permanent error: a failure that spends an attempt; any other error:
	// call again without spending one.
	call := func() (struct{}, error) {
		actx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
		v, err = op(actx)
		cancel()
		if err == nil || promo.Code(err) != promo.EInternal || ctx.Err() != nil {
			if !blockedSince.IsZero() && err == nil {
				w.log.Info(what+" proceeded after waiting for another session's lock",
					zap.Duration("waited", time.Since(blockedSince).Round(time.Millisecond)))
			}
			return struct{}{}, nil
		}
		if w.g.store.LockTimeout(err) {
			w.endFrozenCopies(ctx)
			if blockedSince.IsZero() {
				blockedSince = time.Now()
				w.log.Warn(what+" waits for another session's lock (a worker busy or frozen on the same batch); "+
					"retrying without spending an attempt", zap.Error(err), zap.Duration("for_at_most", cfg.LockWaitMax))
			}
			if time.Since(blockedSince) < cfg.LockWaitMax {
				w.g.metrics.LockWaits.Inc()
				return struct{}{}, err // again after RetryInitial
			}
		}
		if w.g.gate.failed(ctx, err) {
			bo.Reset() // the attempts' backoff starts over after an outage
			return struct{}{}, backoff.RetryAfter(0)
		}
		return struct{}{}, backoff.Permanent(err)
	}
	attempt := func() (struct{}, error) {
		return backoff.Retry(ctx, call, backoff.WithBackOff(backoff.NewConstantBackOff(cfg.RetryInitial)),
			backoff.WithMaxTries(0), backoff.WithMaxElapsedTime(0))
	}
	// When ctx ends, Retry's own error is ctx's: op's last is returned, as
	// before (callers classify it; a remainder's x-error names it).
	_, _ = backoff.Retry(ctx, attempt, backoff.WithBackOff(bo),
		backoff.WithMaxTries(uint(cfg.MaxAttempts)), backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, next time.Duration) {
			w.g.metrics.Retries.Inc()
			w.log.Warn(what+" failed; retrying", zap.Error(err), zap.Duration("in", next))
		}))
	return v, err
}
