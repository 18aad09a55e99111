package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// errIdempotencyRace marks the unique violation of the idempotency key on
// promotions: a concurrent create with the same key committed first.
var errIdempotencyRace = errors.New("a concurrent create with the same idempotency key committed first")

// CreatePromotion writes a promotion, reserves its sequence range and writes
// its batch rows (generated) or its code (vanity), in one transaction.
//
// With an idempotency key already stored for the same request hash it returns
// the stored promotion and created = false; for another hash, EConflict; a
// concurrent create with the key that loses the race re-reads the winner's
// (docs/store.md, "Creating a promotion"). A reservation past np.SeqLimit is
// ECapacity and an existing vanity code EConflict; both write nothing.
func (s *Core[T]) CreatePromotion(ctx context.Context, np promo.NewPromotion) (promo.Promotion, bool, error) {
	np, err := np.Normalize()
	if err != nil {
		return promo.Promotion{}, false, err
	}
	p, created, err := run(ctx, s, func(x stmts[T]) (promo.Promotion, bool, error) {
		return x.createPromotion(ctx, np, s.clock())
	})
	return p, created, wrap(err, "create promotion %q", np.Name)
}

func (x stmts[T]) createPromotion(ctx context.Context, np promo.NewPromotion, now time.Time) (promo.Promotion, bool, error) {
	if np.IdempotencyKey != "" {
		// At locking READ COMMITTED (SQL Server) this waits for an
		// uncommitted insert of the same key, then sees it.
		var (
			p    promo.Promotion
			hash string
		)
		err := scanPromotion(x.q.QueryRow(ctx, x.d.PromotionByKey, np.IdempotencyKey), &p, &hash, &p.Active)
		switch {
		case err == nil && hash == np.RequestHash:
			return p, false, nil
		case err == nil:
			return promo.Promotion{}, false, idempotencyConflict()
		case !noRows(err):
			return promo.Promotion{}, false, fmt.Errorf("look up idempotency key: %w", err)
		}
	}

	p := np.Promotion
	p.Active = true // the column's default
	p.CreatedAt = now.UTC().Truncate(time.Microsecond)
	p.StartsAt, p.ExpiresAt = utcPtr(p.StartsAt), utcPtr(p.ExpiresAt)
	if p.Kind == promo.KindGenerated {
		start, err := reserveSeq(ctx, x.q, x.d.Reserve, p.CounterName, p.CodeCount)
		if err != nil {
			return promo.Promotion{}, false, err
		}
		if err := checkReservation(start, p.CodeCount, np.SeqLimit); err != nil {
			return promo.Promotion{}, false, err // the rollback undoes the reservation
		}
		p.SeqStart = uint64(start)
	} else {
		p.Format, p.CounterName, p.SeqStart = nil, "", 0
	}
	var format, vanity any // NULL unless set
	if p.Format != nil {
		b, err := json.Marshal(p.Format)
		if err != nil {
			return promo.Promotion{}, false, fmt.Errorf("encode format: %w", err)
		}
		format = string(b)
	}
	if p.VanityCode != "" {
		vanity = x.d.VarChar(p.VanityCode)
	}
	err := x.q.QueryRow(ctx, x.d.InsertPromotion, p.Name, string(p.Kind), p.CodeCount, format, vanity,
		int32(p.MaxUsagePerCode), int32(p.PerUserLimit), x.d.nullTime(p.StartsAt), x.d.nullTime(p.ExpiresAt),
		p.CounterName, int64(p.SeqStart), text(np.IdempotencyKey), np.RequestHash, x.d.Time(p.CreatedAt),
		x.d.VarChar(p.KeyFingerprint), promo.EncodeEligibility(p.Eligibility)).Scan(&p.ID)
	if err != nil {
		if np.IdempotencyKey != "" && x.d.UniqueViolation(err) {
			// The only unique key this insert can violate (the id is
			// generated) is the idempotency key's.
			return promo.Promotion{}, false, fmt.Errorf("insert promotion: %w: %w", errIdempotencyRace, err)
		}
		return promo.Promotion{}, false, fmt.Errorf("insert promotion: %w", err)
	}
	switch p.Kind {
	case promo.KindGenerated:
		n := promo.BatchCount(p.CodeCount, np.BatchSize)
		if err := x.exec(ctx, x.d.InsertBatches, p.ID, int64(p.SeqStart), np.BatchSize, p.CodeCount, int64(n),
			x.d.Time(p.CreatedAt)); err != nil {
			return promo.Promotion{}, false, fmt.Errorf("insert %d batches: %w", n, err)
		}
	case promo.KindVanity:
		if err := x.exec(ctx, x.d.InsertCode, x.d.VarChar(p.VanityCode), p.ID); err != nil {
			if x.d.UniqueViolation(err) { // codes has one unique key: the code
				return promo.Promotion{}, false, &promo.Error{Code: promo.EConflict, Message: "code already exists",
					Fields: []promo.FieldError{{Field: "code", Message: fmt.Sprintf("%q already exists", p.VanityCode)}}}
			}
			return promo.Promotion{}, false, fmt.Errorf("insert vanity code: %w", err)
		}
	}
	return p, true, nil
}

