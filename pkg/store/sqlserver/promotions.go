package sqlserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// readCommitted is the isolation of every transaction of the store. Explicit,
// because go-mssqldb's default keeps whatever level the pooled session had.
var readCommitted = &sql.TxOptions{Isolation: sql.LevelReadCommitted}

// errIdempotencyRace marks the unique violation of the idempotency key on
// promotions: a concurrent create with the same key committed first.
var errIdempotencyRace = errors.New("a concurrent create with the same idempotency key committed first")

// maxTxAttempts bounds the runs of one transaction that fails for a reason
// that a new run removes (a deadlock, a lost idempotency race).
const maxTxAttempts = 4

// CreatePromotion writes a promotion, reserves its sequence range and writes
// its batch rows (generated) or its code (vanity), in one transaction.
//
// With an idempotency key already stored for the same request hash it returns
// the stored promotion and created = false; for another hash, EConflict. Of
// concurrent creates with one key, one inserts and the others, failing on the
// unique index (2601), roll back and re-read it in a new transaction. A
// reservation past np.SeqLimit is ECapacity and an existing vanity code
// EConflict; both write nothing. A deadlock victim is run again.
func (s *Store) CreatePromotion(ctx context.Context, np promo.NewPromotion) (promo.Promotion, bool, error) {
	np, err := contract.NormalizeNewPromotion(np)
	if err != nil {
		return promo.Promotion{}, false, err
	}
	for attempt := 1; ; attempt++ {
		p, created, err := s.createPromotion(ctx, np)
		if err != nil && attempt < maxTxAttempts && (errors.Is(err, errIdempotencyRace) || deadlocked(err)) {
			if err := pause(ctx, attempt); err != nil {
				return promo.Promotion{}, false, fmt.Errorf("create promotion %q: %w", np.Name, err)
			}
			continue
		}
		if err != nil && promo.Code(err) == promo.EInternal {
			err = fmt.Errorf("create promotion %q: %w", np.Name, err)
		}
		return p, created, err
	}
}

