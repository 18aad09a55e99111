package shovel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Client reads and commits without joining a consumer group (pkg/kafka.Client).
type Client interface {
	Offsets(ctx context.Context, topic string) (low, high map[int]int64, err error)
	CommittedPositions(ctx context.Context, group, topic string) (map[int]kafka.Position, error)
	CommitPositions(ctx context.Context, group, topic string, positions map[int]kafka.Position) error
	ReadRange(ctx context.Context, topic string, partition int, from, to int64, fn func(kafka.Message) error) error
	Ping(ctx context.Context) error
}

// Publisher sends messages and returns once the broker acknowledged them.
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafka.Message) error
}

// StateStore records batch states for the admins' status view. Optional:
// the topics, not the database, are what keeps an event safe.
type StateStore interface {
	SetBatchState(ctx context.Context, ref promo.BatchRef, state promo.BatchState, lastError string) error
}

// Config tunes a Shovel.
type Config struct {
	ErrorTopic, RetryTopic, DeadTopic string
	GroupID                           string        // the shovel's own group (never shared with a Consumer)
	MaxRetries                        int           // moves to retry before parking (default 5, docs/contracts.md)
	Interval                          time.Duration // between cycles in Run
	// RetryBackoff is the minimum age (since x-failed-at) of an event with
	// x-retry-count 0 before it is moved to retry; it doubles with each
	// retry (count n waits RetryBackoff·2^n), up to RetryBackoffMax. It
	// spreads the retries of a batch over time, so that an outage longer
	// than a few shovel cycles does not park it. Zero moves at once.
	RetryBackoff, RetryBackoffMax time.Duration
}

// Validate checks the configuration, naming each field by its key:
// "errorTopic", "groupId", "interval", "retryBackoffMax".
func (c Config) Validate() error {
	var errs configkey.List
	errs.Set(map[string]string{"errorTopic": c.ErrorTopic, "retryTopic": c.RetryTopic, "deadTopic": c.DeadTopic})
	if c.GroupID == "" {
		errs.Add("groupId", "must be set")
	}
	if c.MaxRetries < 0 {
		errs.Add("maxRetries", "must not be negative, got %d", c.MaxRetries)
	}
	if c.Interval < time.Second {
		errs.Add("interval", "must be at least 1s, got %s", c.Interval)
	}
	if c.RetryBackoff < 0 {
		errs.Add("retryBackoff", "must not be negative, got %s", c.RetryBackoff)
	}
	if c.RetryBackoffMax < c.RetryBackoff {
		errs.Add("retryBackoffMax", "must be at least retryBackoff (%s), got %s", c.RetryBackoff, c.RetryBackoffMax)
	}
	return errs.Err()
}

// Stats is what one cycle did.
type Stats struct {
	Moved    int           // to the retry topic
	Parked   int           // to the dead-letter topic
	Failed   int           // could not be moved this cycle (left in place, uncommitted)
	Waiting  int           // partitions held at an event younger than its retry backoff
	Duration time.Duration //
}

// Shovel moves events from the error topic. Build it with New.
type Shovel struct {
	cfg    Config
	client Client
	pub    Publisher
	states StateStore
	log    *zap.Logger
	now    func() time.Time
	// observe, set by Observe, sees every finished cycle.
	observe func(Stats, error)
}

// New builds a Shovel. states may be nil.
func New(cfg Config, client Client, pub Publisher, states StateStore, log *zap.Logger) (*Shovel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("shovel: %w", err)
	}
	return &Shovel{cfg: cfg, client: client, pub: pub, states: states, log: log, now: time.Now}, nil
}

