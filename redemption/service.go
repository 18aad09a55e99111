// Package redemption owns what shoppers do with codes, and only that:
// validate one without using it, redeem it, give a use back (rollback),
// reserve it, issue personal codes, and read the redemption audit trail they
// leave. The admin's changes of codes (revocation) and the audit log are
// package promotion's, which shows codes through this package's Display.
// It recognises codes offline first (the catalog: canonical form, check
// character), keeps guessing clients out (a per-client limit on failed
// look-ups), counts results in Prometheus, and leaves every limit to the
// store's single atomic transaction: nothing here reads a count and decides
// whether to write. It also counts the redemption events of the outbox into
// the per-promotion totals (Roller); package relay publishes them.
//
// A Service is safe for concurrent use; Run refreshes its catalog until its
// context ends.
package redemption

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

// Store is what redemption needs from the database.
type Store interface {
	CodeState(ctx context.Context, code, userID string) (promo.CodeState, error)
	Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error)
	Rollback(ctx context.Context, req promo.RollbackRequest) (promo.Redemption, bool, error)
	Redemptions(ctx context.Context, f promo.RedemptionFilter) ([]promo.Redemption, error)
	ExportRedemptions(ctx context.Context, f promo.RedemptionFilter, fn func(promo.Redemption) error) error
	CodeSpaces(ctx context.Context, afterID int64, limit int) ([]promo.Promotion, error)
	RefusalStore
	ReservationStore
	InspectStore
	PersonalStore
}

// Config tunes the service. Zero values take the defaults.
type Config struct {
	// CatalogRefresh is how often the catalog reads new promotions (5s);
	// CatalogMinGap the least time between two on-demand refreshes (1s).
	CatalogRefresh time.Duration
	CatalogMinGap  time.Duration
	// GuessLimit is how many failed look-ups (code_not_found, invalid_code)
	// one client address may make in any GuessWindow (30 per minute) before
	// it is answered 429; GuessLimitPerToken the same for all addresses of
	// one bearer token together (1,000). Negative disables a limit.
	// GuessKeys bounds the addresses and tokens remembered (100,000): the
	// limiter's memory. See guessLimiter.
	GuessLimit         int
	GuessLimitPerToken int
	GuessWindow        time.Duration
	GuessKeys          int
	// MaxMetadataBytes bounds a redemption's metadata object (1 KiB).
	MaxMetadataBytes int
	// RefusalFlush is how often refusal counts are written (5s).
	RefusalFlush time.Duration
	// ReservationTTL is a reservation's time to live when the request names
	// none (15m); MaxReservationTTL bounds the one it names (1h).
	ReservationTTL    time.Duration
	MaxReservationTTL time.Duration
	// ReservationRetention is how long after its expiry a reservation row is
	// kept (24h: its confirmation stays idempotent that long); the sweeper
	// deletes older ones every SweepInterval (1m).
	ReservationRetention time.Duration
	SweepInterval        time.Duration
	// IdempotencyRetention is how long an Idempotency-Key's record (of a
	// redemption, reservation or issuance) is kept (168h); the sweeper
	// deletes older ones every SweepInterval, and a request repeating a
	// swept key is a new request. -1 keeps them forever.
	IdempotencyRetention time.Duration
	// HotCodeBatch is how many concurrent redemptions of one code this
	// process combines into one transaction at most (128); -1 turns the
	// combining off. See combiner.
	HotCodeBatch int
	// AdmissionSlots is how many shopper database operations (validate,
	// redeem, reserve, confirm, release, rollback, issue; a combined batch
	// is one) run at once (8; the wiring passes the pool's size); the rest
	// wait for a slot in arrival order. AdmissionQueue bounds the requests
	// waiting at once (10,000), AdmissionWait how long one waits (15s):
	// past either it is refused with *Overloaded (the API's 503 with
	// Retry-After). AdmissionSlots -1 turns admission control off. See gate.
	AdmissionSlots int
	AdmissionQueue int
	AdmissionWait  time.Duration
	// Clock stamps redemptions and reservations and is what windows,
	// reservation expiries and the sweeper's retention are checked against
	// (nil: time.Now). Every replica must read the same clock, or one whose
	// clock is ahead counts the others' reservations as expired and redeems
	// past a code's limit: the wiring passes the database's (pkg/dbclock).
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.CatalogRefresh == 0 {
		c.CatalogRefresh = 5 * time.Second
	}
	if c.CatalogMinGap == 0 {
		c.CatalogMinGap = time.Second
	}
	if c.HotCodeBatch == 0 {
		c.HotCodeBatch = 128
	}
	if c.GuessLimit == 0 {
		c.GuessLimit = 30
	}
	if c.AdmissionSlots == 0 {
		c.AdmissionSlots = DefaultAdmissionSlots
	}
	if c.AdmissionQueue == 0 {
		c.AdmissionQueue = DefaultAdmissionQueue
	}
	if c.AdmissionWait == 0 {
		c.AdmissionWait = DefaultAdmissionWait
	}
	if c.GuessLimitPerToken == 0 {
		c.GuessLimitPerToken = 1000
	}
	if c.GuessWindow == 0 {
		c.GuessWindow = time.Minute
	}
	if c.GuessKeys == 0 {
		c.GuessKeys = 100_000
	}
	if c.MaxMetadataBytes == 0 {
		c.MaxMetadataBytes = 1024
	}
	if c.RefusalFlush == 0 {
		c.RefusalFlush = 5 * time.Second
	}
	if c.ReservationTTL == 0 {
		c.ReservationTTL = 15 * time.Minute
	}
	if c.MaxReservationTTL == 0 {
		c.MaxReservationTTL = time.Hour
	}
	if c.ReservationRetention == 0 {
		c.ReservationRetention = 24 * time.Hour
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Minute
	}
	if c.IdempotencyRetention == 0 {
		c.IdempotencyRetention = DefaultIdempotencyRetention
	}
}