func (s *Store) createPromotion(ctx context.Context, np promo.NewPromotion) (promo.Promotion, bool, error) {
	tx, err := s.db.BeginTx(ctx, readCommitted)
	if err != nil {
		return promo.Promotion{}, false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	if np.IdempotencyKey != "" {
		// At locking READ COMMITTED this waits for an uncommitted insert of
		// the same key, then sees it: most concurrent repeats end here.
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
		start, err := reserve(ctx, tx, p.CounterName, p.CodeCount)
		if err != nil {
			return promo.Promotion{}, false, err
		}
		if err := contract.CheckReservation(start, p.CodeCount, np.SeqLimit); err != nil {
			return promo.Promotion{}, false, err // the deferred rollback undoes the reservation
		}
		p.SeqStart = uint64(start)
	} else {
		p.Format, p.CounterName, p.SeqStart = nil, "", 0
	}
	var format any // NULL unless generated
	if p.Format != nil {
		b, err := json.Marshal(p.Format)
		if err != nil {
			return promo.Promotion{}, false, fmt.Errorf("encode format: %w", err)
		}
		format = string(b)
	}
	var vanity any
	if p.VanityCode != "" {
		vanity = mssql.VarChar(p.VanityCode)
	}
	var key any
	if np.IdempotencyKey != "" {
		key = np.IdempotencyKey
	}
	err = tx.QueryRowContext(ctx, qInsertPromotion, p.Name, string(p.Kind), p.CodeCount, format, vanity,
		int32(p.MaxUsagePerCode), int32(p.PerUserLimit), timeArg(p.StartsAt), timeArg(p.ExpiresAt),
		p.CounterName, int64(p.SeqStart), key, np.RequestHash, p.CreatedAt, mssql.VarChar(p.KeyFingerprint)).Scan(&p.ID)
	if err != nil {
		if np.IdempotencyKey != "" && uniqueViolation(err) {
			// The only unique index this insert can violate (the id is an
			// identity) is the idempotency key's.
			return promo.Promotion{}, false, fmt.Errorf("insert promotion: %w: %w", errIdempotencyRace, err)
		}
		return promo.Promotion{}, false, fmt.Errorf("insert promotion: %w", err)
	}
	switch p.Kind {
	case promo.KindGenerated:
		n := contract.BatchCount(p.CodeCount, np.BatchSize)
		if _, err := tx.ExecContext(ctx, qInsertBatches, p.ID, int64(p.SeqStart), np.BatchSize, p.CodeCount,
			int64(n), p.CreatedAt); err != nil {
			return promo.Promotion{}, false, fmt.Errorf("insert %d batches: %w", n, err)
		}
	case promo.KindVanity:
		if _, err := tx.ExecContext(ctx, qInsertCode, mssql.VarChar(p.VanityCode), p.ID); err != nil {
			if uniqueViolation(err) { // codes has one unique key: the code
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

// reserve reserves n sequence numbers from counter name in tx (creating the
// counter at 0 if need be) and returns the first.
func reserve(ctx context.Context, tx *sql.Tx, name string, n int64) (int64, error) {
	var start int64
	if err := tx.QueryRowContext(ctx, qReserve, name, n).Scan(&start); err != nil {
		return 0, fmt.Errorf("reserve %d from counter %q: %w", n, name, err)
	}
	return start, nil
}

// GetPromotion returns a promotion with its progress, its deletion and its
// totals, in two queries whatever the number of batches.
func (s *Store) GetPromotion(ctx context.Context, id int64) (promo.PromotionStatus, error) {
	var tail statusTail
	p, err := scanPromotion(s.db.QueryRowContext(ctx, qPromotionStatus, id), tail.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return promo.PromotionStatus{}, contract.PromotionNotFound(id)
	}
	if err != nil {
		return promo.PromotionStatus{}, fmt.Errorf("get promotion %d: %w", id, err)
	}
	st, err := contract.Status(p, func(dst ...any) error { return s.db.QueryRowContext(ctx, qProgress, id).Scan(dst...) })
	if err != nil {
		return st, err
	}
	tail.apply(&st)
	return st, nil
}

// statusTail scans statusCols.
type statusTail struct {
	active             bool
	requested, deleted sql.NullTime
	totals             promo.Totals
}

func (t *statusTail) dest() []any {
	return []any{&t.active, &t.requested, &t.deleted, &t.totals.Redemptions, &t.totals.CodesRedeemed, &t.totals.RolledBack}
}

func (t *statusTail) apply(st *promo.PromotionStatus) {
	st.Active, st.Totals = t.active, t.totals
	if t.requested.Valid {
		st.Deletion.RequestedAt = utcPtr(&t.requested.Time)
	}
	if t.deleted.Valid {
		st.Deletion.DeletedAt = utcPtr(&t.deleted.Time)
	}
}

// ExportCodes calls fn with every code of the promotion, streaming rows from
// the server (constant memory), in no particular order. It stops at, and
// returns (wrapped), the first error of fn. It holds a pool connection for as
// long as the export runs.
func (s *Store) ExportCodes(ctx context.Context, id int64, fn func(code string) error) error {
	var exists bool
	if err := s.db.QueryRowContext(ctx, qPromotionExists, id).Scan(&exists); err != nil {
		return fmt.Errorf("export codes of promotion %d: %w", id, err)
	}
	if !exists {
		return contract.PromotionNotFound(id)
	}
	// Closing the rows early (fn failed) makes the driver cancel the rest of
	// the result set (an attention) rather than read it to the end.
	rows, err := s.db.QueryContext(ctx, qExportCodes, id)
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
	bs, err := s.batches(ctx, qPendingBatches, int64(limit))
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
	bs, err := s.batches(ctx, qClaimPendingBatches, int64(limit), leaseMillis(lease))
	if err != nil {
		return nil, fmt.Errorf("claim pending batches: %w", err)
	}
	return bs, nil
}

// MarkPublished records that the events of refs are on Kafka, in statements
// of up to 1000 refs (each one atomic; a retry after a partial failure is
// harmless). Unknown refs are ignored.
func (s *Store) MarkPublished(ctx context.Context, refs []promo.BatchRef) error {
	for len(refs) > 0 {
		n := min(len(refs), maxValuesRows)
		args := make([]any, 0, 2*n)
		for _, r := range refs[:n] {
			args = append(args, r.PromotionID, int32(r.BatchNo))
		}
		if _, err := s.db.ExecContext(ctx, qMarkPublished(n), args...); err != nil {
			return fmt.Errorf("mark %d batches published: %w", n, err)
		}
		refs = refs[n:]
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
	p, err := scanPromotion(s.db.QueryRowContext(ctx, qLoadBatch, ref.PromotionID, int32(ref.BatchNo)),
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
	res, err := s.db.ExecContext(ctx, qSetBatchState, ref.PromotionID, int32(ref.BatchNo), string(state),
		contract.TruncateError(lastError))
	if err != nil {
		return fmt.Errorf("set batch %d/%d %s: %w", ref.PromotionID, ref.BatchNo, state, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		return nil
	}
	var exists bool
	if err := s.db.QueryRowContext(ctx, qBatchExists, ref.PromotionID, int32(ref.BatchNo)).Scan(&exists); err != nil {
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
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
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
	err := s.db.QueryRowContext(ctx, qGetCode, mssql.VarChar(code)).Scan(&c.Code, &c.PromotionID, &c.Used, &c.MaxUsage)
	if errors.Is(err, sql.ErrNoRows) {
		return c, contract.CodeNotFound()
	}
	if err != nil {
		return c, fmt.Errorf("get code: %w", err)
	}
	return c, nil
}

// scanPromotion scans promotionCols, then extra.
func scanPromotion(row interface{ Scan(...any) error }, extra ...any) (promo.Promotion, error) {
	var (
		p                   promo.Promotion
		kind                string
		format, vanity      sql.NullString
		startsAt, expiresAt sql.NullTime
		seqStart            int64
	)
	dest := append([]any{&p.ID, &p.Name, &kind, &p.CodeCount, &format, &vanity, &p.MaxUsagePerCode,
		&p.PerUserLimit, &startsAt, &expiresAt, &p.CounterName, &seqStart, &p.CreatedAt}, extra...)
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
	if startsAt.Valid {
		p.StartsAt = utcPtr(&startsAt.Time)
	}
	if expiresAt.Valid {
		p.ExpiresAt = utcPtr(&expiresAt.Time)
	}
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

// timeArg is a nullable time argument: NULL or the time in UTC (see
// queries.go on why UTC matters).
func timeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}

// pause waits a little before running a transaction again (attempt >= 1),
// so that deadlock victims do not meet again at once.
func pause(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(attempt) * 10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ListPromotions returns a page of promotions with their progress, newest
// first (see promo.ListFilter).
func (s *Store) ListPromotions(ctx context.Context, f promo.ListFilter) ([]promo.PromotionStatus, error) {
	if err := contract.CheckListFilter(f); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, qListPromotions, f.Before, f.Name, string(f.Status), contract.ListLimit(f.Limit),
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
	err = s.db.QueryRowContext(ctx, qOldestUnpublished).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("oldest unpublished batch: %w", err)
	}
	return t.UTC(), true, nil
}
