package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// PendingBatches returns up to limit (default 100) batches whose event is not
// yet published, oldest first, with their current progress.
func (s *Core[T]) PendingBatches(ctx context.Context, limit int) ([]promo.Batch, error) {
	bs, err := collect(ctx, s.r, s.d.PendingBatches, []any{int64(clampLimit(limit, defaultPendingLimit, limit))}, scanBatch)
	return bs, wrap(err, "pending batches")
}

// ClaimPendingBatches leases up to limit (default 100) unpublished batches,
// oldest first: other replicas skip them until the lease ends (a dead
// publisher's rows are free after it).
func (s *Core[T]) ClaimPendingBatches(ctx context.Context, limit int, lease time.Duration) ([]promo.Batch, error) {
	bs, err := collect(ctx, s.w, s.d.ClaimPendingBatches,
		[]any{int64(clampLimit(limit, defaultPendingLimit, limit)), s.d.Lease(lease)}, scanBatch)
	slices.SortFunc(bs, func(a, b promo.Batch) int { // RETURNING has no order
		return cmp.Or(cmp.Compare(a.PromotionID, b.PromotionID), cmp.Compare(a.BatchNo, b.BatchNo))
	})
	return bs, wrap(err, "claim pending batches")
}

// MarkPublished records that the events of refs are on Kafka, in as few
// atomic statements as the dialect allows (a retry is harmless).
func (s *Core[T]) MarkPublished(ctx context.Context, refs []promo.BatchRef) error {
	for len(refs) > 0 {
		q, args, n := s.d.MarkPublished(refs)
		if _, err := s.w.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("mark %d batches published: %w", n, err)
		}
		refs = refs[n:]
	}
	return nil
}

// RefValues is a Dialect.MarkPublished over stmt(n) for n (promotion_id,
// batch_no) argument pairs, n at most maxRows.
func RefValues(maxRows int, stmt func(n int) string) func(refs []promo.BatchRef) (string, []any, int) {
	return func(refs []promo.BatchRef) (string, []any, int) {
		n := min(len(refs), maxRows)
		args := make([]any, 0, 2*n)
		for _, r := range refs[:n] {
			args = append(args, r.PromotionID, int32(r.BatchNo))
		}
		return stmt(n), args, n
	}
}

// LoadBatch returns a batch with its progress and its promotion.
func (s *Core[T]) LoadBatch(ctx context.Context, ref promo.BatchRef) (promo.BatchWork, error) {
	var (
		w                              promo.BatchWork
		batchNo, seqStart, count, done sql.NullInt64
		state, lastError               sql.NullString
	)
	p := &w.Promotion
	err := scanPromotion(s.r.QueryRow(ctx, s.d.LoadBatch, ref.PromotionID, int32(ref.BatchNo)), p,
		&batchNo, &seqStart, &count, &done, &state, &lastError, &p.KeyFingerprint)
	if err := lookedUp(err, promotionNotFound(ref.PromotionID), "load batch %d/%d", ref.PromotionID, ref.BatchNo); err != nil {
		return w, err
	}
	if !batchNo.Valid {
		return w, batchNotFound(ref)
	}
	w.Batch = promo.Batch{PromotionID: p.ID, BatchNo: int(batchNo.Int64), SeqStart: uint64(seqStart.Int64),
		CodeCount: count.Int64, Done: done.Int64, State: promo.BatchState(state.String), LastError: lastError.String}
	return w, nil
}

// SetBatchState records what the pipeline knows about a batch (retrying,
// parked, back to pending) with the last error, cut to 1 KiB. A finished
// batch (Done == CodeCount) keeps its state done.
func (s *Core[T]) SetBatchState(ctx context.Context, ref promo.BatchRef, state promo.BatchState, lastError string) error {
	if state != promo.BatchPending && state != promo.BatchRetrying && state != promo.BatchParked {
		return promo.Errorf(promo.EInvalid, "cannot set batch state %q", state) // done is reached, not set
	}
	n, err := s.w.Exec(ctx, s.d.SetBatchState, ref.PromotionID, int32(ref.BatchNo), string(state),
		truncateError(lastError))
	if err == nil && n != 1 { // no such batch, or it is done and stays done
		var exists bool
		if err = s.r.QueryRow(ctx, s.d.BatchExists, ref.PromotionID, int32(ref.BatchNo)).Scan(&exists); err == nil && !exists {
			err = batchNotFound(ref)
		}
	}
	return wrap(err, "set batch %d/%d %s", ref.PromotionID, ref.BatchNo, state)
}

