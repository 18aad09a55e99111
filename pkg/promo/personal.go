package promo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Personal codes: codes of a generated promotion issued to one customer
// (bound to them), and the eligibility rules a promotion may carry.

// Reasons of personal codes and eligibility.
const (
	// ReasonNotYourCode: the code is bound to another user (403). Counted as
	// a failed guess: knowing a code is not enough to use it.
	ReasonNotYourCode Reason = "not_your_code"
	// ReasonNotEligible: the request fails one of the promotion's
	// eligibility rules (409); the refusal names the rule.
	ReasonNotEligible Reason = "not_eligible"
	// ReasonPoolExhausted: the promotion has fewer unassigned codes than an
	// issuance asked for (409); nothing was issued.
	ReasonPoolExhausted Reason = "pool_exhausted"
)

// Eligibility rule names, as a not_eligible refusal names them.
const (
	RuleSegments       = "segments"
	RuleCountries      = "countries"
	RuleFirstOrderOnly = "firstOrderOnly"
	RuleMinOrderAmount = "minOrderAmount"
)

// Eligibility limits.
const (
	MaxSegments     = 50 // segments in a rule or a request
	MaxSegmentLen   = 64
	MaxCountries    = 250
	MaxIssueCount   = 100 // codes one issuance hands out
	MaxUserCodes    = 1000
	amountScale     = 10000 // Amount is in 1/10,000 of the currency's major unit
	amountFracDigit = 4
)

// Amount is a money amount in 1/10,000 of the currency's major unit, so that
// sums are exact integers in every database. JSON: a decimal string
// ("49.90"); a JSON number is read too.
type Amount int64

// ParseAmount reads a decimal amount with at most 4 fraction digits.
func ParseAmount(s string) (Amount, error) {
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	whole, frac, hasDot := strings.Cut(digits, ".")
	if whole == "" || (hasDot && frac == "") || len(frac) > amountFracDigit || len(whole) > 14 {
		return 0, fmt.Errorf("%q is not a decimal amount with at most %d fraction digits", s, amountFracDigit)
	}
	for _, r := range whole + frac {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a decimal amount", s)
		}
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt((frac + "0000")[:amountFracDigit], 10, 64)
	a := Amount(w*amountScale + f)
	if neg {
		a = -a
	}
	return a, nil
}

// String is the amount as a decimal string, without trailing zero fraction
// digits beyond two ("49.90", "12.5050", "3.00").
func (a Amount) String() string {
	sign := ""
	v := int64(a)
	if v < 0 {
		sign, v = "-", -v
	}
	frac := fmt.Sprintf("%04d", v%amountScale)
	for len(frac) > 2 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	return fmt.Sprintf("%s%d.%s", sign, v/amountScale, frac)
}

func (a Amount) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }

