package wire

import (
	"encoding/json"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// CreatePromotion is the body of POST /v1/promotions: Code for one vanity
// code, or CodeCount and Format for generated codes. The fields the
// promotion service checks as sent are raw (RawOf).
type CreatePromotion struct {
	Name      string          `json:"name"`
	CodeCount json.RawMessage `json:"codeCount,omitempty"` // a positive integer, not a string, fraction or exponent
	Format    json.RawMessage `json:"format,omitempty"`    // a promo.Format, decoded naming format.* fields
	Code      *string         `json:"code,omitempty"`
	// MaxUsagePerCode and PerUserLimit: absent is 1 each; a perUserLimit of
	// 0 is no per-user limit.
	MaxUsagePerCode *int            `json:"maxUsagePerCode,omitempty"`
	PerUserLimit    *int            `json:"perUserLimit,omitempty"`
	StartsAt        json.RawMessage `json:"startsAt,omitempty"` // RFC 3339
	ExpiresAt       json.RawMessage `json:"expiresAt,omitempty"`
	Eligibility     json.RawMessage `json:"eligibility,omitempty"` // a promo.Eligibility
}

// Created answers a create: the promotion's id and status.
type Created struct {
	ID     string       `json:"id"`
	Status promo.Status `json:"status"`
}

// Promotion is GET /v1/promotions/{id}, and each item of the list.
// Redemptions and CodesRedeemed are the totals as of the API's last rollup.
// TopUps and Deletion come with a single promotion's status, not with the
// list's items nor a cancel's answer.
type Promotion struct {
	Active          bool               `json:"active"`
	Batches         promo.BatchCounts  `json:"batches"`
	Code            string             `json:"code,omitempty"` // vanity only
	CodeCount       int64              `json:"codeCount"`
	CodesRedeemed   int64              `json:"codesRedeemed"`
	CreatedAt       time.Time          `json:"createdAt"`
	Deletion        *Deletion          `json:"deletion,omitempty"` // once a deletion was requested
	Eligibility     *promo.Eligibility `json:"eligibility,omitempty"`
	ExpiresAt       *time.Time         `json:"expiresAt,omitempty"`
	Format          *promo.Format      `json:"format,omitempty"` // generated only
	GeneratedCount  int64              `json:"generatedCount"`
	ID              string             `json:"id"`
	Kind            promo.Kind         `json:"kind"`
	MaxUsagePerCode int                `json:"maxUsagePerCode"`
	MissingCount    int64              `json:"missingCount"` // codeCount - generatedCount
	Name            string             `json:"name"`
	PerUserLimit    int                `json:"perUserLimit"`
	Redemptions     int64              `json:"redemptions"`
	StartsAt        *time.Time         `json:"startsAt,omitempty"`
	Status          promo.Status       `json:"status"`
	// Summary is the one-line progress admins read ("4,950,000 / 5,000,000
	// codes — ...").
	Summary string        `json:"summary"`
	TopUps  []promo.TopUp `json:"topups,omitempty"`
}

// PromotionPage is GET /v1/promotions: newest first; NextCursor is absent
// on the last page.
type PromotionPage struct {
	Items      []Promotion `json:"items"`
	NextCursor string      `json:"nextCursor,omitempty"`
}

// PatchPromotion is the body of PATCH /v1/promotions/{id}: an absent field
// is left as it is; startsAt, expiresAt or eligibility null (Null) clears it.
type PatchPromotion struct {
	Name        *string         `json:"name,omitempty"`
	StartsAt    json.RawMessage `json:"startsAt,omitempty"`
	ExpiresAt   json.RawMessage `json:"expiresAt,omitempty"`
	Active      *bool           `json:"active,omitempty"`
	Eligibility json.RawMessage `json:"eligibility,omitempty"` // null or {}: no rules
}

// Settings answers a PATCH: the promotion's settings after it.
type Settings struct {
	promo.PromotionSettings
	ID string `json:"id"`
}

// TopUpRequest is the body of POST /v1/promotions/{id}/topups.
type TopUpRequest struct {
	CodeCount json.RawMessage `json:"codeCount"` // a positive integer, not a string, fraction or exponent
}

// ToppedUp answers a top-up: the top-up and the promotion's status after it
// (codeCount is the new total).
type ToppedUp struct {
	Promotion Promotion   `json:"promotion"`
	TopUp     promo.TopUp `json:"topup"`
}

// TopUps is GET /v1/promotions/{id}/topups: oldest first, with the totals.
type TopUps struct {
	CodeCount      int64         `json:"codeCount"`
	GeneratedCount int64         `json:"generatedCount"`
	Status         promo.Status  `json:"status"`
	TopUps         []promo.TopUp `json:"topups"`
}

// Deletion is where a promotion's deletion stands.
type Deletion struct {
	promo.Deletion
	CodesLeft int64 `json:"codesLeft"`
}

// Deleted answers DELETE /v1/promotions/{id}.
type Deleted struct {
	Deletion Deletion `json:"deletion"`
	ID       string   `json:"id"`
}

// AuditEntry is an audit entry as the API answers it.
type AuditEntry struct {
	promo.AuditEntry
	Code        string `json:"code,omitempty"` // display form
	PromotionID string `json:"promotionId"`
}

// AuditPage is GET /v1/promotions/{id}/audit: newest first; Next, the
// cursor of the following page, is absent on the last.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Next    string       `json:"next,omitempty"`
}
