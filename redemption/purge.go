package redemption

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/promo"
)

// PurgeStore is what purging ended promotions needs from the database.
type PurgeStore interface {
	ExpiredPromotions(ctx context.Context, before time.Time) ([]int64, error)
	PurgeCount(ctx context.Context, id int64) (codes, redemptions int64, err error)
	PurgeRows(ctx context.Context, table string, id int64, limit int) (int64, error)
	RecordPurge(ctx context.Context, a promo.AuditEntry) error
}

// PurgeOptions selects and bounds a purge.
type PurgeOptions struct {
	// ExpiredBefore: promotions whose expiresAt is before it are purged.
	ExpiredBefore time.Time
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

// Purge deletes the codes (and per-user allowances and reservations; with
// WithRedemptions, the redemption records) of every promotion that ended
// before opt.ExpiredBefore, in statements of at most BatchRows rows, each
// its own short transaction: redemptions of other promotions only ever wait
// for one such statement. Each purged promotion gets an audit row and a
// promotion.purged event; the promotion row itself stays (its status and
// audit log remain readable).
func Purge(ctx context.Context, st PurgeStore, opt PurgeOptions, log *zap.Logger) ([]PurgedPromotion, error) {
	if opt.BatchRows <= 0 {
		opt.BatchRows = 10_000
	}
	if opt.Actor == "" {
		opt.Actor = "cli:purge"
	}
	ids, err := st.ExpiredPromotions(ctx, opt.ExpiredBefore)
	if err != nil {
		return nil, err
	}
	var out []PurgedPromotion
	for _, id := range ids {
		codes, reds, err := st.PurgeCount(ctx, id)
		if err != nil {
			return out, err
		}
		if opt.DryRun {
			out = append(out, PurgedPromotion{ID: id, Codes: codes, Redemptions: reds})
			continue
		}
		p := PurgedPromotion{ID: id}
		tables := []string{"reservations", "user_uses", "codes"}
		if opt.WithRedemptions {
			tables = append(tables, "redemptions")
		}
		for _, table := range tables {
			for {
				n, err := st.PurgeRows(ctx, table, id, opt.BatchRows)
				if err != nil {
					return append(out, p), err
				}
				p.Statements++
				switch table {
				case "codes":
					p.Codes += n
				case "redemptions":
					p.Redemptions += n
				}
				if n < int64(opt.BatchRows) {
					break
				}
			}
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
