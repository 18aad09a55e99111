package generator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Store is what the generator needs from the database.
type Store interface {
	LoadBatch(ctx context.Context, ref promo.BatchRef) (promo.BatchWork, error)
	CommitChunk(ctx context.Context, c promo.Chunk) (done int64, err error)
	SetBatchState(ctx context.Context, ref promo.BatchRef, state promo.BatchState, lastError string) error
	// Ping does one round trip to the database: the circuit breaker's
	// probe (see dbGate).
	Ping(ctx context.Context) error
	// LockTimeout reports whether err is a statement that ran out of the
	// session's lock timeout waiting for another session's lock.
	LockTimeout(err error) bool
}

// Consumer is one consumer-group member. It is used by one goroutine.
type Consumer interface {
	Fetch(ctx context.Context) (kafka.Message, error)
	Commit(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// Publisher sends messages and returns once the broker acknowledged them
// (acks=all).
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafka.Message) error
}

// Encoder derives canonical codes from sequence numbers (pkg/codes.Engine).
type Encoder interface {
	AppendCode(dst []byte, seq uint64) []byte
	// AppendCodes appends the codes of seq, seq+1, ..., seq+n-1 back to back.
	AppendCodes(dst []byte, seq uint64, n int) []byte
	CodeLen() int
	// Space is the number of sequence numbers the encoder can render.
	Space() uint64
}

// Config tunes a Generator. Zero values take the defaults.
type Config struct {
	Workers      int           // consumers in this process (default 2)
	ChunkSize    int           // codes per SQL transaction (default 10,000)
	MaxAttempts  int           // tries per chunk before the remainder is parked on the error topic (default 5)
	RetryInitial time.Duration // first in-process backoff (default 200ms)
	RetryMax     time.Duration // backoff ceiling (default 5s)
	Reconnect    time.Duration // pause before a worker replaces a failed consumer (default 2s)
	// FetchGiveUp is how long fetches may keep failing before the worker
	// replaces its consumer (default 2m). Shorter outages (a broker restart)
	// are ridden out with the same consumer: replacing it means leaving and
	// rejoining the group, two rebalances for nothing.
	FetchGiveUp time.Duration
	// CommitTimeout bounds one offset commit (default 15s).
	CommitTimeout time.Duration
	OpTimeout     time.Duration // deadline of one database attempt (default 60s)
	// LockWaitMax is how long a chunk keeps being retried, without spending
	// its MaxAttempts, while its attempts run out of the database's lock
	// timeout behind another session (default 10m): a worker that froze
	// mid-chunk holds its batch's row lock until the database's session
	// limits end its session, and a healthy batch must not be parked for
	// that. Past it, lock timeouts count as failed attempts.
	LockWaitMax time.Duration
	// Clock is this host's clock (nil: time.Now): x-failed-at and the
	// error records' timestamps. Tests set it to play a host whose clock is
	// off; the shovel does not trust it anyway.
	Clock      func() time.Time
	ErrorTopic string
	DeadTopic  string
	// Secret is the code key (pkg/codes); it never reaches a log.
	Secret []byte
	// PreviousSecrets are keys rotated out: promotions created under one of
	// them (by fingerprint) are still generated with it. New promotions get
	// the API's current key.
	PreviousSecrets [][]byte
}

// ErrKeyMismatch is returned (wrapped) by Run when a promotion was created
// under a code key this generator does not hold: generating its batches with
// another key would split the promotion between two permutations. The event
// is neither committed nor parked; a generator with the right key takes it.
var ErrKeyMismatch = errors.New("codes.secret differs from the key the promotion was created under")