// DefaultIdempotencyRetention is Config.IdempotencyRetention's default: a
// week, far past any client's retries.
const DefaultIdempotencyRetention = 7 * 24 * time.Hour

// Admission control's defaults (Config.AdmissionSlots, AdmissionQueue,
// AdmissionWait). The queue holds a 10,000-shopper burst whole; the wait
// bound lets such a burst drain on a busy 2-core machine (it took 14 s at
// load average 25) and, with the request's database deadline after it,
// stays within the HTTP server's 30 s read timeout.
const (
	DefaultAdmissionSlots = 8
	DefaultAdmissionQueue = 10_000
	DefaultAdmissionWait  = 15 * time.Second
)

// Validate checks the configuration as given (New fills in the defaults of
// zero fields first, so a zero there means the default), naming each field
// by its key: "guessLimit", "catalogRefresh", "reservationTTL".
func (c Config) Validate() error {
	var errs configkey.List
	ns := map[string]int{"guessLimit": c.GuessLimit, "guessLimitPerToken": c.GuessLimitPerToken}
	for _, key := range slices.Sorted(maps.Keys(ns)) {
		n := ns[key]
		if n < -1 || n == 0 || n == 1 {
			errs.Add(key, "must be at least 2, or -1 to disable the limit; got %d", n)
		}
	}
	if c.GuessKeys < 1 || c.GuessKeys > 10_000_000 {
		errs.Add("guessKeys", "must be in 1..10,000,000, got %d", c.GuessKeys)
	}
	if c.GuessWindow < time.Second {
		errs.Add("guessWindow", "must be at least 1s, got %s", c.GuessWindow)
	}
	if c.MaxMetadataBytes < 2 || c.MaxMetadataBytes > 64<<10 {
		errs.Add("maxMetadataBytes", "must be in 2..65536, got %d", c.MaxMetadataBytes)
	}
	if c.HotCodeBatch < -1 || c.HotCodeBatch > 10_000 {
		errs.Add("hotCodeBatch", "must be in 1..10,000, or -1 to turn combining off; got %d", c.HotCodeBatch)
	}
	errs.Join(c.ValidateAdmission())
	if c.CatalogRefresh < 100*time.Millisecond {
		errs.Add("catalogRefresh", "must be at least 100ms, got %s", c.CatalogRefresh)
	}
	if c.MaxReservationTTL < time.Second {
		errs.Add("maxReservationTTL", "must be at least 1s, got %s", c.MaxReservationTTL)
	}
	if c.ReservationTTL < time.Second || c.ReservationTTL > c.MaxReservationTTL {
		errs.Add("reservationTTL", "must be from 1s to maxReservationTTL (%s), got %s", c.MaxReservationTTL, c.ReservationTTL)
	}
	if c.ReservationRetention < time.Minute {
		errs.Add("reservationRetention", "must be at least 1m, got %s", c.ReservationRetention)
	}
	if c.IdempotencyRetention != -1 && c.IdempotencyRetention < time.Hour {
		errs.Add("idempotencyRetention", "must be at least 1h, or -1 to keep records forever; got %s", c.IdempotencyRetention)
	}
	errs.NotNegative(map[string]time.Duration{"catalogMinGap": c.CatalogMinGap, "refusalFlush": c.RefusalFlush,
		"sweepInterval": c.SweepInterval})
	return errs.Err()
}

