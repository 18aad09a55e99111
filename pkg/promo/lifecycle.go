package promo

import (
	"encoding/json"
	"time"
)

// AuditEntry is one admin change in the audit log: who (the token's role and
// fingerprint), when, what (Action, and Detail: the change as JSON).
type AuditEntry struct {
	ID          string          `json:"id"`
	At          time.Time       `json:"at"`
	Actor       string          `json:"actor"`
	Action      string          `json:"action"`
	PromotionID int64           `json:"-"`
	Code        string          `json:"code,omitempty"`
	Detail      json.RawMessage `json:"detail,omitempty"`
}

// Audit actions, which are also the event types on the redemptions topic.
const (
	ActionCodeRevoked        = "code.revoked"
	ActionPromotionUpdated   = "promotion.updated"
	ActionPromotionCancelled = "promotion.cancelled"
	ActionPromotionToppedUp  = "promotion.topped_up"
	ActionDeleteRequested    = "promotion.delete_requested"
	ActionPromotionDeleted   = "promotion.deleted"
)

// Deletion is where a DELETE /v1/promotions/{id} stands.
type Deletion struct {
	RequestedAt *time.Time `json:"requestedAt"`
	DeletedAt   *time.Time `json:"deletedAt"`
}

// Statuses of a promotion whose deletion was requested; they override the
// generation status (PromotionStatus.Status).
const (
	StatusDeleting Status = "deleting" // switched off, its codes being deleted in the background
	StatusDeleted  Status = "deleted"  // its codes are gone; the row, audit log and redemptions stay
)

// Status is a promotion's status given its generation status and its
// deletion: the one place the lifecycle's states are decided (docs/redemption.md).
func (d Deletion) Status(generation Status) Status {
	switch {
	case d.DeletedAt != nil:
		return StatusDeleted
	case d.RequestedAt != nil:
		return StatusDeleting
	}
	return generation
}

// TopUpRequest adds CodeCount codes to a generated promotion: a new range
// reserved from its counter (within SeqLimit, as at creation) and new batch
// rows of BatchSize, published by the batch outbox like a creation's.
type TopUpRequest struct {
	PromotionID int64
	CodeCount   int64
	BatchSize   int64
	SeqLimit    uint64
	Actor       string
	Now         time.Time
	AuditID     string
	// IdempotencyKey, when set, makes the top-up idempotent per promotion:
	// the same key with the same RequestHash answers the recorded top-up
	// (replayed, nothing added); with another hash, EConflict
	// (idempotency_conflict).
	IdempotencyKey string
	RequestHash    string
}

// Validate checks what a store relies on before any database work.
func (r TopUpRequest) Validate() error {
	switch {
	case r.CodeCount < 1:
		return FieldErrorf("codeCount", "must be at least 1")
	case r.BatchSize < 1:
		return Errorf(EInvalid, "batch size must be at least 1")
	case !audited(r.AuditID, r.Actor, r.Now):
		return errAuditFields
	case r.IdempotencyKey != "" && r.RequestHash == "":
		return Errorf(EInvalid, "an idempotency key needs a request hash")
	}
	return nil
}

// errAuditFields refuses an admin change without what its audit row needs.
var errAuditFields = Errorf(EInvalid, "audit id, actor and time are required")

// audited reports whether an admin change has what its audit row needs.
func audited(id, actor string, now time.Time) bool { return id != "" && actor != "" && !now.IsZero() }

// TopUp is one top-up of a promotion.
type TopUp struct {
	No           int       `json:"no"`
	CodeCount    int64     `json:"codeCount"`
	SeqStart     uint64    `json:"-"`
	FirstBatchNo int       `json:"firstBatchNo"`
	BatchCount   int       `json:"batchCount"`
	CreatedAt    time.Time `json:"createdAt"`
}

// CancelRequest stops a promotion's generation.
type CancelRequest struct {
	PromotionID int64
	Actor       string
	Now         time.Time
	AuditID     string
}