// Run runs a cycle every Interval until ctx ends. A cycle that moved,
// parked or failed nothing, with as many partitions waiting as the one
// before, is logged at debug level: an idle shovel does not fill the log
// (promocodes_shovel_last_cycle_timestamp_seconds says it runs).
func (s *Shovel) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	waiting := 0
	for {
		st, err := s.runCycle(ctx, func(st Stats) bool { return st.Moved == 0 && st.Parked == 0 && st.Failed == 0 && st.Waiting == waiting })
		if err == nil {
			waiting = st.Waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// runCycle runs one cycle and logs it: an error always, a cycle that idle
// reports as idle at debug level, any other at info.
func (s *Shovel) runCycle(ctx context.Context, idle func(Stats) bool) (Stats, error) {
	st, err := s.Cycle(ctx)
	if ctx.Err() != nil {
		return st, err
	}
	if s.observe != nil {
		s.observe(st, err)
	}
	fields := []zap.Field{zap.Int("moved", st.Moved), zap.Int("parked", st.Parked), zap.Int("failed", st.Failed),
		zap.Int("waiting_partitions", st.Waiting),
		zap.Duration("duration", st.Duration)}
	switch {
	case err != nil:
		s.log.Error("shovel cycle failed", append(fields, zap.Error(err))...)
	case idle != nil && idle(st):
		s.log.Debug("shovel cycle", fields...)
	default:
		s.log.Info("shovel cycle", fields...)
	}
	return st, err
}

// Once runs a single cycle and logs it at info level, idle or not (for
// `shovel --once`: each run of the CronJob says what it did).
func (s *Shovel) Once(ctx context.Context) (Stats, error) { return s.runCycle(ctx, nil) }

// Healthy reports whether the broker answers (for /healthz).
func (s *Shovel) Healthy(ctx context.Context) error {
	if err := s.client.Ping(ctx); err != nil {
		return fmt.Errorf("kafka unreachable: %w", err)
	}
	return nil
}

// Cycle moves every event that was in the error topic when it started.
func (s *Shovel) Cycle(ctx context.Context) (Stats, error) {
	start := s.now()
	var st Stats
	low, high, err := s.client.Offsets(ctx, s.cfg.ErrorTopic)
	if err != nil {
		return st, fmt.Errorf("read high-water marks of %s: %w", s.cfg.ErrorTopic, err)
	}
	seenAt := s.now()
	committed, err := s.client.CommittedPositions(ctx, s.cfg.GroupID, s.cfg.ErrorTopic)
	if err != nil {
		return st, fmt.Errorf("read offsets of group %s: %w", s.cfg.GroupID, err)
	}
	var errs []error
	// positions is where each partition stands after this cycle. It is
	// committed for every partition, moved or not: the shovel's group has no
	// members, so the broker expires its offsets offsets.retention.minutes
	// after the last commit, and a quiet week would otherwise send the
	// next cycle back to the low watermark to move every retained event
	// again.
	positions := make(map[int]kafka.Position, len(high))
	for p, hw := range high {
		c, ok := committed[p]
		from := c.Offset
		// What this shovel saw of the partition before, and now: the
		// high-water mark read above, by seenAt (see sightings.go).
		seen := parseSightings(c.Metadata).add(hw, seenAt)
		switch {
		case !ok:
			// A new group, or offsets expired after the shovel did not run
			// for offsets.retention.minutes: start at the beginning (moving
			// an event twice is harmless; skipping one is not).
			if low[p] < hw {
				s.log.Info("no committed shovel offset; starting the partition at its beginning",
					zap.Int("partition", p), zap.Int64("low", low[p]), zap.Int64("high_water_mark", hw))
			}
			from = low[p]
		case from > hw:
			// The topic was truncated or recreated under surviving offsets:
			// its events now sit below our offset. Start over from its
			// beginning rather than skip them (moves are idempotent).
			s.log.Warn("shovel offset is beyond the end of the error topic; restarting the partition from its beginning",
				zap.Int("partition", p), zap.Int64("committed", from), zap.Int64("high_water_mark", hw), zap.Int64("low", low[p]))
			from = low[p]
		case from < low[p]:
			s.log.Error("events expired from the error topic before the shovel moved them (retention too short?); run `promocodes reconcile`",
				zap.Int("partition", p), zap.Int64("lost_from", from), zap.Int64("lost_to", low[p]))
			from = low[p]
		}
		if from >= hw {
			positions[p] = kafka.Position{Offset: from, Metadata: seen.keep(from).String()}
			continue
		}
		next, err := s.drainPartition(ctx, p, from, hw, seen, &st)
		if err != nil {
			// Whatever was published is committed; the rest waits.
			errs = append(errs, err)
			continue
		}
		positions[p] = kafka.Position{Offset: next, Metadata: seen.keep(next).String()}
	}
	if err := s.client.CommitPositions(ctx, s.cfg.GroupID, s.cfg.ErrorTopic, positions); err != nil {
		errs = append(errs, fmt.Errorf("commit positions of %s: %w", s.cfg.ErrorTopic, err))
	}
	st.Duration = s.now().Sub(start)
	return st, errors.Join(errs...)
}

// batchSize bounds how many moves share one publish and one commit.
const batchSize = 100

// errTooYoung stops a partition's drain at an event whose retry backoff has
// not yet passed.
var errTooYoung = errors.New("event younger than its retry backoff")

// drainPartition moves [from, to) of one partition: publish a batch, then
// commit past it. A failed publish stops the partition with nothing committed
// for the unpublished messages. An event due for retry but younger than its
// backoff stops the partition there (events of a partition are moved in
// order): it returns the offset it reached, to commit. Every commit carries
// the partition's sightings (from this cycle on) as its metadata.
func (s *Shovel) drainPartition(ctx context.Context, p int, from, to int64, seen sightings, st *Stats) (int64, error) {
	next := to
	now := s.now()
	pending := make([]kafka.Message, 0, batchSize)
	var parked []kafka.Message
	var lastOffset int64 = -1
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := s.pub.Publish(ctx, pending...); err != nil {
			st.Failed += len(pending)
			return fmt.Errorf("publish %d moved events from %s/%d: %w", len(pending), s.cfg.ErrorTopic, p, err)
		}
		pos := kafka.Position{Offset: lastOffset + 1, Metadata: seen.keep(lastOffset + 1).String()}
		if err := s.client.CommitPositions(ctx, s.cfg.GroupID, s.cfg.ErrorTopic, map[int]kafka.Position{p: pos}); err != nil {
			// Published but not committed: the next cycle repeats these moves,
			// which is harmless.
			return fmt.Errorf("commit %s/%d@%d: %w", s.cfg.ErrorTopic, p, lastOffset+1, err)
		}
		for _, m := range pending {
			if m.Topic == s.cfg.DeadTopic {
				st.Parked++
			} else {
				st.Moved++
			}
		}
		s.recordParked(ctx, parked)
		pending, parked = pending[:0], parked[:0]
		return nil
	}
	err := s.client.ReadRange(ctx, s.cfg.ErrorTopic, p, from, to, func(m kafka.Message) error {
		out := s.route(m)
		if out.Topic == s.cfg.RetryTopic {
			if wait := s.backoffLeft(m, seen, now); wait > 0 {
				next = m.Offset
				st.Waiting++
				s.log.Debug("event waits for its retry backoff", zap.String("key", string(m.Key)),
					zap.Int("partition", p), zap.Int64("offset", m.Offset), zap.Duration("left", wait))
				return errTooYoung
			}
		}
		pending = append(pending, out)
		if out.Topic == s.cfg.DeadTopic {
			parked = append(parked, out)
		}
		lastOffset = m.Offset
		if len(pending) == batchSize {
			return flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, errTooYoung) {
		return 0, err
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return next, nil
}

// backoffLeft is how much longer m must wait before its move to retry: its
// count n asks for an age of RetryBackoff·2^n (at most RetryBackoffMax) since
// its failure, dated by failedAt (x-failed-at, or the record's timestamp when
// that header is missing or unreadable, within what the shovel saw itself).
func (s *Shovel) backoffLeft(m kafka.Message, seen sightings, now time.Time) time.Duration {
	if s.cfg.RetryBackoff <= 0 {
		return 0
	}
	n, _ := ParseRetryCount(m)
	need := s.cfg.RetryBackoff
	for i := 0; i < n && i < 40 && (s.cfg.RetryBackoffMax <= 0 || need < s.cfg.RetryBackoffMax); i++ {
		need *= 2
	}
	if s.cfg.RetryBackoffMax > 0 {
		need = min(need, s.cfg.RetryBackoffMax)
	}
	at, off := failedAt(m, seen, now)
	if off > clockWarnAfter || off < -clockWarnAfter {
		s.log.Warn("x-failed-at lies outside what the shovel saw of the event: the generator's clock is off; "+
			"the shovel dates the failure by its own sightings instead",
			zap.String("key", string(m.Key)), zap.Int64("offset", m.Offset), zap.Duration("header_off_by", off.Round(time.Second)))
	}
	return need - now.Sub(at)
}

// clockWarnAfter is how far x-failed-at may lie outside the shovel's bounds
// before it says so: more than a cycle's imprecision and publish delays.
const clockWarnAfter = 10 * time.Minute

// route decides where an error-topic event goes and builds the message:
// same key and value, headers kept, x-retry-count incremented on a move,
// x-dead-reason added when parked.
func (s *Shovel) route(in kafka.Message) kafka.Message {
	out := kafka.Message{Key: in.Key, Value: in.Value, Headers: append([]kafka.Header(nil), in.Headers...)}
	if _, err := promo.DecodeEvent(in.Value); err != nil {
		out.Topic = s.cfg.DeadTopic
		out.SetHeader(promo.HeaderDeadReason, promo.HeaderValue("undecodable or invalid event: "+err.Error()))
		return out
	}
	n, err := ParseRetryCount(in)
	if err != nil {
		// A garbage, negative or overflowing count cannot be trusted to end:
		// treat it as exhausted rather than as 0, which could loop forever.
		out.Topic = s.cfg.DeadTopic
		out.SetHeader(promo.HeaderDeadReason, promo.HeaderValue(err.Error()))
		return out
	}
	if n < s.cfg.MaxRetries {
		out.Topic = s.cfg.RetryTopic
		out.SetHeader(promo.HeaderRetryCount, strconv.Itoa(n+1))
		return out
	}
	out.Topic = s.cfg.DeadTopic
	reason := fmt.Sprintf("max retries (%d) exceeded", s.cfg.MaxRetries)
	if e, ok := in.Header(promo.HeaderError); ok {
		reason += "; last error: " + e
	}
	out.SetHeader(promo.HeaderDeadReason, promo.HeaderValue(reason))
	return out
}

// recordParked logs each parked batch for operators and marks it for the
// status view, best effort.
func (s *Shovel) recordParked(ctx context.Context, parked []kafka.Message) {
	for _, m := range parked {
		ev, err := promo.DecodeEvent(m.Value)
		if err != nil {
			continue
		}
		reason, _ := m.Header(promo.HeaderDeadReason)
		if !strings.HasPrefix(reason, "max retries") {
			// Parked for what the event carries (an invalid x-retry-count),
			// not for the batch having failed: a crafted or corrupted event
			// must not mark a real batch parked.
			continue
		}
		s.log.Info("promotion batch parked in the dead-letter topic", zap.Int64("promotion_id", ev.Ref().PromotionID),
			zap.Int("batch_no", ev.BatchNo), zap.Int64("codes_missing", ev.CodeCount), zap.Int("retries", RetryCount(m)),
			zap.String("reason", reason))
		if s.states == nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = s.states.SetBatchState(sctx, ev.Ref(), promo.BatchParked, reason)
		cancel()
		if err != nil {
			s.log.Info("could not record parked batch (the event is safe in the dead-letter topic)",
				zap.String("key", string(m.Key)), zap.Error(err))
		}
	}
}

// RetryCount reads x-retry-count for display: absent counts as 0, an
// invalid value as -1 (see ParseRetryCount).
func RetryCount(m kafka.Message) int {
	n, err := ParseRetryCount(m)
	if err != nil {
		return -1
	}
	return n
}

// maxRetryCount bounds a credible x-retry-count (far above any maxRetries).
const maxRetryCount = 1_000_000

// ParseRetryCount reads x-retry-count: absent is 0; anything but a decimal
// number in 0..1,000,000 is an error naming the value.
func ParseRetryCount(m kafka.Message) (int, error) {
	v, ok := m.Header(promo.HeaderRetryCount)
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxRetryCount || strconv.Itoa(n) != v {
		return 0, fmt.Errorf("invalid %s header %q (want 0..%d); treated as exhausted", promo.HeaderRetryCount, v, maxRetryCount)
	}
	return n, nil
}
