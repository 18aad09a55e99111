package promo

import (
	"encoding/json"
	"time"
)

// ReservationStatus is where a reservation is in its life: held until it is
// confirmed, released, or its expiresAt passes. An expired reservation is
// still stored as held (nothing has to run for it to expire): only
// Reservation.State tells expired from live.
type ReservationStatus string

const (
	ReservationHeld      ReservationStatus = "held"
	ReservationConfirmed ReservationStatus = "confirmed"
	ReservationReleased  ReservationStatus = "released"
	// ReservationExpired is never stored: it is how a held reservation past
	// its expiresAt is shown.
	ReservationExpired ReservationStatus = "expired"
)

// Refusals of the reservation endpoints.
const (
	// ReasonReservationReleased: the reservation was released (DELETE) and
	// cannot be confirmed.
	ReasonReservationReleased Reason = "reservation_released"
	// ReasonReservationConfirmed: the reservation was confirmed and cannot
	// be released.
	ReasonReservationConfirmed Reason = "reservation_confirmed"
	// ReasonReservationNotFound: no reservation has this id (never made, or
	// removed with its promotion's codes by a deletion or a purge).
	ReasonReservationNotFound Reason = "reservation_not_found"
)

// Reservation is one use of a code held for a user until ExpiresAt: while it
// is live (held and not expired) it counts against the code's
// maxUsagePerCode and the user's perUserLimit like a redemption does.
type Reservation struct {
	ID           string            `json:"id"`
	Code         string            `json:"code"`
	PromotionID  int64             `json:"-"`
	UserID       string            `json:"userId"`
	Status       ReservationStatus `json:"status"`
	CreatedAt    time.Time         `json:"createdAt"`
	ExpiresAt    time.Time         `json:"expiresAt"`
	SettledAt    *time.Time        `json:"settledAt,omitempty"` // confirmed or released at
	RedemptionID string            `json:"redemptionId,omitempty"`
	OrderID      string            `json:"orderId,omitempty"`
}

// State is the reservation's status at now: held ones past ExpiresAt are
// expired.
func (r Reservation) State(now time.Time) ReservationStatus {
	if r.Status == ReservationHeld && !now.Before(r.ExpiresAt) {
		return ReservationExpired
	}
	return r.Status
}

// Live says whether the reservation holds a use at now.
func (r Reservation) Live(now time.Time) bool { return r.State(now) == ReservationHeld }

// ReserveRequest holds one use of a code for a user from Now until
// Now+TTL. ID is made by the caller (unique); IdempotencyKey and RequestHash
// work as in RedeemRequest.
type ReserveRequest struct {
	ID             string
	Code           string
	UserID         string
	Now            time.Time
	TTL            time.Duration
	IdempotencyKey string
	RequestHash    string
	// Shopper is checked against the promotion's eligibility rules (nil:
	// nothing said).
	Shopper *Shopper
}

// Validate checks what a store relies on before any database work.
func (r ReserveRequest) Validate() error {
	switch {
	case r.ID == "":
		return Errorf(EInvalid, "reservation id is required")
	case r.Code == "":
		return FieldErrorf("code", "is required")
	case r.UserID == "":
		return FieldErrorf("userId", "is required")
	case r.TTL <= 0:
		return FieldErrorf("ttl", "must be positive")
	case r.Now.IsZero():
		return Errorf(EInvalid, "reservation time is required")
	}
	return nil
}

// ReserveOutcome is a reservation, or a refusal reason (the same reasons as a
// redemption's).
type ReserveOutcome struct {
	Reservation Reservation
	Refused     Reason
	Replayed    bool
	Rule        string // the eligibility rule of a not_eligible refusal
}

// ConfirmRequest turns a reservation into a redemption. RedemptionID and
// EventID are made by the caller.
type ConfirmRequest struct {
	ReservationID string
	RedemptionID  string
	EventID       string
	OrderID       string
	Metadata      json.RawMessage
	Now           time.Time
	// Shopper, when set, is the order as finally placed: the promotion's
	// eligibility rules are checked against it and the audit keeps it. Nil:
	// what the reservation said about the shopper stands (checked again
	// against the rules in force at the confirmation).
	Shopper *Shopper
	// ClientAddr and UserAgent are the confirming client's, for the audit.
	ClientAddr string
	UserAgent  string
}

// Validate checks what a store relies on before any database work.
func (r ConfirmRequest) Validate() error {
	switch {
	case r.ReservationID == "" || r.RedemptionID == "" || r.EventID == "":
		return Errorf(EInvalid, "reservation, redemption and event ids are required")
	case r.Now.IsZero():
		return Errorf(EInvalid, "confirmation time is required")
	}
	return nil
}

// ConfirmOutcome is the redemption a confirmation made (or made before:
// Replayed), or a refusal reason.
type ConfirmOutcome struct {
	Redemption Redemption
	Refused    Reason
	Rule       string // the failing eligibility rule of a not_eligible
	Replayed   bool
}