// reserveSeq reserves n sequence numbers from counter name through q
// (creating the counter at 0 if need be) and returns the first.
func reserveSeq(ctx context.Context, q Querier, query, name string, n int64) (int64, error) {
	var start int64
	err := q.QueryRow(ctx, query, name, n).Scan(&start)
	return start, wrap(err, "reserve %d from counter %q", n, name)
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

// GetPromotion returns a promotion with its progress, its deletion and its
// totals, in two queries whatever the number of batches.
func (s *Core[T]) GetPromotion(ctx context.Context, id int64) (promo.PromotionStatus, error) {
	var st promo.PromotionStatus
	err := scanPromotion(s.r.QueryRow(ctx, s.d.PromotionStatus, id), &st.Promotion, statusTail(&st)...)
	if err := lookedUp(err, promotionNotFound(id), "get promotion %d", id); err != nil {
		return st, err
	}
	if st.Kind == promo.KindVanity {
		st.GeneratedCount = 1 // written with the promotion
	} else if err := s.r.QueryRow(ctx, s.d.Progress, id).Scan(progress(&st)...); err != nil {
		return promo.PromotionStatus{}, fmt.Errorf("get progress of promotion %d: %w", id, err)
	}
	return st, nil
}

// ListPromotions returns a page of promotions with their progress, newest
// first (see promo.ListFilter).
func (s *Core[T]) ListPromotions(ctx context.Context, f promo.ListFilter) ([]promo.PromotionStatus, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	list, err := collect(ctx, s.r, s.d.ListPromotions, []any{f.Before, f.Name, string(f.Status), clampLimit(f.Limit, promo.DefaultListLimit, promo.MaxListLimit),
		activeFilter(f.Active)}, func(r Row, st *promo.PromotionStatus) error {
		err := scanPromotion(r, &st.Promotion, append(progress(st), statusTail(st)...)...)
		if st.Kind == promo.KindVanity {
			st.Batches.Total, st.GeneratedCount = 0, 1 // no batch rows: the other counts are 0
		}
		return err
	})
	return list, wrap(err, "list promotions")
}

// ExportCodes calls fn with every code of the promotion, streaming the rows
// (constant memory), in no particular order. It stops at, and returns
// (wrapped), the first error of fn. It holds a read connection for as long
// as the export runs (SQLite: a WAL snapshot; writers are not blocked).
// Closing the rows early makes SQL Server's driver cancel the rest of the
// result set rather than read it to the end.
func (s *Core[T]) ExportCodes(ctx context.Context, id int64, fn func(code string) error) error {
	if err := s.promotionExists(ctx, id); err != nil {
		return err
	}
	var code string
	if err := each(ctx, s.r, s.d.ExportCodes, []any{id}, func(r Row) error {
		if err := r.Scan(&code); err != nil {
			return err
		}
		return fn(code)
	}); err != nil {
		return fmt.Errorf("export codes of promotion %d: %w", id, err)
	}
	return nil
}

// GetCode returns a code's usage.
func (s *Core[T]) GetCode(ctx context.Context, code string) (promo.CodeInfo, error) {
	var c promo.CodeInfo
	err := s.r.QueryRow(ctx, s.d.GetCode, s.d.VarChar(code)).Scan(&c.Code, &c.PromotionID, &c.Used, &c.MaxUsage)
	return c, lookedUp(err, codeNotFound(), "get code")
}

// CodeSpaces returns up to limit promotions with an id above afterID, with
// only what recognising their codes needs: kind, format, vanity code.
func (s *Core[T]) CodeSpaces(ctx context.Context, afterID int64, limit int) ([]promo.Promotion, error) {
	ps, err := collect(ctx, s.r, s.d.CodeSpaces, []any{afterID, limit}, func(r Row, p *promo.Promotion) error {
		var format string
		if err := r.Scan(&p.ID, (*string)(&p.Kind), &format, &p.VanityCode); err != nil {
			return err
		}
		return decodeFormat(p, format)
	})
	return ps, wrap(err, "list code spaces")
}