// Validate checks what a store relies on before any database work.
func (r CancelRequest) Validate() error {
	if !audited(r.AuditID, r.Actor, r.Now) {
		return errAuditFields
	}
	return nil
}

// RevokeRequest makes one code unusable.
type RevokeRequest struct {
	Code    string // canonical
	Reason  string
	Actor   string
	Now     time.Time
	AuditID string // also the event id
}

// Validate checks what a store relies on before any database work.
func (r RevokeRequest) Validate() error {
	switch {
	case r.Code == "":
		return FieldErrorf("code", "is required")
	case !audited(r.AuditID, r.Actor, r.Now):
		return errAuditFields
	}
	return nil
}

// Revocation is a revoked code.
type Revocation struct {
	Code        string    `json:"code"`
	PromotionID int64     `json:"-"`
	RevokedAt   time.Time `json:"revokedAt"`
	Reason      string    `json:"reason,omitempty"`
}

// AuditFilter selects a page of a promotion's audit log, newest first; After
// is the cursor (the last entry's ID).
type AuditFilter struct {
	PromotionID int64
	After       string
	Limit       int
}

// LifecycleEvent is the value of an admin change's message on the
// redemptions topic (key: the promotion id). Type is the audit action;
// Change is the audit entry's detail.
type LifecycleEvent struct {
	V           int             `json:"v"`
	Type        string          `json:"type"`
	EventID     string          `json:"eventId"`
	OccurredAt  time.Time       `json:"occurredAt"`
	PromotionID string          `json:"promotionId"`
	Actor       string          `json:"actor"`
	Code        string          `json:"code,omitempty"`
	Change      json.RawMessage `json:"change,omitempty"`
}

// NewLifecycleEvent builds the outbox event of an audit entry.
func NewLifecycleEvent(a AuditEntry) (OutboxEvent, error) {
	payload, err := json.Marshal(LifecycleEvent{V: 1, Type: a.Action, EventID: a.ID, OccurredAt: a.At.UTC(),
		PromotionID: FormatID(a.PromotionID), Actor: a.Actor, Code: a.Code, Change: a.Detail})
	if err != nil {
		return OutboxEvent{}, err
	}
	return OutboxEvent{Stream: StreamRedemptions, Key: FormatID(a.PromotionID), Payload: payload}, nil
}

// PromotionUpdate changes a promotion's settings; a nil field is left as it
// is. SetStartsAt/SetExpiresAt say the window bound is being set (to
// StartsAt/ExpiresAt, nil clearing it).
type PromotionUpdate struct {
	ID           int64
	Name         *string
	SetStartsAt  bool
	StartsAt     *time.Time
	SetExpiresAt bool
	ExpiresAt    *time.Time
	Active       *bool
	// SetEligibility replaces the promotion's eligibility rules with
	// Eligibility (nil or empty: none).
	SetEligibility bool
	Eligibility    *Eligibility
	Actor          string
	Now            time.Time
	AuditID        string
}

// Validate checks that the update changes something, and what a store
// relies on, before any database work.
func (u PromotionUpdate) Validate() error {
	switch {
	case u.Name == nil && !u.SetStartsAt && !u.SetExpiresAt && u.Active == nil && !u.SetEligibility:
		return Errorf(EInvalid, "nothing to change: set name, startsAt, expiresAt, active or eligibility")
	case u.Name != nil && *u.Name == "":
		return FieldErrorf("name", "must not be empty")
	case !audited(u.AuditID, u.Actor, u.Now):
		return errAuditFields
	}
	return nil
}

// PromotionSettings are what PromotionUpdate changes, as stored after it.
type PromotionSettings struct {
	ID        int64      `json:"-"`
	Name      string     `json:"name"`
	StartsAt  *time.Time `json:"startsAt"`
	ExpiresAt *time.Time `json:"expiresAt"`
	Active    bool       `json:"active"`
	// Eligibility as stored after the change (nil: none).
	Eligibility *Eligibility `json:"eligibility,omitempty"`
}