func (c *Config) setDefaults() {
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = 10_000
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = 200 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.Reconnect == 0 {
		c.Reconnect = 2 * time.Second
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = time.Minute
	}
	if c.FetchGiveUp == 0 {
		c.FetchGiveUp = 2 * time.Minute
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = 15 * time.Second
	}
	if c.LockWaitMax == 0 {
		c.LockWaitMax = 10 * time.Minute
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate checks the configuration as given (New fills in the defaults of
// zero fields first, so a zero there means the default), naming each field
// by its key: "workers", "errorTopic", "secret", "previousSecrets".
func (c Config) Validate() error {
	var errs configkey.List
	if c.Workers < 1 || c.Workers > 256 {
		errs.Add("workers", "must be in 1..256, got %d", c.Workers)
	}
	if c.ChunkSize < 1 || c.ChunkSize > 1_000_000 {
		errs.Add("chunkSize", "must be in 1..1,000,000, got %d", c.ChunkSize)
	}
	if c.MaxAttempts < 1 {
		errs.Add("maxAttempts", "must be at least 1, got %d", c.MaxAttempts)
	}
	errs.Set(map[string]string{"errorTopic": c.ErrorTopic, "deadTopic": c.DeadTopic})
	if err := codes.CheckSecret(c.Secret); err != nil {
		errs.Add("secret", "%v", err)
	}
	for i, k := range c.PreviousSecrets {
		if err := codes.CheckSecret(k); err != nil {
			errs.Add("previousSecrets", "entry %d %v", i, err)
		}
	}
	errs.NotNegative(map[string]time.Duration{"retryInitial": c.RetryInitial, "retryMax": c.RetryMax,
		"reconnect": c.Reconnect, "fetchGiveUp": c.FetchGiveUp, "commitTimeout": c.CommitTimeout,
		"opTimeout": c.OpTimeout, "lockWaitMax": c.LockWaitMax})
	return errs.Err()
}

// Generator runs the workers. Create it with New and start it with Run.
type Generator struct {
	cfg         Config
	store       Store
	pub         Publisher
	newConsumer func(ctx context.Context) (Consumer, error)
	newEncoder  func(f promo.Format, counterName string, secret []byte) (Encoder, error)
	log         *zap.Logger
	metrics     *Metrics
	now         func() time.Time

	gate      *dbGate
	keys      map[string][]byte // by fingerprint: the current key and the previous ones
	currentFP string

	mu            sync.Mutex
	encoders      map[string]Encoder // by counter name and key fingerprint
	cancelledSeen map[int64]bool     // promotions whose cancel this process has logged (logCancelled)
}

// New builds a Generator. newConsumer is called once per worker, and again
// whenever a worker has to drop its consumer.
func New(cfg Config, store Store, pub Publisher, newConsumer func(ctx context.Context) (Consumer, error),
	log *zap.Logger, metrics *Metrics) (*Generator, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	g := &Generator{
		cfg: cfg, store: store, pub: pub, newConsumer: newConsumer, log: log, metrics: metrics,
		newEncoder: func(f promo.Format, counterName string, secret []byte) (Encoder, error) {
			l, err := codes.NewLayout(f)
			if err != nil {
				return nil, err
			}
			// The stored counter name, not the layout's: a promotion created
			// before its format's counter name changed keeps its permutation.
			e, err := codes.NewForCounter(l, counterName, secret)
			if err != nil {
				return nil, err
			}
			return engineEncoder{e}, nil
		},
		keys:      map[string][]byte{},
		currentFP: codes.KeyFingerprint(cfg.Secret),
		now:       cfg.Clock,
		encoders:  make(map[string]Encoder),
	}
	for _, k := range append([][]byte{cfg.Secret}, cfg.PreviousSecrets...) {
		if fp := codes.KeyFingerprint(k); g.keys[fp] == nil {
			g.keys[fp] = k
		}
	}
	g.gate = newDBGate(store.Ping, log, func(down bool) {
		if down {
			metrics.DatabaseDown.Set(1)
		} else {
			metrics.DatabaseDown.Set(0)
		}
	})
	return g, nil
}

// Run starts the workers and blocks until ctx is cancelled and every worker
// has stopped. A worker whose consumer fails replaces it. Run returns nil on
// cancellation; it stops every worker and returns the error when a worker
// meets a promotion created under a key it does not hold (ErrKeyMismatch):
// a misconfigured generator must stop, not guess.
func (g *Generator) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		fatal error
	)
	for i := 0; i < g.cfg.Workers; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			if err := g.runWorker(ctx, id); err != nil {
				once.Do(func() { fatal = err; cancel() })
			}
		}(i)
	}
	wg.Wait()
	return fatal
}

// runWorker keeps one consumer going until ctx ends (nil) or a key mismatch
// (the error): a consumer that stopped is replaced after Config.Reconnect.
func (g *Generator) runWorker(ctx context.Context, id int) error {
	log := g.log.With(zap.Int("worker", id))
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := g.runConsumer(ctx, log)
		switch {
		case errors.Is(err, ErrKeyMismatch):
			log.Error("refusing to generate: stopping this generator (nothing committed, nothing parked; a generator with the right codes.secret takes the event)",
				zap.Error(err))
			return struct{}{}, backoff.Permanent(err)
		case ctx.Err() != nil:
			return struct{}{}, nil
		case err == nil:
			err = errors.New("consumer stopped")
		}
		// Nothing was committed for the message in hand: leaving the group
		// hands its partition to another member (or to us again) from the
		// last committed offset.
		g.metrics.ConsumerRestarts.Inc()
		return struct{}{}, err
	}, backoff.WithBackOff(backoff.NewConstantBackOff(g.cfg.Reconnect)), backoff.WithMaxTries(0), backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, after time.Duration) {
			log.Error("worker consumer stopped; reconnecting", zap.Error(err), zap.Duration("after", after))
		}))
	if errors.Is(err, ErrKeyMismatch) {
		return err
	}
	return nil
}

