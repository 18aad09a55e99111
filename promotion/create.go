package promotion

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Limits of a promotion's settings.
const (
	MaxNameLen      = 200
	MaxVanityLen    = 64
	MinVanityLen    = 3
	MaxUsageCeiling = 1_000_000_000 // maxUsagePerCode and perUserLimit
)

// Request is a create request as the client sent it, decoded but not yet
// checked: Create checks every field and names each one at fault.
type Request struct {
	Name string
	// CodeCount is the JSON literal as sent (absent: nil), kept raw so that
	// strings, fractions and exponents are refused, not silently coerced.
	CodeCount       json.RawMessage
	Format          *promo.Format // generated codes
	Code            *string       // one vanity code
	MaxUsagePerCode *int          // nil: 1
	PerUserLimit    *int          // nil: 1; 0 is no limit
	StartsAt        *time.Time
	ExpiresAt       *time.Time
	// Eligibility is who may use the codes (nil or empty: anyone).
	Eligibility    *promo.Eligibility
	IdempotencyKey string
}

// Created is the outcome of a create: the promotion, whether this request
// created it (false: a replay of its Idempotency-Key), and its status now.
type Created struct {
	Promotion promo.Promotion
	New       bool
	// Status is pending for a new generated promotion (its codes are still
	// to come), completed for a new vanity one (its one code exists), and
	// for a replay what the promotion is now (it may have completed, failed,
	// been cancelled or deleted since).
	Status promo.Status
}

// Create checks req completely, so that nothing is written for a bad one,
// and writes the promotion, its reserved sequence range and its batch rows
// in one transaction. A refused request is an EInvalid *promo.Error naming
// every field at fault (with the shortest length that fits, for a format
// too small for its count), or ECapacity.
func (s *Service) Create(ctx context.Context, req Request) (Created, error) {
	np, err := s.check(req)
	if err != nil {
		return Created{}, err
	}
	p, created, err := s.store.CreatePromotion(ctx, np)
	if err != nil {
		return Created{}, err
	}
	out := Created{Promotion: p, New: created, Status: promo.StatusPending}
	switch {
	case !created:
		ps, err := s.store.GetPromotion(ctx, p.ID)
		if err != nil {
			return Created{}, err
		}
		out.Status = ps.Status()
		return out, nil
	case p.Kind == promo.KindVanity:
		out.Status = promo.StatusCompleted
	}
	s.log.Info("promotion created", zap.Int64("promotion_id", p.ID), zap.String("name", p.Name),
		zap.String("kind", string(p.Kind)), zap.Int64("codes", p.CodeCount),
		zap.Int("batches", batchCount(p.CodeCount, np.BatchSize, p.Kind)))
	if p.Kind != promo.KindVanity {
		s.notifyBatches()
	}
	return out, nil
}

// problems gathers the field errors of one request, and the advice of a
// format that cannot take its count (MinLength, MinTailLength,
// MinSerialDigits).
type problems struct {
	fields []promo.FieldError
	advice promo.Error
}

