package promo

import (
	"encoding/json"
	"slices"
	"time"
)

// Totals are a promotion's redemption counts as the event rollup keeps them
// (table promotion_totals): exact as of the last rollup, normally under a
// second behind the audit trail. They are the same quantities as
// PromotionStats' (which counts the audit trail itself).
type Totals struct {
	Redemptions   int64 `json:"redemptions"`   // live redemptions (not rolled back)
	CodesRedeemed int64 `json:"codesRedeemed"` // distinct codes with at least one live redemption
	RolledBack    int64 `json:"rolledBack"`    // redemptions given back
}

// TotalsDelta is what a batch of outbox events adds to one promotion's
// totals.
type TotalsDelta struct {
	PromotionID int64
	Totals
}

// RollupBatch is what one rollup transaction counted.
type RollupBatch struct {
	// Events is how many outbox events it marked counted (whatever their
	// type); 0 means none was waiting (or all were being counted by another
	// roller).
	Events int
	// Oldest is when the oldest of them was written (the rollup's lag).
	Oldest time.Time
	// Undecodable is how many redemption-stream events could not be read;
	// they are marked counted and add nothing.
	Undecodable int
}

// TallyEvents adds up what a batch of outbox events does to the totals, one
// delta per promotion, in promotion order (so that concurrent rollers lock
// totals rows in the same order). Only redemption.created and
// redemption.rolled_back events count; the lifecycle events on the same
// stream do not. A redemption whose event says the code went to 1 use adds
// a code redeemed; a rollback that brought it back to 0 takes one away. An
// event without codeUses (written by a release before it existed, or a
// rollback of a purged code) counts for redemptions only.
func TallyEvents(evs []OutboxEvent) (deltas []TotalsDelta, undecodable int) {
	by := map[int64]*Totals{}
	for _, ev := range evs {
		if ev.Stream != StreamRedemptions {
			continue
		}
		var e struct {
			Type        string `json:"type"`
			PromotionID string `json:"promotionId"`
			CodeUses    *int   `json:"codeUses"`
		}
		if err := json.Unmarshal(ev.Payload, &e); err != nil {
			undecodable++
			continue
		}
		if e.Type != EventRedeemed && e.Type != EventRolledBack {
			continue
		}
		id, err := ParseID(e.PromotionID)
		if err != nil {
			undecodable++
			continue
		}
		t := by[id]
		if t == nil {
			t = new(Totals)
			by[id] = t
		}
		switch e.Type {
		case EventRedeemed:
			t.Redemptions++
			if e.CodeUses != nil && *e.CodeUses == 1 {
				t.CodesRedeemed++
			}
		case EventRolledBack:
			t.Redemptions--
			t.RolledBack++
			if e.CodeUses != nil && *e.CodeUses == 0 {
				t.CodesRedeemed--
			}
		}
	}
	for id, t := range by {
		if *t != (Totals{}) {
			deltas = append(deltas, TotalsDelta{PromotionID: id, Totals: *t})
		}
	}
	slices.SortFunc(deltas, func(a, b TotalsDelta) int {
		switch {
		case a.PromotionID < b.PromotionID:
			return -1
		case a.PromotionID > b.PromotionID:
			return 1
		}
		return 0
	})
	return deltas, undecodable
}