// runConsumer opens a consumer, consumes until it stops, and closes it.
func (g *Generator) runConsumer(ctx context.Context, log *zap.Logger) error {
	c, err := g.newConsumer(ctx)
	if err != nil {
		return fmt.Errorf("open consumer: %w", err)
	}
	err = g.consume(ctx, c, log)
	if cerr := c.Close(); cerr != nil && ctx.Err() == nil {
		log.Warn("close consumer", zap.Error(cerr))
	}
	return err
}

// fetch returns the next message, fetched once the circuit breaker lets it
// (while the database is unreachable, fetch nothing: the events stay in
// their topic, uncommitted). When the broker is restarting or unreachable,
// the consumer reconnects by itself: failed fetches are retried with the same
// consumer (and group membership), pause apart (fetchRetryMin doubling to
// fetchRetryMax), unless they go on for FetchGiveUp or the consumer is
// closed.
func (g *Generator) fetch(ctx context.Context, c Consumer, pause backoff.BackOff, log *zap.Logger) (kafka.Message, error) {
	var failingSince time.Time
	msg, err := backoff.Retry(ctx, func() (kafka.Message, error) {
		g.gate.wait(ctx)
		msg, err := c.Fetch(ctx)
		switch {
		case err == nil:
			return msg, nil
		case ctx.Err() != nil:
			return msg, backoff.Permanent(err)
		case errors.Is(err, kafka.ErrClosed):
			return msg, backoff.Permanent(fmt.Errorf("fetch: %w", err))
		case failingSince.IsZero():
			failingSince = g.now()
			log.Warn("fetch failed; retrying with the same consumer", zap.Error(err))
		case g.now().Sub(failingSince) >= g.cfg.FetchGiveUp:
			return msg, backoff.Permanent(fmt.Errorf("fetch failing for %s: %w", g.now().Sub(failingSince).Round(time.Second), err))
		}
		return msg, err
	}, backoff.WithBackOff(pause), backoff.WithMaxTries(0), backoff.WithMaxElapsedTime(0))
	if err == nil && !failingSince.IsZero() {
		log.Info("fetching again", zap.Duration("after", g.now().Sub(failingSince).Round(time.Millisecond)))
	}
	return msg, err
}

// consume is the fetch → process → commit loop of one consumer. It returns
// (without committing the message in hand) when something cannot be made
// durable; the caller replaces the consumer.
func (g *Generator) consume(ctx context.Context, c Consumer, log *zap.Logger) error {
	w := &worker{g: g, log: log}
	commitFailures := 0
	fetchPause := &backoff.ExponentialBackOff{InitialInterval: fetchRetryMin, Multiplier: 2, MaxInterval: fetchRetryMax}
	for {
		msg, err := g.fetch(ctx, c, fetchPause, log)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		out := w.process(ctx, msg)
		if out.verdict == verdictRefused {
			// Leave the event where it is (no commit, no publish).
			return out.err
		}
		if ctx.Err() != nil {
			// Shutting down mid-batch: the committed chunks stay, the offset
			// does not move, the next owner finishes the batch from the DB.
			return nil
		}
		if err := g.settle(ctx, msg, out, log); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, g.cfg.CommitTimeout)
		err = c.Commit(cctx, msg)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The message is settled, so a redelivery is harmless, and the
			// next commit on the partition covers this one: carry on, unless
			// commits keep failing (then rejoin the group).
			commitFailures++
			if commitFailures >= 3 {
				return fmt.Errorf("commit offset %s/%d/%d (%d failures in a row): %w", msg.Topic, msg.Partition, msg.Offset, commitFailures, err)
			}
			log.Warn("offset commit failed; the event may be redelivered (harmless)", zap.Error(err))
			continue
		}
		commitFailures = 0
	}
}

// Pauses between failed fetches on one consumer.
const (
	fetchRetryMin = 250 * time.Millisecond
	fetchRetryMax = 5 * time.Second
)

