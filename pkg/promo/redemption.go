package promo

import (
	"encoding/json"
	"time"
)

// Reason is the stable, machine-readable reason a code cannot be used (or the
// status of one that can). Clients switch on it; the words never change.
type Reason string

const (
	// ReasonRedeemable is the validation status of a code that can be used now.
	ReasonRedeemable       Reason = "redeemable"
	ReasonInvalidCode      Reason = "invalid_code"       // malformed, or a typo caught by the check character
	ReasonCodeNotFound     Reason = "code_not_found"     // no such code
	ReasonCodeExhausted    Reason = "code_exhausted"     // maxUsagePerCode reached (live reservations count)
	ReasonUserLimitReached Reason = "user_limit_reached" // perUserLimit reached for this promotion
	ReasonNotStarted       Reason = "not_started"        // before startsAt
	ReasonExpired          Reason = "expired"            // at or after expiresAt
	ReasonDeactivated      Reason = "deactivated"        // the promotion was switched off by an admin
	ReasonRevoked          Reason = "revoked"            // this one code was revoked by an admin
	// ReasonPromotionDeleted: the promotion's deletion was requested; it
	// takes no change and no use from then on (final).
	ReasonPromotionDeleted Reason = "promotion_deleted"
)

// Reasons of refusals that are not about a code's state.
const (
	ReasonIdempotencyConflict Reason = "idempotency_conflict" // the key was used with another request
	ReasonRateLimited         Reason = "rate_limited"         // too many failed look-ups from this client
	ReasonReservationExpired  Reason = "reservation_expired"
	// ReasonRedemptionPurged: the redemption an Idempotency-Key names was
	// deleted by a purge (purge --with-redemptions).
	ReasonRedemptionPurged Reason = "redemption_purged"
)

// Reasons of a refused shopper identity (auth.shopperJWT): the signed token
// that names the shopper a request acts for.
const (
	ReasonShopperTokenMissing Reason = "shopper_token_missing" // 401: none sent where one is required
	ReasonShopperTokenInvalid Reason = "shopper_token_invalid" // 401: signature, algorithm, issuer, audience, nbf, claims
	ReasonShopperTokenExpired Reason = "shopper_token_expired" // 401: exp passed, beyond the clock skew
	ReasonUserMismatch        Reason = "user_mismatch"         // 403: the request names another user than the token
)

// ErrorCode is the error class, and so the HTTP status, of a refusal:
// code_not_found 404; code_exhausted, user_limit_reached, not_started and
// idempotency_conflict 409; expired, deactivated, revoked, promotion_deleted
// and redemption_purged 410 (retrying will not help); invalid_code 422;
// rate_limited 429; shopper_token_missing, shopper_token_invalid and
// shopper_token_expired 401; user_mismatch and not_your_code 403;
// not_eligible and pool_exhausted 409.
func (r Reason) ErrorCode() ErrorCode {
	switch r {
	case ReasonCodeNotFound, ReasonReservationNotFound:
		return ENotFound
	case ReasonExpired, ReasonDeactivated, ReasonRevoked, ReasonReservationExpired, ReasonReservationReleased,
		ReasonPromotionDeleted, ReasonRedemptionPurged:
		return EGone
	case ReasonInvalidCode:
		return EInvalid
	case ReasonRateLimited:
		return ERateLimited
	case ReasonShopperTokenMissing, ReasonShopperTokenInvalid, ReasonShopperTokenExpired:
		return EUnauthorized
	case ReasonUserMismatch, ReasonNotYourCode:
		return EForbidden
	default:
		return EConflict
	}
}

// Limit values: 0 in perUserLimit means no per-user limit.
const UnlimitedPerUser = 0

// CodeState is one code as validation sees it: the code, its promotion, and
// the counts that the limits apply to, all read in one statement.
type CodeState struct {
	Code      string // canonical
	Promotion Promotion
	Active    bool // the promotion's active flag
	Revoked   bool
	// Deleted: the promotion's deletion was requested.
	Deleted bool
	Used    int // committed uses (rolled-back ones excluded)
	// Reserved is the code's live reservations (held, not expired), each
	// holding one use.
	Reserved int
	// UserUsed is the user's committed uses in this promotion (when a user
	// was asked about).
	UserUsed int
	// UserReserved is the user's live reservations in this promotion.
	UserReserved int
	// Owner is the user the code is bound to ("" for an anonymous code);
	// User the user asked about. Never shown to anyone but the owner.
	Owner, User string
}

// UsesLeft is how many more uses the code allows.
// Live reservations hold uses: they are not left.
func (c CodeState) UsesLeft() int { return max(0, c.Promotion.MaxUsagePerCode-c.Used-c.Reserved) }

