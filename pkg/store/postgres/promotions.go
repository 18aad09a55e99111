package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// CreatePromotion writes a promotion, reserves its sequence range and writes
// its batch rows (generated) or its code (vanity), in one transaction.
//
// With an idempotency key already stored for the same request hash it returns
// the stored promotion and created = false; for another hash, EConflict. Of
// concurrent creates with one key, one inserts and the others, failing on the
// unique index, re-read and return it. A reservation past np.SeqLimit is
// ECapacity and an existing vanity code EConflict; both write nothing.
func (s *Store) CreatePromotion(ctx context.Context, np promo.NewPromotion) (promo.Promotion, bool, error) {
	np, err := contract.NormalizeNewPromotion(np)
	if err != nil {
		return promo.Promotion{}, false, err
	}
	for attempt := 1; ; attempt++ {
		p, created, err := s.createPromotion(ctx, np)
		if err != nil && attempt < 3 && np.IdempotencyKey != "" && uniqueViolationOn(err, "promotions") {
			// A concurrent create with the same key committed first and ours
			// rolled back: the next attempt finds theirs.
			continue
		}
		if err != nil && promo.Code(err) == promo.EInternal {
			err = fmt.Errorf("create promotion %q: %w", np.Name, err)
		}
		return p, created, err
	}
}