// ValidateAdmission checks the admission keys alone ("admission.slots",
// "admission.maxQueue", "admission.maxWait") as given, like Validate: a zero
// is refused here (a configuration that says 0 would silently get the
// default), while New fills the defaults of zero fields before it validates,
// so a Config built in code may leave them zero.
func (c Config) ValidateAdmission() error {
	var errs configkey.List
	if c.AdmissionSlots != -1 && (c.AdmissionSlots < 1 || c.AdmissionSlots > 10_000) {
		errs.Add("admission.slots", "must be in 1..10,000, or -1 to turn admission control off; got %d", c.AdmissionSlots)
	}
	if c.AdmissionQueue < 1 || c.AdmissionQueue > 1_000_000 {
		errs.Add("admission.maxQueue", "must be in 1..1,000,000, got %d", c.AdmissionQueue)
	}
	if c.AdmissionWait < 10*time.Millisecond || c.AdmissionWait > 10*time.Minute {
		errs.Add("admission.maxWait", "must be from 10ms to 10m, got %s", c.AdmissionWait)
	}
	return errs.Err()
}

// Service validates, redeems and rolls back codes.
type Service struct {
	cfg     Config
	store   Store
	catalog *catalog
	guesses *guessLimiter // nil when both limits are off
	metrics *metrics
	refused *refusals
	log     *zap.Logger
	now     func() time.Time
	// notify, when set, is called after each committed redemption or
	// rollback (it wakes the event outbox's relay).
	notify func()
	// redeemer combines concurrent redemptions of one code.
	redeemer *combiner
	// gate is admission control in front of the database (nil: off).
	gate *gate
	ids  *idSource
}

// New builds the Service; reg may be nil (metrics not registered).
func New(cfg Config, store Store, reg prometheus.Registerer, log *zap.Logger) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("redemption: %w", err)
	}
	s := &Service{cfg: cfg, store: store, catalog: newCatalog(store, cfg.CatalogMinGap, log), metrics: newMetrics(reg),
		refused: newRefusals(store, log), log: log, now: cfg.Clock, ids: newIDSource()}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.AdmissionSlots > 0 {
		s.gate = newGate(cfg.AdmissionSlots, cfg.AdmissionQueue, cfg.AdmissionWait, newAdmissionMetrics(reg))
	}
	s.redeemer = newCombiner(store, cfg.HotCodeBatch, s.gate)
	if cfg.GuessLimit > 0 || cfg.GuessLimitPerToken > 0 {
		s.guesses = newGuessLimiter(cfg.GuessLimit, cfg.GuessLimitPerToken, cfg.GuessWindow, cfg.GuessKeys)
	}
	return s, nil
}

// OnChange sets a function called after every committed redemption or
// rollback (the event outbox relay's Notify). Call before serving.
func (s *Service) OnChange(fn func()) { s.notify = fn }

// Run loads the catalog and refreshes it, writes refusal counts, and sweeps
// ended reservations, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.refused.run(ctx, s.cfg.RefusalFlush)
	}()
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		s.sweep(ctx)
	}()
	if err := s.catalog.refresh(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("code catalog load failed; will retry", zap.Error(err))
	}
	s.catalog.run(ctx, s.cfg.CatalogRefresh)
	<-swept
	<-done
	return nil
}

// FlushRefusals writes the refusal counts gathered so far (Run does it every
// RefusalFlush; tests and shutdown call it directly).
func (s *Service) FlushRefusals(ctx context.Context) error { return s.refused.flush(ctx) }

