package promo

import "time"

// StatsBucket is the width of a redemption time series' buckets.
type StatsBucket string

const (
	BucketHour StatsBucket = "hour"
	BucketDay  StatsBucket = "day"
)

// Width is the bucket's duration (UTC buckets: a day is 24 hours).
func (b StatsBucket) Width() time.Duration {
	if b == BucketDay {
		return 24 * time.Hour
	}
	return time.Hour
}

// Floor is the start of the bucket holding t (UTC).
func (b StatsBucket) Floor(t time.Time) time.Time { return t.UTC().Truncate(b.Width()) }

// Ceil is the start of the first bucket at or after t (UTC).
func (b StatsBucket) Ceil(t time.Time) time.Time {
	f := b.Floor(t)
	if f.Equal(t) {
		return f
	}
	return f.Add(b.Width())
}

// StatsQuery asks for a promotion's analytics: all-time totals and top
// users, and a time series over the window [From, To), both on bucket
// boundaries (StatsWindow makes them so).
type StatsQuery struct {
	PromotionID int64
	Bucket      StatsBucket
	From, To    time.Time
}

// StatsWindow resolves a requested window: zero ends default (To: the end of
// the bucket holding now; From: MaxStatsBuckets buckets before To), From is
// floored and To ceiled to bucket boundaries. A window that is empty or
// holds more than MaxStatsBuckets buckets is refused with a field error.
func StatsWindow(bucket StatsBucket, from, to, now time.Time) (time.Time, time.Time, error) {
	w := bucket.Width()
	if to.IsZero() {
		to = bucket.Floor(now).Add(w)
	}
	to = bucket.Ceil(to)
	if from.IsZero() {
		from = to.Add(-MaxStatsBuckets * w)
	}
	from = bucket.Floor(from)
	switch {
	case from.Before(statsEpoch) || to.After(statsEnd):
		return from, to, FieldErrorf("from", "the window must lie between %s and %s",
			statsEpoch.Format(time.DateOnly), statsEnd.Format(time.DateOnly))
	case !from.Before(to):
		return from, to, FieldErrorf("from", "must be before to")
	case to.Sub(from) > MaxStatsBuckets*w:
		return from, to, FieldErrorf("from", "the window holds %d buckets of a %s; at most %d",
			int64(to.Sub(from)/w), bucket, MaxStatsBuckets)
	}
	return from, to, nil
}

// PromotionStats is a promotion's redemption analytics: totals and top users
// from the audit trail (the redemptions table) over the promotion's whole
// life, refusals from the refusal counts, and a time series over a window.
type PromotionStats struct {
	Redemptions   int64 // live redemptions (not rolled back)
	RolledBack    int64 // redemptions given back
	CodesRedeemed int64 // distinct codes with at least one live redemption
	Series        []StatsPoint
	TopUsers      []UserRedemptions
	// Orders are order value and discount per currency, for redemptions
	// that carried them; nil while redemptions carry no amounts.
	Orders []OrderTotals
	// Segments are the live redemptions by the shopper segments their
	// requests carried; nil while none carried any.
	Segments []SegmentStats
}

// StatsReport is a promotion's analytics as the API answers them (GET
// /v1/promotions/{id}/stats) and its clients read them: PromotionStats with
// the promotion's figures, the window used and the refusals by reason.
type StatsReport struct {
	PromotionID     string            `json:"promotionId"`
	CodeCount       int64             `json:"codeCount"`
	MaxUsagePerCode int               `json:"maxUsagePerCode"`
	Redemptions     int64             `json:"redemptions"`
	RolledBack      int64             `json:"rolledBack"`
	CodesRedeemed   int64             `json:"codesRedeemed"`
	RedemptionRate  float64           `json:"redemptionRate"` // CodesRedeemed / CodeCount
	Bucket          StatsBucket       `json:"bucket"`
	From            time.Time         `json:"from"`
	To              time.Time         `json:"to"`
	Series          []StatsPoint      `json:"series"`
	TopUsers        []UserRedemptions `json:"topUsers"`
	// Refusals are the refused redemptions by reason, most frequent first.
	Refusals []ReasonCount `json:"refusals"`
	// Orders: order value and discount per currency, present once
	// redemptions carry order amounts.
	Orders []OrderTotals `json:"orders,omitempty"`
	// Segments: redemptions, their share of all live redemptions, order
	// value and discount by shopper segment, present once redemptions carry
	// segments.
	Segments []SegmentStats `json:"segments,omitempty"`
}

// StatsPoint is one bucket of the time series, [At, At+bucket); buckets
// without any activity are left out.
type StatsPoint struct {
	At time.Time `json:"at"`
	// Redemptions made in the bucket (rolled back since or not).
	Redemptions int64 `json:"redemptions"`
	// RolledBack is how many of those were rolled back since.
	RolledBack int64 `json:"rolledBack"`
	// Rollbacks is how many rollbacks happened in the bucket (of redemptions
	// made whenever).
	Rollbacks int64 `json:"rollbacks"`
	// Refusals are the refused redemptions in the bucket by reason (absent
	// reasons: none); counted per hour, so exact for both widths.
	Refusals map[Reason]int64 `json:"refusals"`
}

// UserRedemptions is one user's live redemptions in a promotion.
type UserRedemptions struct {
	UserID      string `json:"userId"`
	Redemptions int64  `json:"redemptions"`
}

// OrderTotals are the orders of live redemptions in one currency: how many
// carried an amount, the order value and the discount given, as decimal
// strings in the currency's major unit ("1234.50"): exact, never floats.
type OrderTotals struct {
	Currency    string `json:"currency"`
	Redemptions int64  `json:"redemptions"`
	OrderValue  string `json:"orderValue"`
	Discount    string `json:"discount"`
}

// The times a window may span: Unix time to a year every database and
// RFC 3339 can write.
var (
	statsEpoch = time.Unix(0, 0).UTC()
	statsEnd   = time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Stats limits.
const (
	MaxStatsBuckets = 1000 // buckets in a series' window
	TopUsersLimit   = 10
)