// UserUsesLeft is how many more uses the user has in this promotion, or -1
// when the promotion has no per-user limit.
func (c CodeState) UserUsesLeft() int {
	if c.Promotion.PerUserLimit == UnlimitedPerUser {
		return -1
	}
	return max(0, c.Promotion.PerUserLimit-c.UserUsed-c.UserReserved)
}

// Status is what a redemption attempted at now would answer, in the order the
// redemption statement checks: the promotion's deletion, the code's own
// state, its owner, the promotion's switch,
// the window, the code's uses, then the user's. withUser says whether
// UserUsed is meaningful; the owner is checked when User is set.
// Eligibility is StatusFor's.
func (c CodeState) Status(now time.Time, withUser bool) Reason {
	switch {
	case c.Deleted:
		return ReasonPromotionDeleted
	case c.Revoked:
		return ReasonRevoked
	case c.Owner != "" && c.User != "" && c.Owner != c.User:
		return ReasonNotYourCode
	case !c.Active:
		return ReasonDeactivated
	case c.Promotion.StartsAt != nil && now.Before(*c.Promotion.StartsAt):
		return ReasonNotStarted
	case c.Promotion.ExpiresAt != nil && !now.Before(*c.Promotion.ExpiresAt):
		return ReasonExpired
	case c.UsesLeft() == 0:
		return ReasonCodeExhausted
	case withUser && c.UserUsesLeft() == 0:
		return ReasonUserLimitReached
	}
	return ReasonRedeemable
}

// StatusFor is Status with the promotion's eligibility rules checked for
// shopper between the code's uses and the user's (the order a redemption
// checks them in); rule names the failed rule of a not_eligible.
func (c CodeState) StatusFor(now time.Time, withUser bool, shopper *Shopper) (Reason, string) {
	r := c.Status(now, withUser)
	if r == ReasonRedeemable || r == ReasonUserLimitReached {
		if rule := c.Promotion.Eligibility.Check(shopper); rule != "" {
			return ReasonNotEligible, rule
		}
	}
	return r, ""
}

// RedeemRequest is one redemption as the store receives it: the code in
// canonical form and everything the audit row and the event need. ID and
// EventID are made by the caller (random, unique), Now is the transaction's
// clock for the window check and the audit row.
type RedeemRequest struct {
	ID       string
	EventID  string
	Code     string
	UserID   string
	OrderID  string
	Metadata json.RawMessage // a small JSON object, or nil
	Now      time.Time
	// IdempotencyKey, when set, makes the redemption idempotent: the same key
	// with the same RequestHash answers the stored outcome (success or
	// refusal); with another hash, EConflict (idempotency_conflict).
	IdempotencyKey string
	RequestHash    string
	// Shopper is what the request says about the shopper and the order (nil:
	// nothing): checked against the promotion's eligibility rules, and kept
	// in the audit row.
	Shopper *Shopper
	// ClientAddr and UserAgent are the client's, for the audit row ("" when
	// unknown or not recorded).
	ClientAddr, UserAgent string
}

// Validate checks what a store relies on before any database work.
func (r RedeemRequest) Validate() error {
	switch {
	case r.ID == "" || r.EventID == "":
		return Errorf(EInvalid, "redemption id and event id are required")
	case r.Code == "":
		return FieldErrorf("code", "is required")
	case r.UserID == "":
		return FieldErrorf("userId", "is required")
	case r.Now.IsZero():
		return Errorf(EInvalid, "redemption time is required")
	}
	return nil
}

