package promotion

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/promo"
)

// PurgeStore is what purging ended promotions needs from the database.
type PurgeStore interface {
	ExpiredPromotions(ctx context.Context, before time.Time) ([]int64, error)
	PurgeCount(ctx context.Context, id int64) (codes, redemptions int64, err error)
	PurgeRows(ctx context.Context, table string, id int64, limit int) (int64, error)
	MarkPurge(ctx context.Context, id int64, before, now time.Time) (bool, error)
	RecordPurge(ctx context.Context, a promo.AuditEntry) error
}

// PurgeOptions selects and bounds a purge.
type PurgeOptions struct {
	// ExpiredBefore: promotions whose expiresAt is before it are purged. It
	// must be at least SafetyMargin in the past: a later date would purge
	// promotions that are live, or that an admin may still extend.
	ExpiredBefore time.Time
	// SafetyMargin is how far in the past ExpiredBefore must be at least
	// (DefaultPurgeSafetyMargin when 0; negative is refused).
	SafetyMargin time.Duration
	// Announce, when set, is called with what will be purged (the same
	// counts as a dry run) before anything is deleted.
	Announce func([]PurgedPromotion)
	// Now is the clock ExpiredBefore is checked against (time.Now when nil).
	Now func() time.Time
	// DryRun counts what would be deleted and deletes nothing.
	DryRun bool
	// WithRedemptions deletes the promotions' redemption records too (by
	// default the audit trail is kept).
	WithRedemptions bool
	// BatchRows bounds each delete statement, its own transaction (10,000).
	BatchRows int
	// Actor is recorded in the audit log ("cli:purge").
	Actor string
}

// PurgedPromotion is what a purge did (or would do) to one promotion.
type PurgedPromotion struct {
	ID          int64
	Codes       int64
	Redemptions int64 // deleted (or, in a dry run, that would be with WithRedemptions)
	Statements  int   // delete statements run
}

// ActionPromotionPurged is the audit action of a purge.
const ActionPromotionPurged = "promotion.purged"

// DefaultPurgeSafetyMargin is how far in the past a purge's date must be by
// default: a promotion purged by mistake cannot be restored, and one that
// ended a moment ago may still be extended by an admin.
const DefaultPurgeSafetyMargin = 24 * time.Hour

// purgeOrder is the order in which a purge or a deletion empties a
// promotion's tables: the codes first, so that nothing of the promotion is
// redeemable (or reservable, or confirmable) once its per-user allowances
// start going; a redemption running alongside finds its code gone
// (code_not_found) or, while its code is still there, the user's allowance
// still there too. Redemption records (with their idempotency records) last,
// and only when asked.
var purgeOrder = []string{"codes", "reservations", "user_uses"}

// CheckPurgeDate refuses a purge date in the future or closer to now than
// margin (DefaultPurgeSafetyMargin when 0).
func CheckPurgeDate(before, now time.Time, margin time.Duration) error {
	if margin == 0 {
		margin = DefaultPurgeSafetyMargin
	}
	switch {
	case margin < 0:
		return promo.FieldErrorf("safetyMargin", "must not be negative, got %s", margin)
	case before.After(now):
		return promo.FieldErrorf("expiredBefore", "%s is in the future: it would purge promotions that are still live",
			before.UTC().Format(time.RFC3339))
	case before.After(now.Add(-margin)):
		return promo.FieldErrorf("expiredBefore", "%s is less than the safety margin (%s) ago: give a date before %s",
			before.UTC().Format(time.RFC3339), margin, now.Add(-margin).UTC().Format(time.RFC3339))
	}
	return nil
}