// Display renders a promotion's canonical code the way its format shows it
// (the catalog's display form; package promotion's Displayer).
func (s *Service) Display(ctx context.Context, promotionID int64, canon string) string {
	return s.catalog.display(ctx, promotionID, canon)
}

// Close releases what the Service holds (nothing that needs it today; kept
// so that owners need not know).
func (s *Service) Close() {}

// The answers of the code endpoints are the API's wire bodies (pkg/wire):
// a code as validation shows it, the promotion it names, and a redemption
// (its code in display form).
type (
	CodeView     = wire.CodeView
	PromotionRef = wire.PromotionRef
	Receipt      = wire.Redemption
)

// recognise turns a typed code into its canonical form and refuses a
// malformed one or a typo, without touching the database. The look-up is
// admitted against client's failed look-ups first: the caller settles the
// admission (deferred), after calling failed on a code_not_found.
func (s *Service) recognise(ctx context.Context, client Client, raw string) (string, *admission, error) {
	adm, err := s.admit(client)
	if err != nil {
		return "", nil, err
	}
	canon, err := codes.Canonical(raw)
	if err != nil {
		return "", adm, failed(adm, promo.Refusal(promo.ReasonInvalidCode, "%s", err.Error()))
	}
	v, err := s.catalog.lookup(ctx, canon)
	switch {
	case v == mistyped:
		return "", adm, failed(adm, promo.Refusal(promo.ReasonInvalidCode, "%s", err.Error()))
	case err != nil:
		return "", adm, err
	}
	return canon, adm, nil // known or unknown: the database decides
}

// Validate answers what redeeming the code now would do, without using it.
func (s *Service) Validate(ctx context.Context, client Client, raw, userID string) (CodeView, error) {
	return s.ValidateFor(ctx, client, raw, userID, nil)
}

// ValidateFor is Validate for a shopper and order (nil: none said), whose
// eligibility it checks as a redemption would. A code bound to another user
// answers not_your_code (a failed look-up for the guess limiter), naming no
// one.
func (s *Service) ValidateFor(ctx context.Context, client Client, raw, userID string, shopper *promo.Shopper) (CodeView, error) {
	start := time.Now()
	v, err := s.validate(ctx, client, raw, userID, shopper)
	result := string(v.Status)
	if err != nil {
		result = resultOf(err)
	}
	s.metrics.validations.WithLabelValues(result).Inc()
	s.metrics.seconds.WithLabelValues("validate").Observe(time.Since(start).Seconds())
	return v, err
}

func (s *Service) validate(ctx context.Context, client Client, raw, userID string, shopper *promo.Shopper) (CodeView, error) {
	canon, adm, err := s.recognise(ctx, client, raw)
	defer s.settle(adm)
	if err != nil {
		return CodeView{}, err
	}
	var st promo.CodeState
	err = s.gate.run(ctx, func(ctx context.Context) (err error) {
		st, err = s.store.CodeState(ctx, canon, userID)
		return err
	})
	if promo.Is(err, promo.ENotFound) {
		return CodeView{}, failed(adm, promo.Refusal(promo.ReasonCodeNotFound, "no such code"))
	}
	if err != nil {
		return CodeView{}, err
	}
	v := s.codeView(ctx, st, userID, shopper)
	if v.Status == promo.ReasonNotYourCode {
		adm.Failed()
	}
	return v, nil
}

// codeView is what validation shows of a code's state.
func (s *Service) codeView(ctx context.Context, st promo.CodeState, userID string, shopper *promo.Shopper) CodeView {
	p := st.Promotion
	// The status is the refusal reason a redemption now would get
	// (code_exhausted for a used-up code), one name for one state.
	status, rule := st.StatusFor(s.now(), userID != "", shopper)
	v := CodeView{Code: s.catalog.display(ctx, p.ID, st.Code), Promotion: PromotionRef{ID: p.IDString(), Name: p.Name},
		Status: status, UsesLeft: st.UsesLeft(), ReservedUses: st.Reserved, StartsAt: p.StartsAt,
		ExpiresAt: p.ExpiresAt, MaxUsage: p.MaxUsagePerCode, PerUserLimit: p.PerUserLimit, Rule: rule,
		Bound: st.Owner != "", Eligibility: p.Eligibility}
	if userID != "" && p.PerUserLimit != promo.UnlimitedPerUser {
		n := st.UserUsesLeft()
		v.UserUsesLeft = &n
	}
	return v
}