// settle makes the outcome durable before the offset is committed: nothing
// for a finished batch, a dead-letter or error-topic publish otherwise.
func (g *Generator) settle(ctx context.Context, msg kafka.Message, out outcome, log *zap.Logger) error {
	fields := []zap.Field{zap.String("topic", msg.Topic), zap.Int("partition", msg.Partition),
		zap.Int64("offset", msg.Offset), zap.ByteString("key", msg.Key)}
	switch out.verdict {
	case verdictDone:
		return nil
	case verdictDead:
		dead := g.failureMessage(g.cfg.DeadTopic, msg, msg.Value, out.err)
		dead.SetHeader(promo.HeaderDeadReason, promo.HeaderValue(out.err.Error()))
		if err := g.pub.Publish(ctx, dead); err != nil {
			return fmt.Errorf("park event %s in %s: %w", msg.Key, g.cfg.DeadTopic, err)
		}
		g.metrics.Parked.Inc()
		log.Warn("event parked in dead-letter topic", append(fields, zap.Error(out.err))...)
		if out.ref != nil {
			g.bestEffortState(ctx, *out.ref, promo.BatchParked, out.err, log)
		}
		return nil
	default: // verdictFailed
		rem := promo.EventFor(out.batch)
		em := g.failureMessage(g.cfg.ErrorTopic, msg, rem.Marshal(), out.err)
		if err := g.pub.Publish(ctx, em); err != nil {
			return fmt.Errorf("publish remainder of %s to %s: %w", msg.Key, g.cfg.ErrorTopic, err)
		}
		g.metrics.Remainders.Inc()
		log.Warn("batch failed; remainder published to the error topic",
			append(fields, zap.Int64("remaining", rem.CodeCount), zap.Error(out.err))...)
		g.bestEffortState(ctx, out.batch.Ref(), promo.BatchRetrying, out.err, log)
		return nil
	}
}

// bestEffortState records a batch's state for the status page. The database
// may be the very thing that failed, so a failure here is only logged: the
// event in the error or dead topic is what guarantees the batch is not lost.
func (g *Generator) bestEffortState(ctx context.Context, ref promo.BatchRef, st promo.BatchState, cause error, log *zap.Logger) {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := g.store.SetBatchState(sctx, ref, st, cause.Error()); err != nil {
		log.Info("could not record batch state (the event is safe in its topic)",
			zap.Int64("promotion_id", ref.PromotionID), zap.Int("batch_no", ref.BatchNo),
			zap.String("state", string(st)), zap.Error(err))
	}
}

// failureMessage builds the message for the error or dead topic: same key,
// x-retry-count carried over unchanged, provenance headers describing where
// the failing event was read.
func (g *Generator) failureMessage(topic string, in kafka.Message, value []byte, cause error) kafka.Message {
	// The record's timestamp is this host's clock either way (kafka-go's
	// CreateTime); taking it from the same clock as x-failed-at keeps the
	// two consistent. The shovel trusts neither (shovel/sightings.go).
	failed := g.now()
	out := kafka.Message{Topic: topic, Key: in.Key, Value: value, Time: failed}
	if rc, ok := in.Header(promo.HeaderRetryCount); ok {
		out.SetHeader(promo.HeaderRetryCount, rc)
	}
	out.SetHeader(promo.HeaderError, promo.HeaderValue(cause.Error()))
	out.SetHeader(promo.HeaderFailedAt, failed.UTC().Format(time.RFC3339))
	out.SetHeader(promo.HeaderOriginTopic, in.Topic)
	out.SetHeader(promo.HeaderOriginPartition, fmt.Sprint(in.Partition))
	out.SetHeader(promo.HeaderOriginOffset, fmt.Sprint(in.Offset))
	return out
}

// encoder returns the (cached) encoder for a promotion's code space, with
// the key the promotion was created under: the current key, a previous one
// (rotation), or, for a promotion without a fingerprint, the current key. No
// key matching its fingerprint is ErrKeyMismatch.
func (g *Generator) encoder(p promo.Promotion) (Encoder, error) {
	if p.Format == nil {
		return nil, promo.Errorf(promo.EInvalid, "promotion %d has no code format (kind %q)", p.ID, p.Kind)
	}
	fp := p.KeyFingerprint
	if fp == "" {
		fp = g.currentFP
	}
	secret, ok := g.keys[fp]
	if !ok {
		return nil, fmt.Errorf("%w: promotion %d has key fingerprint %s, this generator's codes.secret has %s "+
			"and no codes.previousSecrets matches; set the key the API used (see key rotation in docs/kafka.md)",
			ErrKeyMismatch, p.ID, p.KeyFingerprint, g.currentFP)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	cacheKey := p.CounterName + "\x00" + fp
	if e, ok := g.encoders[cacheKey]; ok {
		return e, nil
	}
	e, err := g.newEncoder(*p.Format, p.CounterName, secret)
	if err != nil {
		// A format stored before the rules for canonical codes may be refused
		// now (a case-sensitive custom charset): the error is EInvalid, so the
		// batch is parked with this reason rather than retried.
		return nil, fmt.Errorf("promotion %d: stored code format cannot be generated: %w", p.ID, err)
	}
	g.encoders[cacheKey] = e
	return e, nil
}

// engineEncoder adapts *codes.Engine to Encoder.
type engineEncoder struct{ *codes.Engine }

func (e engineEncoder) CodeLen() int { return e.Layout().CodeLen() }

func (e engineEncoder) Space() uint64 { return e.Layout().Space() }