// emptyPromotion deletes a promotion's rows from tables, in purgeOrder, in
// statements of at most rows rows; each returns how many it deleted. fn is
// told every statement's table and count.
func emptyPromotion(ctx context.Context, st PurgeStore, id int64, tables []string, rows int,
	fn func(table string, n int64)) error {
	for _, table := range tables {
		for ctx.Err() == nil {
			n, err := st.PurgeRows(ctx, table, id, rows)
			if err != nil {
				return err
			}
			fn(table, n)
			if n < int64(rows) {
				break
			}
		}
	}
	return ctx.Err()
}

// Purge deletes the codes (and per-user allowances and reservations; with
// WithRedemptions, the redemption records and their idempotency records) of
// every promotion that ended before opt.ExpiredBefore, in statements of at
// most BatchRows rows, each its own short transaction: redemptions of other
// promotions only ever wait for one such statement. Each promotion is first
// marked for deletion (MarkPurge: final, as a DELETE; one whose window was
// extended since it was listed is left alone), then its codes go first
// (purgeOrder), and it ends deleted. A date in the future or within the safety margin is refused
// before anything is read; Announce is told what will be purged before
// anything is deleted. Each purged promotion gets an audit row and a
// promotion.purged event; the promotion row itself stays (its status and
// audit log remain readable).
func Purge(ctx context.Context, st PurgeStore, opt PurgeOptions, log *zap.Logger) ([]PurgedPromotion, error) {
	if opt.BatchRows <= 0 {
		opt.BatchRows = 10_000
	}
	if opt.Actor == "" {
		opt.Actor = "cli:purge"
	}
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	if err := CheckPurgeDate(opt.ExpiredBefore, now(), opt.SafetyMargin); err != nil {
		return nil, err
	}
	ids, err := st.ExpiredPromotions(ctx, opt.ExpiredBefore)
	if err != nil {
		return nil, err
	}
	plan := make([]PurgedPromotion, 0, len(ids))
	for _, id := range ids {
		codes, reds, err := st.PurgeCount(ctx, id)
		if err != nil {
			return nil, err
		}
		plan = append(plan, PurgedPromotion{ID: id, Codes: codes, Redemptions: reds})
	}
	if opt.Announce != nil {
		opt.Announce(plan)
	}
	if opt.DryRun {
		return plan, nil
	}
	tables := purgeOrder
	if opt.WithRedemptions {
		tables = append(slices.Clip(tables), "redemptions")
	}
	var out []PurgedPromotion
	for _, planned := range plan {
		id := planned.ID
		p := PurgedPromotion{ID: id}
		// Marked first, as a deletion: from here on nothing revives it (a
		// window extended and a top-up after its allowances went would let
		// its users redeem again), and a purge cut short is finished by the
		// API's background deleter.
		marked, err := st.MarkPurge(ctx, id, opt.ExpiredBefore, now())
		if err != nil {
			return out, err
		}
		if !marked {
			log.Warn("promotion not purged: its window was extended since it was listed", zap.Int64("promotion_id", id))
			continue
		}
		err = emptyPromotion(ctx, st, id, tables, opt.BatchRows, func(table string, n int64) {
			p.Statements++
			switch table {
			case "codes":
				p.Codes += n
			case "redemptions":
				p.Redemptions += n
			}
		})
		if err != nil {
			return append(out, p), err
		}
		detail, err := json.Marshal(map[string]any{"codes": p.Codes, "redemptions": p.Redemptions,
			"expiredBefore": opt.ExpiredBefore.UTC()})
		if err != nil {
			return out, err
		}
		if err := st.RecordPurge(ctx, promo.AuditEntry{ID: newID(), At: time.Now().UTC(), Actor: opt.Actor,
			Action: ActionPromotionPurged, PromotionID: id, Detail: detail}); err != nil {
			return append(out, p), fmt.Errorf("record purge of promotion %d: %w", id, err)
		}
		log.Info("promotion purged", zap.Int64("promotion_id", id), zap.Int64("codes", p.Codes),
			zap.Int64("redemptions", p.Redemptions), zap.Int("statements", p.Statements))
		out = append(out, p)
	}
	return out, nil
}
