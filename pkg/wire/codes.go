package wire

import (
	"encoding/json"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// CodeView is a code as validation shows it (GET /v1/codes/{code}).
type CodeView struct {
	Code      string       `json:"code"` // display form
	Promotion PromotionRef `json:"promotion"`
	Status    promo.Reason `json:"status"`
	UsesLeft  int          `json:"usesLeft"`
	// ReservedUses is how many uses live reservations hold (not in UsesLeft).
	ReservedUses int `json:"reservedUses"`
	// UserUsesLeft is set when a user was asked about; no limit is shown as
	// null ("unlimited").
	UserUsesLeft *int `json:"userUsesLeft,omitempty"`
	// UserLimited is the server's note that the user has a limit; it is not
	// sent.
	UserLimited  bool       `json:"-"`
	StartsAt     *time.Time `json:"startsAt"`
	ExpiresAt    *time.Time `json:"expiresAt"`
	MaxUsage     int        `json:"maxUsagePerCode"`
	PerUserLimit int        `json:"perUserLimit"`
	// Rule names the eligibility rule of a not_eligible status.
	Rule string `json:"rule,omitempty"`
	// Bound says the code is bound to a customer (issued to them); who it
	// is, validation does not say.
	Bound bool `json:"bound,omitempty"`
	// Eligibility is the promotion's rules (nil: anyone).
	Eligibility *promo.Eligibility `json:"eligibility,omitempty"`
}

// PromotionRef names a promotion in a code's view.
type PromotionRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// CodeDetail is a code as an admin sees it (GET /v1/codes/{code} with an
// admin token and no user): what validation shows, and the committed uses,
// the revocation and the live reservations.
type CodeDetail struct {
	CodeView
	Used         int           `json:"used"`
	PromotionID  string        `json:"promotionId"`
	RevokedAt    *time.Time    `json:"revokedAt,omitempty"`
	RevokeReason string        `json:"revokeReason,omitempty"`
	Reservations []Reservation `json:"reservations"`
	// Owner is the customer a bound code was issued to (admins only).
	Owner string `json:"owner,omitempty"`
}

// Redemption is a redemption as the API answers it, and one row of the
// audit trail.
type Redemption struct {
	promo.Redemption
	Code        string `json:"code"` // display form
	PromotionID string `json:"promotionId"`
}

// RedemptionPage is a page of the audit trail, newest first; Next, the
// cursor of the following page, is absent on the last.
type RedemptionPage struct {
	Next        string       `json:"next,omitempty"`
	Redemptions []Redemption `json:"redemptions"`
}

// Reservation is a reservation as the API answers it: Status is the state
// now (a held one past expiresAt shows "expired").
type Reservation struct {
	promo.Reservation
	Code        string `json:"code"` // display form
	PromotionID string `json:"promotionId"`
}

// Revocation is a revoked code as the API answers it.
type Revocation struct {
	promo.Revocation
	Code        string `json:"code"` // display form
	PromotionID string `json:"promotionId"`
}

// Shopper is what a redemption or reservation body may say about the
// shopper and the order, for the promotion's eligibility rules and the
// audit trail. firstOrder may stand at the top or inside order.
// Country and the order's amount are pointers so that the API can tell a
// member sent empty or left out of an order (refused) from one absent.
type Shopper struct {
	Segments   []string `json:"segments,omitempty"`
	Order      *Order   `json:"order,omitempty"`
	FirstOrder *bool    `json:"firstOrder,omitempty"`
	Country    *string  `json:"country,omitempty"`
}

// Order is a body's order: amount and currency are required.
type Order struct {
	Amount     *promo.Amount `json:"amount"`
	Currency   string        `json:"currency"`
	Discount   *promo.Amount `json:"discount,omitempty"`
	FirstOrder *bool         `json:"firstOrder,omitempty"`
}

// Redeem is the body of POST /v1/codes/{code}/redemptions.
type Redeem struct {
	UserID   string          `json:"userId"`
	OrderID  string          `json:"orderId,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"` // a JSON object
	Shopper
}

// Reserve is the body of POST /v1/codes/{code}/reservations. TTL is a
// duration ("90s", "15m"); empty takes the server's default.
type Reserve struct {
	UserID string `json:"userId"`
	TTL    string `json:"ttl,omitempty"`
	Shopper
}

// Confirm is the body of POST /v1/reservations/{id}/confirm.
type Confirm struct {
	OrderID  string          `json:"orderId"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Shopper
}

// Reason is the body of POST /v1/redemptions/{id}/rollback and POST
// /v1/codes/{code}/revoke.
type Reason struct {
	Reason string `json:"reason"`
}

// Issue is the body of POST /v1/promotions/{id}/issuances. Count (absent:
// one) is raw: the API names it when it is not a whole number in range.
type Issue struct {
	UserID string          `json:"userId"`
	Count  json.RawMessage `json:"count,omitempty"`
}

// Issuance answers an issuance: the codes in their display form.
type Issuance struct {
	promo.Issuance
	PromotionID string `json:"promotionId"`
}

// UserCodes is GET /v1/users/{userId}/codes: newest first.
type UserCodes struct {
	Codes  []promo.UserCode `json:"codes"`
	UserID string           `json:"userId"`
}