func (a *Amount) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := ParseAmount(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Money is an amount in a currency (ISO 4217, three upper-case letters).
type Money struct {
	Amount   Amount `json:"amount"`
	Currency string `json:"currency"`
}

// Eligibility is a promotion's declarative rules about who may use its codes,
// checked inside every redemption (and reservation) and answered by
// validation. A zero rule does not apply.
type Eligibility struct {
	// Segments: the shopper must be in at least one of them.
	Segments []string `json:"segments,omitempty"`
	// MinOrderAmount: the order must be at least this much, in this currency.
	MinOrderAmount *Money `json:"minOrderAmount,omitempty"`
	// FirstOrderOnly: only on the shopper's first order.
	FirstOrderOnly bool `json:"firstOrderOnly,omitempty"`
	// Countries: the shopper's country (ISO 3166-1 alpha-2) must be one of them.
	Countries []string `json:"countries,omitempty"`
}

// IsZero reports whether no rule applies.
func (e Eligibility) IsZero() bool {
	return len(e.Segments) == 0 && e.MinOrderAmount == nil && !e.FirstOrderOnly && len(e.Countries) == 0
}

// Normalize upper-cases countries and currencies and sorts and de-duplicates
// the lists, so that one set of rules has one stored form.
func (e Eligibility) Normalize() Eligibility {
	e.Segments = sortedSet(e.Segments, false)
	e.Countries = sortedSet(e.Countries, true)
	if e.MinOrderAmount != nil {
		m := *e.MinOrderAmount
		m.Currency = strings.ToUpper(m.Currency)
		e.MinOrderAmount = &m
	}
	return e
}

func sortedSet(in []string, upper bool) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.TrimSpace(s)
		if upper {
			out[i] = strings.ToUpper(out[i])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Validate names what is wrong with the rules, under field (eligibility).
func (e Eligibility) Validate(field string) []FieldError {
	var errs []FieldError
	add := func(sub, format string, args ...any) {
		errs = append(errs, FieldError{Field: field + "." + sub, Message: fmt.Sprintf(format, args...)})
	}
	if len(e.Segments) > MaxSegments {
		add(RuleSegments, "at most %d segments, got %d", MaxSegments, len(e.Segments))
	}
	for _, s := range e.Segments {
		if msg := checkSegment(s); msg != "" {
			add(RuleSegments, "%s", msg)
			break
		}
	}
	if len(e.Countries) > MaxCountries {
		add(RuleCountries, "at most %d countries, got %d", MaxCountries, len(e.Countries))
	}
	for _, c := range e.Countries {
		if !ValidCountry(c) {
			add(RuleCountries, "%q is not an ISO 3166-1 alpha-2 country code", c)
			break
		}
	}
	if m := e.MinOrderAmount; m != nil {
		if m.Amount <= 0 {
			add(RuleMinOrderAmount+".amount", "must be positive")
		}
		if !ValidCurrency(m.Currency) {
			add(RuleMinOrderAmount+".currency", "%q is not an ISO 4217 currency code", m.Currency)
		}
	}
	return errs
}

func checkSegment(s string) string {
	switch {
	case strings.TrimSpace(s) == "":
		return "a segment must not be empty"
	case len(s) > MaxSegmentLen:
		return fmt.Sprintf("a segment has at most %d bytes", MaxSegmentLen)
	case strings.ContainsAny(s, "\x00\n\r\t"):
		return "a segment must not contain control characters"
	}
	return ""
}

// ValidCountry reports an ISO 3166-1 alpha-2 shape (two letters, any case).
func ValidCountry(c string) bool { return len(c) == 2 && letters(c) }

// ValidCurrency reports an ISO 4217 shape (three letters, any case).
func ValidCurrency(c string) bool { return len(c) == 3 && letters(c) }

func letters(s string) bool {
	for _, r := range s {
		if (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') {
			return false
		}
	}
	return true
}

// EncodeEligibility is the stored form of rules (nil for none).
func EncodeEligibility(e *Eligibility) any {
	if e == nil || e.IsZero() {
		return nil
	}
	b, _ := json.Marshal(e.Normalize())
	return string(b)
}

// DecodeEligibility reads the stored form ("" for none).
func DecodeEligibility(s string) (*Eligibility, error) {
	if s == "" {
		return nil, nil
	}
	e := new(Eligibility)
	if err := json.Unmarshal([]byte(s), e); err != nil {
		return nil, fmt.Errorf("decode eligibility: %w", err)
	}
	if e.IsZero() {
		return nil, nil
	}
	return e, nil
}

// Order is what a redemption says about its order: its amount and currency,
// the discount the code gave (for the analytics), and whether it is the
// shopper's first order.
type Order struct {
	Amount     Amount  `json:"amount"`
	Currency   string  `json:"currency"`
	Discount   *Amount `json:"discount,omitempty"`
	FirstOrder *bool   `json:"firstOrder,omitempty"`
}

// Shopper is what a redemption, reservation or validation says about the
// shopper and the order, for the eligibility rules and the audit trail.
type Shopper struct {
	Segments   []string
	Order      *Order
	FirstOrder *bool // the request's firstOrder (or its order's)
	Country    string
}

// Validate names what is wrong with the request's shopper fields.
func (s Shopper) Validate() []FieldError {
	var errs []FieldError
	if len(s.Segments) > MaxSegments {
		errs = append(errs, FieldError{Field: "segments", Message: fmt.Sprintf("at most %d segments", MaxSegments)})
	}
	for _, seg := range s.Segments {
		if msg := checkSegment(seg); msg != "" {
			errs = append(errs, FieldError{Field: "segments", Message: msg})
			break
		}
	}
	if s.Country != "" && !ValidCountry(s.Country) {
		errs = append(errs, FieldError{Field: "country", Message: fmt.Sprintf("%q is not an ISO 3166-1 alpha-2 country code", s.Country)})
	}
	if o := s.Order; o != nil {
		if o.Amount < 0 {
			errs = append(errs, FieldError{Field: "order.amount", Message: "must not be negative"})
		}
		if !ValidCurrency(o.Currency) {
			errs = append(errs, FieldError{Field: "order.currency", Message: fmt.Sprintf("%q is not an ISO 4217 currency code", o.Currency)})
		}
		if o.Discount != nil && *o.Discount < 0 {
			errs = append(errs, FieldError{Field: "order.discount", Message: "must not be negative"})
		}
	}
	return errs
}

// Normalize upper-cases the country and currency and sorts the segments.
func (s Shopper) Normalize() Shopper {
	s.Segments = sortedSet(s.Segments, false)
	s.Country = strings.ToUpper(s.Country)
	if s.Order != nil {
		o := *s.Order
		o.Currency = strings.ToUpper(o.Currency)
		s.Order = &o
		if s.FirstOrder == nil {
			s.FirstOrder = o.FirstOrder
		}
	}
	return s
}

// Check returns the first rule the shopper fails ("" when eligible), in the
// order segments, countries, firstOrderOnly, minOrderAmount. A rule whose
// input the request does not carry fails: the rules admit only who shows
// they qualify.
func (e *Eligibility) Check(s *Shopper) string {
	if e == nil {
		return ""
	}
	var sh Shopper
	if s != nil {
		sh = s.Normalize()
	}
	if len(e.Segments) > 0 && !slices.ContainsFunc(sh.Segments, func(x string) bool { return slices.Contains(e.Segments, x) }) {
		return RuleSegments
	}
	if len(e.Countries) > 0 && !slices.Contains(e.Countries, sh.Country) {
		return RuleCountries
	}
	if e.FirstOrderOnly && (sh.FirstOrder == nil || !*sh.FirstOrder) {
		return RuleFirstOrderOnly
	}
	if m := e.MinOrderAmount; m != nil {
		if sh.Order == nil || sh.Order.Currency != m.Currency || sh.Order.Amount < m.Amount {
			return RuleMinOrderAmount
		}
	}
	return ""
}

// NotEligible is the refusal's text for rule.
func NotEligible(rule string) string {
	switch rule {
	case RuleSegments:
		return "the shopper is in none of the promotion's segments"
	case RuleCountries:
		return "the promotion is not valid in the shopper's country"
	case RuleFirstOrderOnly:
		return "the promotion is valid on a first order only"
	case RuleMinOrderAmount:
		return "the order is below the promotion's minimum amount (or in another currency)"
	}
	return "the request fails the promotion's eligibility rules"
}

// Refused encodes a refusal with its rule for the idempotency record
// ("not_eligible:minOrderAmount"); SplitRefused reads it back.
func Refused(r Reason, rule string) string {
	if rule == "" {
		return string(r)
	}
	return string(r) + ":" + rule
}

func SplitRefused(s string) (Reason, string) {
	r, rule, _ := strings.Cut(s, ":")
	return Reason(r), rule
}

// IssueRequest hands out Count unassigned codes of a generated promotion to
// UserID, bound to them. ID names the issuance, EventID its event; with
// IdempotencyKey the same key and RequestHash answer the same codes again.
type IssueRequest struct {
	ID             string
	EventID        string
	PromotionID    int64
	UserID         string
	Count          int
	Actor          string
	Now            time.Time
	IdempotencyKey string
	RequestHash    string
}

// Validate checks what a store relies on before any database work.
func (r IssueRequest) Validate() error {
	switch {
	case r.ID == "" || r.EventID == "":
		return Errorf(EInvalid, "issuance id and event id are required")
	case r.UserID == "":
		return FieldErrorf("userId", "is required")
	case r.Count < 1 || r.Count > MaxIssueCount:
		return FieldErrorf("count", "must be 1..%d, got %d", MaxIssueCount, r.Count)
	case r.Now.IsZero():
		return Errorf(EInvalid, "issuance time is required")
	}
	return nil
}

// Issuance is codes handed out to a user at once.
type Issuance struct {
	ID          string    `json:"id"`
	PromotionID int64     `json:"-"`
	UserID      string    `json:"userId"`
	Codes       []string  `json:"codes"`
	IssuedAt    time.Time `json:"issuedAt"`
}

// IssueOutcome is an issuance, Replayed when answered from its
// idempotency record.
type IssueOutcome struct {
	Issuance Issuance
	Replayed bool
}

// ActionCodeIssued is the audit action and event type of an issuance.
const ActionCodeIssued = "code.issued"

// UserCode is one code bound to a user, with its state now.
type UserCode struct {
	Code          string    `json:"code"`
	PromotionID   string    `json:"promotionId"`
	PromotionName string    `json:"promotionName"`
	IssuedAt      time.Time `json:"issuedAt"`
	Used          int       `json:"used"`
	UsesLeft      int       `json:"usesLeft"`
	// Status is what a redemption by the owner would answer now
	// (redeemable, code_exhausted, expired, revoked, ...).
	Status Reason `json:"status"`
}

// SegmentStats are a promotion's live redemptions by the segments their
// requests carried (a redemption with two segments counts in both).
type SegmentStats struct {
	Segment     string `json:"segment"`
	Redemptions int64  `json:"redemptions"`
	// Rate is Redemptions over the promotion's live redemptions.
	Rate   float64       `json:"rate"`
	Orders []OrderTotals `json:"orders,omitempty"`
}
