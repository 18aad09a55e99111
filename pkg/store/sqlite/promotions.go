package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// CreatePromotion writes a promotion, reserves its sequence range and writes
// its batch rows (generated) or its code (vanity), in one transaction.
//
// With an idempotency key already stored for the same request hash it returns
// the stored promotion and created = false; for another hash, EConflict.
// Write transactions are serialised, so concurrent creates with one key see
// each other's commit. A reservation past np.SeqLimit is ECapacity and an
// existing vanity code EConflict; both write nothing.
func (s *Store) CreatePromotion(ctx context.Context, np promo.NewPromotion) (promo.Promotion, bool, error) {
	np, err := contract.NormalizeNewPromotion(np)
	if err != nil {
		return promo.Promotion{}, false, err
	}
	p, created, err := s.createPromotion(ctx, np)
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("create promotion %q: %w", np.Name, err)
	}
	return p, created, err
}

func (s *Store) createPromotion(ctx context.Context, np promo.NewPromotion) (promo.Promotion, bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return promo.Promotion{}, false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	if np.IdempotencyKey != "" {
		var (
			hash   string
			active bool
		)
		p, err := scanPromotion(tx.QueryRowContext(ctx, qPromotionByKey, np.IdempotencyKey), &hash, &active)
		switch {
		case err == nil && hash == np.RequestHash:
			p.Active = active
			return p, false, nil
		case err == nil:
			return promo.Promotion{}, false, contract.IdempotencyConflict()
		case !errors.Is(err, sql.ErrNoRows):
			return promo.Promotion{}, false, fmt.Errorf("look up idempotency key: %w", err)
		}
	}

	p := np.Promotion
	p.Active = true // the column's default
	p.CreatedAt = s.now().UTC().Truncate(time.Microsecond)
	p.StartsAt, p.ExpiresAt = utcPtr(p.StartsAt), utcPtr(p.ExpiresAt)
	if p.Kind == promo.KindGenerated {
		var start int64
		if err := tx.QueryRowContext(ctx, qReserve, p.CounterName, p.CodeCount).Scan(&start); err != nil {
			return promo.Promotion{}, false, fmt.Errorf("reserve %d from counter %q: %w", p.CodeCount, p.CounterName, err)
		}
		if err := contract.CheckReservation(start, p.CodeCount, np.SeqLimit); err != nil {
			return promo.Promotion{}, false, err // the deferred rollback undoes the reservation
		}
		p.SeqStart = uint64(start)
	} else {
		p.Format, p.CounterName, p.SeqStart = nil, "", 0
	}
	var format sql.NullString
	if p.Format != nil {
		b, err := json.Marshal(p.Format)
		if err != nil {
			return promo.Promotion{}, false, fmt.Errorf("encode format: %w", err)
		}
		format = sql.NullString{String: string(b), Valid: true}
	}
	err = tx.QueryRowContext(ctx, qInsertPromotion, p.Name, string(p.Kind), p.CodeCount, format,
		nullString(p.VanityCode), p.MaxUsagePerCode, p.PerUserLimit, nullTime(p.StartsAt), nullTime(p.ExpiresAt),
		p.CounterName, int64(p.SeqStart), nullString(np.IdempotencyKey), np.RequestHash,
		formatTime(p.CreatedAt), p.KeyFingerprint).Scan(&p.ID)
	if err != nil {
		return promo.Promotion{}, false, fmt.Errorf("insert promotion: %w", err)
	}
	switch p.Kind {
	case promo.KindGenerated:
		n := contract.BatchCount(p.CodeCount, np.BatchSize)
		if _, err := tx.ExecContext(ctx, qInsertBatches, p.ID, int64(p.SeqStart), np.BatchSize, p.CodeCount, n,
			formatTime(p.CreatedAt)); err != nil {
			return promo.Promotion{}, false, fmt.Errorf("insert %d batches: %w", n, err)
		}
	case promo.KindVanity:
		if _, err := tx.ExecContext(ctx, qInsertCode, p.VanityCode, p.ID); err != nil {
			if uniqueViolation(err) {
				return promo.Promotion{}, false, contract.VanityConflict(p.VanityCode)
			}
			return promo.Promotion{}, false, fmt.Errorf("insert vanity code: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return promo.Promotion{}, false, fmt.Errorf("commit: %w", err)
	}
	return p, true, nil
}

// GetPromotion returns a promotion with its progress, its deletion and its
// totals, in two queries whatever the number of batches.
func (s *Store) GetPromotion(ctx context.Context, id int64) (promo.PromotionStatus, error) {
	var tail statusTail
	p, err := scanPromotion(s.r.QueryRowContext(ctx, qPromotionStatus, id), tail.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return promo.PromotionStatus{}, contract.PromotionNotFound(id)
	}
	if err != nil {
		return promo.PromotionStatus{}, fmt.Errorf("get promotion %d: %w", id, err)
	}
	st, err := contract.Status(p, func(dst ...any) error { return s.r.QueryRowContext(ctx, qProgress, id).Scan(dst...) })
	if err != nil {
		return st, err
	}
	if err := tail.apply(&st); err != nil {
		return promo.PromotionStatus{}, fmt.Errorf("get promotion %d: %w", id, err)
	}
	return st, nil
}

// statusTail scans the status columns after the progress: active, the
// deletion times (text), the totals.
type statusTail struct {
	active             bool
	requested, deleted sql.NullString
	totals             promo.Totals
}

func (t *statusTail) dest() []any {
	return []any{&t.active, &t.requested, &t.deleted, &t.totals.Redemptions, &t.totals.CodesRedeemed, &t.totals.RolledBack}
}

func (t *statusTail) apply(st *promo.PromotionStatus) error {
	st.Active, st.Totals = t.active, t.totals
	for _, x := range []struct {
		src sql.NullString
		dst **time.Time
	}{{t.requested, &st.Deletion.RequestedAt}, {t.deleted, &st.Deletion.DeletedAt}} {
		if x.src.Valid {
			v, err := parseTime(x.src.String)
			if err != nil {
				return fmt.Errorf("promotion %d: deletion: %w", st.ID, err)
			}
			*x.dst = &v
		}
	}
	return nil
}

// ExportCodes calls fn with every code of the promotion, stepping through the
// rows (constant memory), in no particular order. It stops at, and returns
// (wrapped), the first error of fn. It holds a read connection (and a WAL
// snapshot) for as long as the export runs; writers are not blocked.
func (s *Store) ExportCodes(ctx context.Context, id int64, fn func(code string) error) error {
	var exists bool
	if err := s.r.QueryRowContext(ctx, qPromotionExists, id).Scan(&exists); err != nil {
		return fmt.Errorf("export codes of promotion %d: %w", id, err)
	}
	if !exists {
		return contract.PromotionNotFound(id)
	}
	rows, err := s.r.QueryContext(ctx, qExportCodes, id)
	if err != nil {
		return fmt.Errorf("export codes of promotion %d: %w", id, err)
	}
	defer rows.Close()
	var code string
	for rows.Next() {
		if err := rows.Scan(&code); err != nil {
			return fmt.Errorf("export codes of promotion %d: %w", id, err)
		}
		if err := fn(code); err != nil {
			return fmt.Errorf("export codes of promotion %d: %w", id, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export codes of promotion %d: %w", id, err)
	}
	return nil
}

// PendingBatches returns up to limit (default 100) batches whose event is not
// yet published, oldest first, with their current progress.
func (s *Store) PendingBatches(ctx context.Context, limit int) ([]promo.Batch, error) {
	if limit <= 0 {
		limit = contract.DefaultPendingLimit
	}
	bs, err := s.batches(ctx, qPendingBatches, limit)
	if err != nil {
		return nil, fmt.Errorf("pending batches: %w", err)
	}
	return bs, nil
}

// ClaimPendingBatches leases up to limit (default 100) unpublished batches,
// oldest first, to the caller for lease: other callers skip them until the
// lease ends (or MarkPublished).
func (s *Store) ClaimPendingBatches(ctx context.Context, limit int, lease time.Duration) ([]promo.Batch, error) {
	if limit <= 0 {
		limit = contract.DefaultPendingLimit
	}
	var bs []promo.Batch
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, qClaimPendingBatches, lease.Seconds(), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		bs, err = scanBatches(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim pending batches: %w", err)
	}
	contract.SortBatches(bs)
	return bs, nil
}

// MarkPublished records that the events of refs are on Kafka, in one
// transaction. Unknown refs are ignored.
func (s *Store) MarkPublished(ctx context.Context, refs []promo.BatchRef) error {
	if len(refs) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, qMarkPublished)
		if err != nil {
			return err
		}
		defer stmt.Close()
		now := formatTime(s.now())
		for _, r := range refs {
			if _, err := stmt.ExecContext(ctx, now, r.PromotionID, r.BatchNo); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %d batches published: %w", len(refs), err)
	}
	return nil
}

// LoadBatch returns a batch with its progress and its promotion.
func (s *Store) LoadBatch(ctx context.Context, ref promo.BatchRef) (promo.BatchWork, error) {
	var (
		w         promo.BatchWork
		batchNo   sql.NullInt64
		seqStart  sql.NullInt64
		codeCount sql.NullInt64
		done      sql.NullInt64
		state     sql.NullString
		lastError sql.NullString
		keyFP     string
	)
	p, err := scanPromotion(s.r.QueryRowContext(ctx, qLoadBatch, ref.PromotionID, ref.BatchNo),
		&batchNo, &seqStart, &codeCount, &done, &state, &lastError, &keyFP)
	if errors.Is(err, sql.ErrNoRows) {
		return w, contract.PromotionNotFound(ref.PromotionID)
	}
	if err != nil {
		return w, fmt.Errorf("load batch %d/%d: %w", ref.PromotionID, ref.BatchNo, err)
	}
	if !batchNo.Valid {
		return w, contract.BatchNotFound(ref)
	}
	p.KeyFingerprint = keyFP
	w.Promotion = p
	w.Batch = promo.Batch{PromotionID: p.ID, BatchNo: int(batchNo.Int64), SeqStart: uint64(seqStart.Int64),
		CodeCount: codeCount.Int64, Done: done.Int64, State: promo.BatchState(state.String), LastError: lastError.String}
	return w, nil
}

// SetBatchState records what the pipeline knows about a batch (retrying,
// parked, back to pending) with the last error, cut to 1 KiB. A finished
// batch (Done == CodeCount) keeps its state done.
func (s *Store) SetBatchState(ctx context.Context, ref promo.BatchRef, state promo.BatchState, lastError string) error {
	if err := contract.CheckSetState(state); err != nil {
		return err
	}
	var res sql.Result
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, qSetBatchState, ref.PromotionID, ref.BatchNo, string(state),
			contract.TruncateError(lastError), formatTime(s.now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("set batch %d/%d %s: %w", ref.PromotionID, ref.BatchNo, state, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var exists bool
	if err := s.r.QueryRowContext(ctx, qBatchExists, ref.PromotionID, ref.BatchNo).Scan(&exists); err != nil {
		return fmt.Errorf("set batch %d/%d %s: %w", ref.PromotionID, ref.BatchNo, state, err)
	}
	if !exists {
		return contract.BatchNotFound(ref)
	}
	return nil // done: it stays done
}

// IncompleteBatches returns the batches with Done < CodeCount of one
// promotion, or of all promotions when promotionID is 0, in order.
func (s *Store) IncompleteBatches(ctx context.Context, promotionID int64) ([]promo.Batch, error) {
	var (
		bs  []promo.Batch
		err error
	)
	if promotionID == 0 {
		bs, err = s.batches(ctx, qAllIncompleteBatches)
	} else {
		bs, err = s.batches(ctx, qIncompleteBatches, promotionID)
	}
	if err != nil {
		return nil, fmt.Errorf("incomplete batches of promotion %d: %w", promotionID, err)
	}
	return bs, nil
}

func (s *Store) batches(ctx context.Context, query string, args ...any) ([]promo.Batch, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanBatches(rows)
}

func scanBatches(rows *sql.Rows) ([]promo.Batch, error) {
	var bs []promo.Batch
	for rows.Next() {
		var (
			b        promo.Batch
			seqStart int64
			state    string
		)
		if err := rows.Scan(&b.PromotionID, &b.BatchNo, &seqStart, &b.CodeCount, &b.Done, &state, &b.LastError); err != nil {
			return nil, err
		}
		b.SeqStart, b.State = uint64(seqStart), promo.BatchState(state)
		bs = append(bs, b)
	}
	return bs, rows.Err()
}

// GetCode returns a code's usage.
func (s *Store) GetCode(ctx context.Context, code string) (promo.CodeInfo, error) {
	var c promo.CodeInfo
	err := s.r.QueryRowContext(ctx, qGetCode, code).Scan(&c.Code, &c.PromotionID, &c.Used, &c.MaxUsage)
	if errors.Is(err, sql.ErrNoRows) {
		return c, contract.CodeNotFound()
	}
	if err != nil {
		return c, fmt.Errorf("get code: %w", err)
	}
	return c, nil
}

// write runs fn in a write transaction (BEGIN IMMEDIATE) and commits if fn
// returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// scanPromotion scans promotionCols, then extra.
func scanPromotion(row interface{ Scan(...any) error }, extra ...any) (promo.Promotion, error) {
	var (
		p                   promo.Promotion
		kind                string
		format, vanity      sql.NullString
		startsAt, expiresAt sql.NullString
		createdAt           string
		seqStart            int64
	)
	dest := append([]any{&p.ID, &p.Name, &kind, &p.CodeCount, &format, &vanity, &p.MaxUsagePerCode,
		&p.PerUserLimit, &startsAt, &expiresAt, &p.CounterName, &seqStart, &createdAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return promo.Promotion{}, err
	}
	p.Kind, p.SeqStart, p.VanityCode = promo.Kind(kind), uint64(seqStart), vanity.String
	if format.Valid {
		p.Format = new(promo.Format)
		if err := json.Unmarshal([]byte(format.String), p.Format); err != nil {
			return promo.Promotion{}, fmt.Errorf("decode format of promotion %d: %w", p.ID, err)
		}
	}
	var err error
	if p.CreatedAt, err = parseTime(createdAt); err != nil {
		return promo.Promotion{}, fmt.Errorf("promotion %d: created_at: %w", p.ID, err)
	}
	for _, t := range []struct {
		src sql.NullString
		dst **time.Time
	}{{startsAt, &p.StartsAt}, {expiresAt, &p.ExpiresAt}} {
		if t.src.Valid {
			v, err := parseTime(t.src.String)
			if err != nil {
				return promo.Promotion{}, fmt.Errorf("promotion %d: %w", p.ID, err)
			}
			*t.dst = &v
		}
	}
	return p, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

func nullTime(t *time.Time) sql.NullString {
	if t == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(*t), Valid: true}
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// ListPromotions returns a page of promotions with their progress, newest
// first (see promo.ListFilter).
func (s *Store) ListPromotions(ctx context.Context, f promo.ListFilter) ([]promo.PromotionStatus, error) {
	if err := contract.CheckListFilter(f); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, qListPromotions, f.Before, f.Name, string(f.Status), contract.ListLimit(f.Limit),
		contract.ActiveFilter(f.Active))
	if err != nil {
		return nil, fmt.Errorf("list promotions: %w", err)
	}
	defer rows.Close()
	var list []promo.PromotionStatus
	for rows.Next() {
		var (
			total, completed, retrying, parked, cancelled int
			generated                                     int64
			tail                                          statusTail
		)
		p, err := scanPromotion(rows, append([]any{&total, &generated, &completed, &retrying, &parked, &cancelled},
			tail.dest()...)...)
		if err != nil {
			return nil, fmt.Errorf("list promotions: %w", err)
		}
		st := contract.ListedStatus(p, total, generated, completed, retrying, parked, cancelled)
		if err := tail.apply(&st); err != nil {
			return nil, fmt.Errorf("list promotions: %w", err)
		}
		list = append(list, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list promotions: %w", err)
	}
	return list, nil
}

// OldestUnpublished returns when the oldest batch whose event is not yet
// published was written (ok = false: none is pending): the outbox lag.
func (s *Store) OldestUnpublished(ctx context.Context) (t time.Time, ok bool, err error) {
	var v string
	err = s.r.QueryRowContext(ctx, qOldestUnpublished).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err == nil {
		t, err = parseTime(v)
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("oldest unpublished batch: %w", err)
	}
	return t, true, nil
}