// RedeemInput is a redemption request as the API decoded it.
type RedeemInput struct {
	Code           string // as typed
	UserID         string
	OrderID        string
	Metadata       json.RawMessage
	IdempotencyKey string
	// Shopper is what the request says about the shopper and the order
	// (nil: nothing), for the eligibility rules and the audit trail.
	Shopper *promo.Shopper
}

// Redeem uses the code once for the user. A refusal is a *promo.Error with
// a Reason; replayed says the answer came from the idempotency record.
func (s *Service) Redeem(ctx context.Context, client Client, in RedeemInput) (Receipt, bool, error) {
	start := time.Now()
	var rc Receipt
	replayed, err := s.redeem(ctx, client, &in, &rc)
	result := "redeemed"
	if err != nil {
		result = resultOf(err)
	}
	s.metrics.redemptions.WithLabelValues(result).Inc()
	s.metrics.seconds.WithLabelValues("redeem").Observe(time.Since(start).Seconds())
	return rc, replayed, err
}

// redeem is Redeem without its metrics; it sets *rc on success (rc and in
// by reference: a waiting request's goroutine holds this frame, see
// combiner.redeem).
func (s *Service) redeem(ctx context.Context, client Client, in *RedeemInput, rc *Receipt) (bool, error) {
	canon, adm, err := s.recognise(ctx, client, in.Code)
	defer s.settle(adm)
	if err != nil {
		return false, err
	}
	var req promo.RedeemRequest
	s.redeemRequest(&req, canon, client, in)
	out, err := s.redeemer.redeem(ctx, &req)
	if err != nil {
		return false, err
	}
	if out.Refused != "" {
		if !out.Replayed {
			s.refused.add(out.PromotionID, out.Refused, req.Now)
		}
		return out.Replayed, refusal(adm, out.Refused, out.Rule)
	}
	if !out.Replayed && s.notify != nil {
		s.notify()
	}
	s.setReceipt(ctx, rc, &out.Redemption)
	return out.Replayed, nil
}

// redeemRequest sets *req to the redemption of canon that in asks for.
func (s *Service) redeemRequest(req *promo.RedeemRequest, canon string, client Client, in *RedeemInput) {
	*req = promo.RedeemRequest{ID: s.newID(), EventID: s.newID(), Code: canon, UserID: in.UserID, OrderID: in.OrderID,
		Metadata: in.Metadata, Now: s.now().UTC(), IdempotencyKey: in.IdempotencyKey, Shopper: in.Shopper,
		ClientAddr: client.Addr, UserAgent: client.UserAgent}
	if in.IdempotencyKey != "" {
		req.RequestHash = requestHash(canon, *in)
	}
}

// Rollback gives a redemption's use back, once.
func (s *Service) Rollback(ctx context.Context, id, reason string) (Receipt, bool, error) {
	start := time.Now()
	var (
		r        promo.Redemption
		replayed bool
	)
	err := s.gate.run(ctx, func(ctx context.Context) (err error) {
		r, replayed, err = s.store.Rollback(ctx, promo.RollbackRequest{RedemptionID: id, EventID: s.newID(),
			Reason: reason, Now: s.now()})
		return err
	})
	result := "rolled_back"
	switch {
	case err != nil:
		result = resultOf(err)
	case replayed:
		result = "already_rolled_back"
	}
	s.metrics.rollbacks.WithLabelValues(result).Inc()
	s.metrics.seconds.WithLabelValues("rollback").Observe(time.Since(start).Seconds())
	if err != nil {
		return Receipt{}, false, err
	}
	if !replayed && s.notify != nil {
		s.notify()
	}
	return s.receipt(ctx, &r), replayed, nil
}

// Redemptions returns a page of a promotion's audit trail.
func (s *Service) Redemptions(ctx context.Context, f promo.RedemptionFilter) ([]Receipt, error) {
	rs, err := s.store.Redemptions(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]Receipt, len(rs))
	for i, r := range rs {
		out[i] = s.receipt(ctx, &r)
	}
	return out, nil
}

// ExportRedemptions streams a promotion's audit trail to fn.
func (s *Service) ExportRedemptions(ctx context.Context, f promo.RedemptionFilter, fn func(Receipt) error) error {
	return s.store.ExportRedemptions(ctx, f, func(r promo.Redemption) error { return fn(s.receipt(ctx, &r)) })
}