func (s *Store) createPromotion(ctx context.Context, np promo.NewPromotion) (promo.Promotion, bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return promo.Promotion{}, false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	if np.IdempotencyKey != "" {
		var (
			hash   string
			active bool
		)
		p, err := scanPromotion(tx.QueryRow(ctx, qPromotionByKey, np.IdempotencyKey), &hash, &active)
		switch {
		case err == nil && hash == np.RequestHash:
			p.Active = active
			return p, false, nil
		case err == nil:
			return promo.Promotion{}, false, contract.IdempotencyConflict()
		case !errors.Is(err, pgx.ErrNoRows):
			return promo.Promotion{}, false, fmt.Errorf("look up idempotency key: %w", err)
		}
	}

	p := np.Promotion
	p.Active = true // the column's default
	p.CreatedAt = s.now().UTC().Truncate(time.Microsecond)
	p.StartsAt, p.ExpiresAt = utcPtr(p.StartsAt), utcPtr(p.ExpiresAt)
	if p.Kind == promo.KindGenerated {
		var start int64
		if err := tx.QueryRow(ctx, qReserve, p.CounterName, p.CodeCount).Scan(&start); err != nil {
			return promo.Promotion{}, false, fmt.Errorf("reserve %d from counter %q: %w", p.CodeCount, p.CounterName, err)
		}
		if err := contract.CheckReservation(start, p.CodeCount, np.SeqLimit); err != nil {
			return promo.Promotion{}, false, err // the deferred rollback undoes the reservation
		}
		p.SeqStart = uint64(start)
	} else {
		p.Format, p.CounterName, p.SeqStart = nil, "", 0
	}
	var format *string
	if p.Format != nil {
		b, err := json.Marshal(p.Format)
		if err != nil {
			return promo.Promotion{}, false, fmt.Errorf("encode format: %w", err)
		}
		format = new(string(b))
	}
	err = tx.QueryRow(ctx, qInsertPromotion, p.Name, string(p.Kind), p.CodeCount, format, nullString(p.VanityCode),
		p.MaxUsagePerCode, p.PerUserLimit, p.StartsAt, p.ExpiresAt, p.CounterName, int64(p.SeqStart),
		nullString(np.IdempotencyKey), np.RequestHash, p.CreatedAt, p.KeyFingerprint).Scan(&p.ID)
	if err != nil {
		return promo.Promotion{}, false, fmt.Errorf("insert promotion: %w", err)
	}
	switch p.Kind {
	case promo.KindGenerated:
		n := contract.BatchCount(p.CodeCount, np.BatchSize)
		if _, err := tx.Exec(ctx, qInsertBatches, p.ID, int64(p.SeqStart), np.BatchSize, p.CodeCount, n, p.CreatedAt); err != nil {
			return promo.Promotion{}, false, fmt.Errorf("insert %d batches: %w", n, err)
		}
	case promo.KindVanity:
		if _, err := tx.Exec(ctx, qInsertCode, p.VanityCode, p.ID); err != nil {
			if uniqueViolationOn(err, "codes") {
				return promo.Promotion{}, false, contract.VanityConflict(p.VanityCode)
			}
			return promo.Promotion{}, false, fmt.Errorf("insert vanity code: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return promo.Promotion{}, false, fmt.Errorf("commit: %w", err)
	}
	return p, true, nil
}

// GetPromotion returns a promotion with its progress, its deletion and its
// totals, in two queries whatever the number of batches.
func (s *Store) GetPromotion(ctx context.Context, id int64) (promo.PromotionStatus, error) {
	var tail statusTail
	p, err := scanPromotion(s.pool.QueryRow(ctx, qPromotionStatus, id), tail.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return promo.PromotionStatus{}, contract.PromotionNotFound(id)
	}
	if err != nil {
		return promo.PromotionStatus{}, fmt.Errorf("get promotion %d: %w", id, err)
	}
	st, err := contract.Status(p, func(dst ...any) error { return s.pool.QueryRow(ctx, qProgress, id).Scan(dst...) })
	if err != nil {
		return st, err
	}
	tail.apply(&st)
	return st, nil
}

// statusTail scans statusCols.
type statusTail struct {
	active bool
	del    promo.Deletion
	totals promo.Totals
}

func (t *statusTail) dest() []any {
	return []any{&t.active, &t.del.RequestedAt, &t.del.DeletedAt,
		&t.totals.Redemptions, &t.totals.CodesRedeemed, &t.totals.RolledBack}
}

func (t *statusTail) apply(st *promo.PromotionStatus) {
	st.Active, st.Totals = t.active, t.totals
	st.Deletion = promo.Deletion{RequestedAt: utcPtr(t.del.RequestedAt), DeletedAt: utcPtr(t.del.DeletedAt)}
}

// ExportCodes calls fn with every code of the promotion, streaming rows from
// the server (constant memory), in no particular order. It stops at, and
// returns (wrapped), the first error of fn. It holds a pool connection for
// as long as the export runs.
func (s *Store) ExportCodes(ctx context.Context, id int64, fn func(code string) error) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, qPromotionExists, id).Scan(&exists); err != nil {
		return fmt.Errorf("export codes of promotion %d: %w", id, err)
	}
	if !exists {
		return contract.PromotionNotFound(id)
	}
	rows, err := s.pool.Query(ctx, qExportCodes, id)
	if err != nil {
		return fmt.Errorf("export codes of promotion %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		// The raw value is the code's bytes (text format): no scan machinery.
		if err := fn(string(rows.RawValues()[0])); err != nil {
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
// lease ends (or MarkPublished). Two API replicas thus publish each batch
// event once in the normal case; a publisher that dies holding a lease
// leaves its rows to the others after the lease.
func (s *Store) ClaimPendingBatches(ctx context.Context, limit int, lease time.Duration) ([]promo.Batch, error) {
	if limit <= 0 {
		limit = contract.DefaultPendingLimit
	}
	bs, err := s.batches(ctx, qClaimPendingBatches, limit, lease.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("claim pending batches: %w", err)
	}
	contract.SortBatches(bs)
	return bs, nil
}

// MarkPublished records that the events of refs are on Kafka. Unknown refs
// are ignored.
func (s *Store) MarkPublished(ctx context.Context, refs []promo.BatchRef) error {
	if len(refs) == 0 {
		return nil
	}
	ids := make([]int64, len(refs))
	nos := make([]int32, len(refs))
	for i, r := range refs {
		ids[i], nos[i] = r.PromotionID, int32(r.BatchNo)
	}
	if _, err := s.pool.Exec(ctx, qMarkPublished, ids, nos); err != nil {
		return fmt.Errorf("mark %d batches published: %w", len(refs), err)
	}
	return nil
}

// LoadBatch returns a batch with its progress and its promotion.
func (s *Store) LoadBatch(ctx context.Context, ref promo.BatchRef) (promo.BatchWork, error) {
	var (
		w         promo.BatchWork
		batchNo   *int32
		seqStart  *int64
		codeCount *int64
		done      *int64
		state     *string
		lastError *string
		keyFP     string
	)
	p, err := scanPromotion(s.pool.QueryRow(ctx, qLoadBatch, ref.PromotionID, ref.BatchNo),
		&batchNo, &seqStart, &codeCount, &done, &state, &lastError, &keyFP)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, contract.PromotionNotFound(ref.PromotionID)
	}
	if err != nil {
		return w, fmt.Errorf("load batch %d/%d: %w", ref.PromotionID, ref.BatchNo, err)
	}
	if batchNo == nil {
		return w, contract.BatchNotFound(ref)
	}
	p.KeyFingerprint = keyFP
	w.Promotion = p
	w.Batch = promo.Batch{PromotionID: p.ID, BatchNo: int(*batchNo), SeqStart: uint64(*seqStart),
		CodeCount: *codeCount, Done: *done, State: promo.BatchState(*state), LastError: *lastError}
	return w, nil
}

// SetBatchState records what the pipeline knows about a batch (retrying,
// parked, back to pending) with the last error, cut to 1 KiB. A finished
// batch (Done == CodeCount) keeps its state done.
func (s *Store) SetBatchState(ctx context.Context, ref promo.BatchRef, state promo.BatchState, lastError string) error {
	if err := contract.CheckSetState(state); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, qSetBatchState, ref.PromotionID, ref.BatchNo, string(state), contract.TruncateError(lastError))
	if err != nil {
		return fmt.Errorf("set batch %d/%d %s: %w", ref.PromotionID, ref.BatchNo, state, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, qBatchExists, ref.PromotionID, ref.BatchNo).Scan(&exists); err != nil {
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
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var bs []promo.Batch
	var b promo.Batch
	var seqStart int64
	var state string
	_, err = pgx.ForEachRow(rows, []any{&b.PromotionID, &b.BatchNo, &seqStart, &b.CodeCount, &b.Done, &state, &b.LastError}, func() error {
		b.SeqStart, b.State = uint64(seqStart), promo.BatchState(state)
		bs = append(bs, b)
		return nil
	})
	return bs, err
}

// GetCode returns a code's usage.
func (s *Store) GetCode(ctx context.Context, code string) (promo.CodeInfo, error) {
	var c promo.CodeInfo
	err := s.pool.QueryRow(ctx, qGetCode, code).Scan(&c.Code, &c.PromotionID, &c.Used, &c.MaxUsage)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, contract.CodeNotFound()
	}
	if err != nil {
		return c, fmt.Errorf("get code: %w", err)
	}
	return c, nil
}

// scanPromotion scans promotionCols, then extra.
func scanPromotion(row pgx.Row, extra ...any) (promo.Promotion, error) {
	var (
		p        promo.Promotion
		kind     string
		format   *string
		vanity   *string
		seqStart int64
	)
	dest := append([]any{&p.ID, &p.Name, &kind, &p.CodeCount, &format, &vanity, &p.MaxUsagePerCode,
		&p.PerUserLimit, &p.StartsAt, &p.ExpiresAt, &p.CounterName, &seqStart, &p.CreatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return promo.Promotion{}, err
	}
	p.Kind, p.SeqStart = promo.Kind(kind), uint64(seqStart)
	if format != nil {
		p.Format = new(promo.Format)
		if err := json.Unmarshal([]byte(*format), p.Format); err != nil {
			return promo.Promotion{}, fmt.Errorf("decode format of promotion %d: %w", p.ID, err)
		}
	}
	if vanity != nil {
		p.VanityCode = *vanity
	}
	p.StartsAt, p.ExpiresAt = utcPtr(p.StartsAt), utcPtr(p.ExpiresAt)
	p.CreatedAt = p.CreatedAt.UTC()
	return p, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// uniqueViolationOn reports whether err is a unique violation on table.
func uniqueViolationOn(err error, table string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.TableName == table
}

// ListPromotions returns a page of promotions with their progress, newest
// first (see promo.ListFilter).
func (s *Store) ListPromotions(ctx context.Context, f promo.ListFilter) ([]promo.PromotionStatus, error) {
	if err := contract.CheckListFilter(f); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, qListPromotions, f.Before, f.Name, string(f.Status), contract.ListLimit(f.Limit),
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
		tail.apply(&st)
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
	err = s.pool.QueryRow(ctx, qOldestUnpublished).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("oldest unpublished batch: %w", err)
	}
	return t.UTC(), true, nil
}
