// Package promotion owns a promotion's life and its rules: creating one
// (the request is checked completely, format, capacity, counts, window,
// before anything is written), topping it up, changing its name, window or
// active flag, cancelling its generation, deleting it (the background
// finisher empties it in bounded statements), purging ended promotions,
// revoking one of its codes and reading its audit log.
// The HTTP layer (package api) decodes requests and answers; the store
// writes each change, its audit row and its event in one transaction.
//
// After a change that wrote batch rows (a create, a top-up) the Service
// calls the function given to OnBatches (the batch outbox relay's Notify);
// after one that wrote an event, the one given to OnChange (the event
// outbox relay's).
//
// A Service is safe for concurrent use; Run finishes requested deletions
// until its context ends.
package promotion

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Store is what a promotion's life needs from the database.
type Store interface {
	CreatePromotion(ctx context.Context, np promo.NewPromotion) (promo.Promotion, bool, error)
	GetPromotion(ctx context.Context, id int64) (promo.PromotionStatus, error)
	UpdatePromotion(ctx context.Context, u promo.PromotionUpdate) (promo.PromotionSettings, error)
	CancelPromotion(ctx context.Context, req promo.CancelRequest) (bool, error)
	TopUp(ctx context.Context, req promo.TopUpRequest) (promo.TopUp, bool, error)
	TopUps(ctx context.Context, id int64) ([]promo.TopUp, error)
	RequestDeletion(ctx context.Context, a promo.AuditEntry) (bool, error)
	FinishDeletion(ctx context.Context, a promo.AuditEntry) error
	DeletionsPending(ctx context.Context) ([]int64, error)
	Deletion(ctx context.Context, id int64) (promo.Deletion, error)
	PurgeStore
	AdminStore
}

// Config tunes the service. Zero values take the defaults.
type Config struct {
	BatchCodeCount int64   // codes per batch event (default 50,000)
	MaxCodeCount   int64   // largest promotion or top-up accepted (default 100,000,000)
	MaxDensity     float64 // issued/space limit per format (default codes.DefaultMaxDensity)
	// Secret is the code key: only its fingerprint is stored with each
	// generated promotion (formats are checked against its presence).
	Secret []byte
	// DeletionInterval is how often requested deletions that did not finish
	// are resumed (1m); a new request starts at once.
	DeletionInterval time.Duration
	// Clock stamps changes and is what a new window is checked against
	// (nil: time.Now). Replicas must share one: the wiring passes the
	// database's (pkg/dbclock).
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.BatchCodeCount == 0 {
		c.BatchCodeCount = 50_000
	}
	if c.MaxCodeCount == 0 {
		c.MaxCodeCount = 100_000_000
	}
	if c.MaxDensity == 0 {
		c.MaxDensity = codes.DefaultMaxDensity
	}
	if c.DeletionInterval == 0 {
		c.DeletionInterval = time.Minute
	}
}

// Validate checks the configuration as given (New fills in the defaults of
// zero fields first, so a zero there means the default), naming each field
// by its key: "batchCodeCount", "maxCodeCount", "maxDensity", "secret".
func (c Config) Validate() error {
	var errs configkey.List
	if c.BatchCodeCount < 1 || c.BatchCodeCount > 10_000_000 {
		errs.Add("batchCodeCount", "must be in 1..10,000,000, got %d", c.BatchCodeCount)
	}
	if c.MaxCodeCount < 1 {
		errs.Add("maxCodeCount", "must be positive, got %d", c.MaxCodeCount)
	}
	if c.MaxDensity <= 0 || c.MaxDensity > 1 {
		errs.Add("maxDensity", "must be in (0, 1], got %g", c.MaxDensity)
	}
	if err := codes.CheckSecret(c.Secret); err != nil {
		errs.Add("secret", "%v", err)
	}
	errs.NotNegative(map[string]time.Duration{"deletionInterval": c.DeletionInterval})
	return errs.Err()
}

// Service creates promotions and carries them through their life.
type Service struct {
	cfg   Config
	store Store
	log   *zap.Logger
	now   func() time.Time
	keyFP string // codes.KeyFingerprint(cfg.Secret), stored with each generated promotion
	// batches, when set, is called after batch rows were written; events
	// after an event was (OnBatches, OnChange).
	batches func()
	events  func()
	// kick wakes the deletion finisher (a deletion was requested).
	kick chan struct{}
	// displayer renders codes in display form (nil: canonical form).
	displayer Displayer
}

// New builds the Service. display renders the codes it answers (a
// revocation, the audit log) in display form: the redemption service; nil
// answers canonical forms.
func New(cfg Config, store Store, display Displayer, log *zap.Logger) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("promotion: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Service{cfg: cfg, store: store, log: log, now: cfg.Clock, keyFP: codes.KeyFingerprint(cfg.Secret),
		kick: make(chan struct{}, 1), displayer: display}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// OnBatches sets a function called after a create or top-up wrote batch
// rows (the batch outbox relay's Notify). Call before serving.
func (s *Service) OnBatches(fn func()) { s.batches = fn }

// OnChange sets a function called after every change that wrote an event
// (the event outbox relay's Notify). Call before serving.
func (s *Service) OnChange(fn func()) { s.events = fn }

func (s *Service) notifyBatches() {
	if s.batches != nil {
		s.batches()
	}
}

func (s *Service) notifyEvents() {
	if s.events != nil {
		s.events()
	}
}

// Run finishes requested deletions: at once when one is requested, and
// every DeletionInterval those that were interrupted, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.DeletionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.kick:
		}
		s.deletePending(ctx)
	}
}

// Promotion reads a promotion's status.
func (s *Service) Promotion(ctx context.Context, id int64) (promo.PromotionStatus, error) {
	return s.store.GetPromotion(ctx, id)
}

// newID returns a UUIDv7: unique, and time-ordered so that the audit log
// pages newest first by id.
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString() // the clock source failed: still unique
	}
	return id.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