// setReceipt sets *rc to r's receipt, in a frame of its own (not inlined:
// its temporaries would grow redeem's frame, which a waiting request holds).
//
//go:noinline
func (s *Service) setReceipt(ctx context.Context, rc *Receipt, r *promo.Redemption) {
	*rc = s.receipt(ctx, r)
}

func (s *Service) receipt(ctx context.Context, r *promo.Redemption) Receipt {
	rc := Receipt{Redemption: *r, Code: s.catalog.display(ctx, r.PromotionID, r.Code),
		PromotionID: promo.FormatID(r.PromotionID)}
	rc.IdempotencyKey = promo.ClientKey(r.IdempotencyKey) // as the client sent it, not as recorded
	return rc
}

// admit refuses a client that used up its failed look-ups, else takes its
// tokens for this look-up (nil when guesses are not limited).
func (s *Service) admit(client Client) (*admission, error) {
	if s.guesses == nil {
		return nil, nil
	}
	adm, wait := s.guesses.admit(client, s.now())
	if wait > 0 {
		s.metrics.limited.Inc()
		e := promo.Refusal(promo.ReasonRateLimited, "too many failed code look-ups; retry later")
		return nil, &RateLimited{Err: e, RetryAfter: wait}
	}
	return adm, nil
}

// settle gives a look-up's tokens back unless it failed.
func (s *Service) settle(adm *admission) { adm.Settle(s.now()) }

// failed keeps a look-up's tokens (it failed) and returns err.
func failed(adm *admission, err error) error {
	adm.Failed()
	return err
}

// RateLimited is the refusal of a client past its failed look-ups; the API
// answers it 429 with Retry-After.
type RateLimited struct {
	Err        *promo.Error
	RetryAfter time.Duration
}

func (e *RateLimited) Error() string { return e.Err.Error() }
func (e *RateLimited) Unwrap() error { return e.Err }

// refusal is the error of a refused redemption or reservation; a refusal
// that a guesser gets (code_not_found, not_your_code) keeps the look-up's
// tokens.
func refusal(adm *admission, r promo.Reason, rule string) error {
	e := promo.Refusal(r, "%s", refusalMessage(r))
	if r == promo.ReasonNotEligible {
		e.Rule, e.Message = rule, promo.NotEligible(rule)
	}
	if r == promo.ReasonCodeNotFound || r == promo.ReasonNotYourCode {
		return failed(adm, e)
	}
	return e
}

func refusalMessage(r promo.Reason) string {
	switch r {
	case promo.ReasonNotYourCode:
		return "the code was issued to another customer"
	case promo.ReasonPoolExhausted:
		return "the promotion has no unassigned codes left"
	case promo.ReasonCodeNotFound:
		return "no such code"
	case promo.ReasonCodeExhausted:
		return "the code has no uses left"
	case promo.ReasonUserLimitReached:
		return "this user has used the promotion as often as it allows"
	case promo.ReasonNotStarted:
		return "the promotion has not started yet"
	case promo.ReasonExpired:
		return "the promotion has ended"
	case promo.ReasonDeactivated:
		return "the promotion is deactivated"
	case promo.ReasonRevoked:
		return "the code was revoked"
	case promo.ReasonReservationExpired:
		return "the reservation expired and its use was taken since"
	case promo.ReasonReservationReleased:
		return "the reservation was released"
	}
	return string(r)
}

// resultOf is the metrics label of an error: its reason, or its class.
func resultOf(err error) string {
	if r := promo.ReasonOf(err); r != "" {
		return string(r)
	}
	return string(promo.Code(err))
}

// newID returns a new id (a UUIDv7, see idSource).
func (s *Service) newID() string { return s.ids.newID() }

// requestHash identifies a redemption request for its idempotency key: the
// canonical code (so "abc-def" and "ABCDEF" are the same request) and the
// body's fields.
func requestHash(canon string, in RedeemInput) string {
	h := sha256.New()
	shopper := ""
	if in.Shopper != nil {
		b, _ := json.Marshal(in.Shopper.Normalize())
		shopper = string(b)
	}
	for _, part := range []string{"redeem", canon, in.UserID, in.OrderID, string(in.Metadata), shopper} {
		fmt.Fprintf(h, "%d:%s;", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}