// IncompleteBatches returns the batches with Done < CodeCount of one
// promotion, or of all promotions when promotionID is 0, in order.
func (s *Core[T]) IncompleteBatches(ctx context.Context, promotionID int64) ([]promo.Batch, error) {
	query, args := s.d.IncompleteBatches, []any{promotionID}
	if promotionID == 0 {
		query, args = s.d.AllIncompleteBatches, nil
	}
	bs, err := collect(ctx, s.r, query, args, scanBatch)
	return bs, wrap(err, "incomplete batches of promotion %d", promotionID)
}

// Backlog returns the generation work still open in the database.
func (s *Core[T]) Backlog(ctx context.Context) (promo.Backlog, error) {
	var b promo.Backlog
	err := s.r.QueryRow(ctx, s.d.Backlog).Scan(&b.Incomplete, &b.Parked, &b.PendingCodes)
	return b, wrap(err, "count open batches")
}

// OldestUnpublished returns when the oldest batch whose event is not yet
// published was written (ok = false: none is pending): the outbox lag.
func (s *Core[T]) OldestUnpublished(ctx context.Context) (t time.Time, ok bool, err error) {
	err = s.r.QueryRow(ctx, s.d.OldestUnpublished).Scan(Time(&t))
	t, ok, err = found(t, err)
	return t, ok, wrap(err, "oldest unpublished batch")
}

// CommitChunk commits one chunk in one transaction (docs/store.md,
// "Committing a chunk"): the batch's progress from c.From to c.From+c.Count
// (compare-and-set), exactly c.Count new codes (collisions replaced), the
// commit gate. It returns the new Done. EMoved when Done is not c.From,
// ENotFound for no batch, EInvalid past its end: nothing written.
func (s *Core[T]) CommitChunk(ctx context.Context, c promo.Chunk) (int64, error) {
	if err := c.Validate(); err != nil {
		return 0, err
	}
	var done int64
	fallback := false
	err := s.retry(ctx, func() (err error) {
		done, err = s.commitChunk(ctx, &c, fallback)
		// On the fast path: a collision, redo the chunk on the skipping path.
		// On the skipping path (SQL Server): another transaction inserted one
		// of our codes between the check and the insert; run it again, the
		// code now exists and is skipped. At once.
		fallback = fallback || s.d.UniqueViolation(err)
		return err
	}, s.d.UniqueViolation)
	return done, wrap(err, "commit chunk %d/%d [%d, +%d)", c.Batch.PromotionID, c.Batch.BatchNo, c.From, c.Count)
}

func (s *Core[T]) commitChunk(ctx context.Context, c *promo.Chunk, fallback bool) (int64, error) {
	ref := c.Batch
	var done int64
	err := s.inTx(ctx, func(tx T) error {
		err := tx.QueryRow(ctx, s.d.Advance, ref.PromotionID, int32(ref.BatchNo), int64(c.Count), c.From).Scan(&done)
		if noRows(err) {
			return s.notAdvanced(ctx, tx, c)
		}
		if err != nil {
			return fmt.Errorf("advance progress: %w", err)
		}
		if !fallback && s.d.Bulk.Copy != nil {
			err = s.d.Bulk.Copy(ctx, tx, c)
		} else if inserted, ierr := s.insertChunk(ctx, tx, c); ierr != nil {
			err = ierr
		} else {
			err = s.replaceMissing(ctx, tx, c, int64(c.Count)-inserted)
		}
		if err != nil {
			return err
		}
		// The commit gate (PromotionLive): a cancel skips the batch rows
		// chunks hold, so the refused chunk marks its batch cancelled (the
		// worker that reloads it stops), after its rollback.
		var live bool
		err = tx.QueryRow(ctx, s.d.PromotionLive, ref.PromotionID).Scan(&live)
		if err == nil && !live {
			return errNotLive
		}
		return wrap(err, "check promotion is live")
	})
	if errors.Is(err, errNotLive) {
		if _, err := s.w.Exec(ctx, s.d.CancelBatch, ref.PromotionID, int32(ref.BatchNo)); err != nil {
			return 0, fmt.Errorf("mark batch cancelled: %w", err)
		}
		return 0, promo.Errorf(promo.EMoved, "promotion %d was cancelled or deleted: "+
			"chunk [%d, +%d) of batch %d not committed", ref.PromotionID, c.From, c.Count, ref.BatchNo)
	}
	if err != nil {
		return 0, err
	}
	return done, nil
}