// Redemption is one use of a code, as the audit trail keeps it.
type Redemption struct {
	ID             string          `json:"id"`
	Code           string          `json:"code"`
	PromotionID    int64           `json:"-"`
	UserID         string          `json:"userId"`
	OrderID        string          `json:"orderId,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	RedeemedAt     time.Time       `json:"redeemedAt"`
	UsesLeft       int             `json:"usesLeft"`
	RolledBackAt   *time.Time      `json:"rolledBackAt,omitempty"`
	RollbackReason string          `json:"rollbackReason,omitempty"`
	// CodeRelease says what the rollback gave back to the code row the
	// redemption used: CodeReleased, or CodeGone when that row no longer
	// exists (its promotion was deleted or purged; a code with the same
	// string in another promotion is another row and is not touched).
	// Empty until rolled back, and for rollbacks recorded before it existed.
	CodeRelease    CodeRelease `json:"codeRelease,omitempty"`
	IdempotencyKey string      `json:"idempotencyKey,omitempty"`
	// What the request said about the order and the shopper, and where it
	// came from (the audit's; the client's address and agent are not
	// published on the redemptions topic).
	Order      *Order   `json:"order,omitempty"`
	Segments   []string `json:"segments,omitempty"`
	Country    string   `json:"country,omitempty"`
	FirstOrder *bool    `json:"firstOrder,omitempty"`
	ClientAddr string   `json:"clientAddress,omitempty"`
	UserAgent  string   `json:"userAgent,omitempty"`
}

// CodeRelease is what a rollback did to its code row.
type CodeRelease string

const (
	CodeReleased CodeRelease = "released"  // the use went back to the code row the redemption took
	CodeGone     CodeRelease = "code_gone" // that row no longer exists: no code was changed
)

// RedeemOutcome is what a redemption attempt ended in: a redemption, or a
// refusal reason. Replayed says it was answered from the idempotency record.
type RedeemOutcome struct {
	Redemption Redemption
	Refused    Reason // "" on success
	Replayed   bool
	// PromotionID is the refused code's promotion, when the code exists and
	// the refusal is not a replay (for the refusal counts); 0 otherwise.
	PromotionID int64
	// Rule names the eligibility rule of a not_eligible refusal.
	Rule string
}

// RefusalCount is how many redemptions of a promotion were refused for a
// reason in the hour starting at Hour (UTC).
type RefusalCount struct {
	PromotionID int64
	Reason      Reason
	Hour        time.Time
	N           int64
}

// ReasonCount is a refusal reason's total in a promotion.
type ReasonCount struct {
	Reason Reason `json:"reason"`
	Count  int64  `json:"count"`
}

// RollbackRequest gives a redemption's use back.
type RollbackRequest struct {
	RedemptionID string
	EventID      string
	Reason       string
	Now          time.Time
}

// RedemptionFilter selects a page of the audit trail, newest first: a
// promotion's (PromotionID), narrowed to one user (UserID) or one code
// (Code, canonical), or one user's across every promotion (PromotionID 0
// with UserID). Redemption ids are UUIDv7, ordered by the time they were
// taken: After is the cursor (ids below it: the last redemption of the
// previous page, or the bound of a time range's end) and Since the start of
// a range (ids from it on; "" for none).
type RedemptionFilter struct {
	PromotionID int64
	UserID      string
	Code        string
	After       string
	Since       string
	Limit       int
}

// Event types on the redemptions topic.
const (
	EventRedeemed   = "redemption.created"
	EventRolledBack = "redemption.rolled_back"
)

// RedemptionEvent is the value of a message on the redemptions topic. Key:
// the promotion id. Consumers de-duplicate on EventID (delivery is
// at-least-once).
type RedemptionEvent struct {
	V           int        `json:"v"`
	Type        string     `json:"type"`
	EventID     string     `json:"eventId"`
	OccurredAt  time.Time  `json:"occurredAt"`
	PromotionID string     `json:"promotionId"`
	Redemption  Redemption `json:"redemption"`
	// CodeUses is the code's live (committed, not rolled back) uses right
	// after this event's change: 1 on a redemption means the code was
	// redeemed for the first time, 0 on a rollback that it has no live use
	// left. Absent when unknown (a rollback after the code was purged).
	// Added in v1 without a version change: consumers ignore unknown fields.
	CodeUses *int `json:"codeUses,omitempty"`
}

// NewRedemptionEvent builds the event for a redemption or its rollback;
// codeUses is the code's live uses after it (nil when unknown).
func NewRedemptionEvent(typ, eventID string, at time.Time, r Redemption, codeUses *int) ([]byte, error) {
	r.IdempotencyKey = ""              // a client's key is not for other services
	r.ClientAddr, r.UserAgent = "", "" // kept in the audit trail only
	return json.Marshal(RedemptionEvent{V: 1, Type: typ, EventID: eventID, OccurredAt: at.UTC(),
		PromotionID: FormatID(r.PromotionID), Redemption: r, CodeUses: codeUses})
}

// OutboxEvent is one row of the event outbox: written in the transaction of
// the change it reports, published by the event outbox's relay, then marked.
type OutboxEvent struct {
	Seq     int64  // the outbox's own order
	Stream  string // which topic: StreamRedemptions
	Key     string
	Payload []byte
	// CreatedAt is when the row was written (read by the rollup, for its lag).
	CreatedAt time.Time
}

// StreamRedemptions names the redemptions topic in the outbox.
const StreamRedemptions = "redemptions"

// RedeemResult is one request's answer in a combined redemption
// (RedeemBatch): its outcome, or the error that request alone met (an
// idempotency conflict, an invalid request).
type RedeemResult struct {
	Outcome RedeemOutcome
	Err     error
}

// WithShopper copies what a request said about the shopper and the order
// (nil: nothing) into the redemption's audit fields.
func (r *Redemption) WithShopper(sh *Shopper) {
	if sh == nil {
		return
	}
	n := sh.Normalize()
	r.Order, r.Segments, r.Country, r.FirstOrder = n.Order, n.Segments, n.Country, n.FirstOrder
	if r.Order != nil {
		o := *r.Order
		o.FirstOrder = nil
		r.Order = &o
	}
}
