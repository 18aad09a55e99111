package promo

import "time"

// StatsBucket is the width of a redemption time series' buckets.
type StatsBucket string

const (
	BucketHour StatsBucket = "hour"
	BucketDay  StatsBucket = "day"
)

// PromotionStats is a promotion's redemption analytics, from the audit
// trail (the redemptions table).
type PromotionStats struct {
	Redemptions   int64 // live redemptions (not rolled back)
	RolledBack    int64 // redemptions given back
	CodesRedeemed int64 // distinct codes with at least one live redemption
	Series        []StatsPoint
	TopUsers      []UserRedemptions
}

// StatsPoint is one bucket of the time series: redemptions made in
// [At, At+bucket), and how many of those were rolled back since.
type StatsPoint struct {
	At          time.Time `json:"at"`
	Redemptions int64     `json:"redemptions"`
	RolledBack  int64     `json:"rolledBack"`
}

// UserRedemptions is one user's live redemptions in a promotion.
type UserRedemptions struct {
	UserID      string `json:"userId"`
	Redemptions int64  `json:"redemptions"`
}

// Stats limits.
const (
	MaxStatsBuckets = 1000 // the newest buckets of a series
	TopUsersLimit   = 10
)