var errNotLive = errors.New("the promotion is not live")

// notAdvanced explains why the progress update matched no row, from what the
// batch row holds now.
func (s *Core[T]) notAdvanced(ctx context.Context, tx T, c *promo.Chunk) error {
	var done, codeCount int64
	err := tx.QueryRow(ctx, s.d.BatchProgress, c.Batch.PromotionID, int32(c.Batch.BatchNo)).Scan(&done, &codeCount)
	if err := lookedUp(err, batchNotFound(c.Batch), "read batch progress"); err != nil {
		return err
	}
	if c.From+int64(c.Count) > codeCount {
		return promo.Errorf(promo.EInvalid, "chunk [%d, %d) exceeds batch %d/%d of %d codes",
			c.From, c.From+int64(c.Count), c.Batch.PromotionID, c.Batch.BatchNo, codeCount)
	}
	return promo.Errorf(promo.EMoved, "batch %d/%d is at %d, chunk starts at %d",
		c.Batch.PromotionID, c.Batch.BatchNo, done, c.From)
}

// insertChunk inserts the chunk's codes on the skipping path and returns how
// many it inserted.
func (s *Core[T]) insertChunk(ctx context.Context, tx T, c *promo.Chunk) (int64, error) {
	if s.d.Bulk.InsertChunk != nil {
		return s.d.Bulk.InsertChunk(ctx, tx, c)
	}
	all := string(c.Codes[:c.Count*c.CodeLen]) // one copy; codes are sub-strings of it
	codes := make([]string, c.Count)
	for i := range codes {
		codes[i] = all[i*c.CodeLen : (i+1)*c.CodeLen]
	}
	// In key order, consecutive inserts land on neighbouring b-tree pages.
	slices.Sort(codes)
	return s.d.Bulk.InsertCodes(ctx, tx, codes, c.Batch.PromotionID)
}

// replaceMissing inserts missing further codes, rendered by c.Replace from
// sequence numbers reserved from c.CounterName in the chunk's transaction,
// skipping any that collide again.
func (s *Core[T]) replaceMissing(ctx context.Context, tx T, c *promo.Chunk, missing int64) error {
	var (
		buf   []byte
		codes []string
	)
	for round := 0; missing > 0; round++ {
		if round == maxReplaceRounds || c.Replace == nil || c.CounterName == "" {
			return fmt.Errorf("%d codes of the chunk collide with existing codes and cannot be replaced (counter %q)",
				missing, c.CounterName)
		}
		start, err := reserveSeq(ctx, tx, s.d.Reserve, c.CounterName, missing)
		if err != nil {
			return fmt.Errorf("replacement codes: %w", err)
		}
		// Replace renders only seq < ReplaceLimit (0: no limit).
		if lim := c.ReplaceLimit; lim != 0 && (start < 0 || uint64(start) > lim || uint64(missing) > lim-uint64(start)) {
			return promo.Errorf(promo.ECapacity, "code space of counter %q is exhausted: %d replacement codes for "+
				"collisions in batch %d/%d need sequence numbers [%d, %d), the space has %d",
				c.CounterName, missing, c.Batch.PromotionID, c.Batch.BatchNo, start, start+missing, lim)
		}
		codes = codes[:0]
		for i := range missing {
			buf = c.Replace(buf[:0], uint64(start)+uint64(i))
			codes = append(codes, string(buf))
		}
		n, err := s.d.Bulk.InsertCodes(ctx, tx, codes, c.Batch.PromotionID)
		if err != nil {
			return fmt.Errorf("replacement codes: %w", err)
		}
		missing -= n
	}
	return nil
}