func (p *problems) add(field, format string, args ...any) {
	p.fields = append(p.fields, promo.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if len(p.fields) == 0 {
		return nil
	}
	return &promo.Error{Code: promo.EInvalid, Message: "invalid promotion request", Fields: p.fields,
		MinLength: p.advice.MinLength, MinTailLength: p.advice.MinTailLength, MinSerialDigits: p.advice.MinSerialDigits}
}

// check turns a request into the promotion to write, or why it is refused.
func (s *Service) check(req Request) (promo.NewPromotion, error) {
	var bad problems
	np := s.checkSettings(req, &bad)
	switch {
	case req.Code != nil && (req.Format != nil || req.CodeCount != nil):
		bad.add("code", "a vanity promotion has one code: give either code, or codeCount with format")
	case req.Code != nil:
		code, msg := vanityCode(*req.Code)
		if msg != "" {
			bad.add("code", "%s", msg)
		}
		np.Kind, np.VanityCode, np.CodeCount = promo.KindVanity, code, 1
	default:
		np.Kind = promo.KindGenerated
		if err := s.checkGenerated(req, &np, &bad); err != nil {
			return np, err
		}
	}
	if err := bad.err(); err != nil {
		return np, err
	}
	np.RequestHash = requestHash(np)
	return np, nil
}

// checkSettings checks what every promotion has: its name, usage limits and
// window.
func (s *Service) checkSettings(req Request, bad *problems) promo.NewPromotion {
	name := strings.TrimSpace(req.Name)
	switch {
	case name == "":
		bad.add("name", "is required")
	case utf8.RuneCountInString(name) > MaxNameLen || !utf8.ValidString(name):
		bad.add("name", "must be valid UTF-8 of at most %d characters", MaxNameLen)
	case promo.BadText(name) != "":
		bad.add("name", "%s", promo.BadText(name))
	}
	maxUsage := 1
	if req.MaxUsagePerCode != nil {
		maxUsage = *req.MaxUsagePerCode
		if maxUsage < 1 || maxUsage > MaxUsageCeiling {
			bad.add("maxUsagePerCode", "must be between 1 and %d", MaxUsageCeiling)
		}
	}
	perUser := 1
	if req.PerUserLimit != nil {
		perUser = *req.PerUserLimit
		if perUser < 0 || perUser > MaxUsageCeiling {
			bad.add("perUserLimit", "must be between 0 (no limit) and %d", MaxUsageCeiling)
		}
	}
	if req.StartsAt != nil && req.ExpiresAt != nil && !req.ExpiresAt.After(*req.StartsAt) {
		bad.add("expiresAt", "must be after startsAt")
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(s.now()) {
		bad.add("expiresAt", "is in the past")
	}
	var np promo.NewPromotion
	np.Eligibility = checkEligibility(req.Eligibility, bad)
	np.Name, np.MaxUsagePerCode, np.PerUserLimit = name, maxUsage, perUser
	np.StartsAt, np.ExpiresAt = utc(req.StartsAt), utc(req.ExpiresAt)
	np.IdempotencyKey, np.BatchSize = req.IdempotencyKey, s.cfg.BatchCodeCount
	return np
}

// checkGenerated checks a generated promotion's count and format and fills
// in np's code space. A format that cannot take a valid count is ECapacity
// (returned); every other problem is added to bad.
func (s *Service) checkGenerated(req Request, np *promo.NewPromotion, bad *problems) error {
	count, ok := ParseCount(req.CodeCount)
	switch {
	case req.CodeCount == nil:
		bad.add("codeCount", "is required (or give a vanity code)")
	case !ok:
		bad.add("codeCount", "must be a positive integer, got %s", truncate(string(req.CodeCount), 40))
	case count < 1:
		bad.add("codeCount", "must be at least 1")
	case count > s.cfg.MaxCodeCount:
		bad.add("codeCount", "must be at most %d", s.cfg.MaxCodeCount)
	}
	if req.Format == nil {
		bad.add("format", "is required for generated codes")
		return nil
	}
	forCount := count
	if len(bad.fields) > 0 {
		forCount = 0 // a bad count: check the format alone
	}
	layout, err := codes.CheckFormatFor(*req.Format, forCount, s.cfg.MaxDensity)
	if promo.Is(err, promo.ECapacity) && len(bad.fields) == 0 {
		return err
	}
	if err != nil {
		var de *promo.Error
		if !errors.As(err, &de) {
			bad.add("format", "%v", err)
			return nil
		}
		bad.fields = append(bad.fields, de.Fields...)
		bad.advice = *de
		if len(de.Fields) == 0 {
			bad.add("format", "%s", de.Message)
		}
		return nil
	}
	if len(bad.fields) > 0 {
		return nil
	}
	np.CodeCount = count
	// CheckChar resolved and style "random" written as the default: an
	// explicit default and an omitted one are the same request.
	normalized := layout.Format()
	np.Format = &normalized
	np.CounterName = layout.CounterName()
	np.SeqLimit = layout.SeqLimit(s.cfg.MaxDensity)
	np.KeyFingerprint = s.keyFP // not part of the request hash (json:"-")
	return nil
}

// vanityCode returns the canonical form of a vanity code (codes.Canonical:
// upper-cased), or why it is refused. Letter case is folded, but separator
// characters and inner spaces are refused rather than dropped: the admin
// would otherwise believe "222M-5H4HJVD" and "222M5H4HJVD" to be two codes,
// when a shopper typing either reaches the same one.
func vanityCode(raw string) (code, problem string) {
	const rule = "must be %d to %d printable ASCII characters without spaces, commas or quotes"
	trimmed := strings.TrimSpace(raw)
	code, err := codes.Canonical(trimmed)
	switch {
	case err != nil:
		return "", fmt.Sprintf(rule, MinVanityLen, MaxVanityLen)
	case code != strings.ToUpper(trimmed):
		return "", fmt.Sprintf("%q holds separator characters (%q) or spaces, which are ignored when a code is "+
			"typed or looked up, so it would be the code %q: give that canonical form instead "+
			"(shoppers may still type it with separators)", truncate(trimmed, MaxVanityLen+8), codes.SeparatorChars, truncate(code, MaxVanityLen+8))
	case len(code) < MinVanityLen || len(code) > MaxVanityLen || strings.ContainsAny(code, ",\""):
		return "", fmt.Sprintf(rule, MinVanityLen, MaxVanityLen)
	}
	return code, ""
}

// ParseCount reads a count as sent in JSON: an integer literal only (no
// string, fraction or exponent; false otherwise); one past int64 is
// MaxInt64 (or -1), to be refused against the maximum.
func ParseCount(raw json.RawMessage) (int64, bool) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || strings.ContainsAny(s, ".eE\"") {
		return 0, false
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return 0, false
	}
	if !n.IsInt64() {
		if n.Sign() > 0 {
			return 1<<63 - 1, true // absurdly large: reported against the maximum
		}
		return -1, true
	}
	return n.Int64(), true
}

// requestHash fingerprints the normalized request, so that the same request
// with another spacing or key order is still "the same body".
func requestHash(np promo.NewPromotion) string {
	norm := struct {
		Name        string
		Kind        promo.Kind
		Count       int64
		Format      *promo.Format
		Code        string
		MaxUsage    int
		PerUser     int
		StartsAt    *time.Time
		ExpiresAt   *time.Time
		Eligibility *promo.Eligibility `json:",omitempty"`
	}{np.Name, np.Kind, np.CodeCount, np.Format, np.VanityCode, np.MaxUsagePerCode, np.PerUserLimit, np.StartsAt, np.ExpiresAt,
		np.Eligibility}
	b, _ := json.Marshal(norm)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// batchCount is the number of batch events a new promotion is split into.
func batchCount(codes, batchSize int64, kind promo.Kind) int {
	if kind != promo.KindGenerated || batchSize <= 0 {
		return 0
	}
	return promo.BatchCount(codes, batchSize)
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// checkEligibility validates a promotion's eligibility rules (adding what is
// wrong to bad) and returns them in their one stored form: nil for none.
func checkEligibility(e *promo.Eligibility, bad *problems) *promo.Eligibility {
	if e == nil || e.IsZero() {
		return nil
	}
	for _, f := range e.Validate("eligibility") {
		bad.add(f.Field, "%s", f.Message)
	}
	n := e.Normalize()
	return &n
}
