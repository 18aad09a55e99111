package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

// CommitChunk commits one chunk: in one write transaction it advances the
// batch's progress from c.From to c.From+c.Count (compare-and-set) and
// inserts exactly c.Count new codes. It returns the batch's new Done.
//
// Codes go in with a prepared multi-row INSERT ... ON CONFLICT DO NOTHING;
// the rows it reports as inserted tell how many collided with existing codes,
// and for each of those a further sequence number from c.CounterName is
// reserved in the same transaction and rendered by c.Replace.
//
// Errors: EMoved when the batch's Done is not c.From (another worker
// committed first, or a replay), ENotFound for an unknown batch, EInvalid for
// a chunk beyond the batch's end. Nothing is written in those cases.
func (s *Store) CommitChunk(ctx context.Context, c promo.Chunk) (int64, error) {
	if err := contract.CheckChunk(c); err != nil {
		return 0, err
	}
	done, err := s.commitChunk(ctx, &c)
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("commit chunk %d/%d [%d, +%d): %w", c.Batch.PromotionID, c.Batch.BatchNo, c.From, c.Count, err)
	}
	return done, err
}

func (s *Store) commitChunk(ctx context.Context, c *promo.Chunk) (int64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	ref := c.Batch
	var done int64
	err = tx.QueryRowContext(ctx, qAdvance, ref.PromotionID, ref.BatchNo, int64(c.Count), c.From,
		formatTime(s.now())).Scan(&done)
	if errors.Is(err, sql.ErrNoRows) {
		// Still in the transaction: the row cannot change under us.
		var cur, codeCount int64
		err := tx.QueryRowContext(ctx, qBatchProgress, ref.PromotionID, ref.BatchNo).Scan(&cur, &codeCount)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, contract.NotAdvanced(*c, false, 0, 0)
		}
		if err != nil {
			return 0, fmt.Errorf("read batch progress: %w", err)
		}
		return 0, contract.NotAdvanced(*c, true, cur, codeCount)
	}
	if err != nil {
		return 0, fmt.Errorf("advance progress: %w", err)
	}

	all := string(c.Codes[:c.Count*c.CodeLen]) // one copy; codes are sub-strings of it
	codes := make([]string, c.Count)
	for i := range codes {
		codes[i] = all[i*c.CodeLen : (i+1)*c.CodeLen]
	}
	// In key order, consecutive inserts land on neighbouring b-tree pages.
	slices.Sort(codes)
	inserted, err := insertCodes(ctx, tx, codes, ref.PromotionID)
	if err != nil {
		return 0, err
	}
	var buf []byte
	for round, missing := 0, int64(c.Count)-inserted; missing > 0; round++ {
		if round == contract.MaxReplaceRounds || c.Replace == nil || c.CounterName == "" {
			return 0, contract.NoReplacement(*c, missing)
		}
		var start int64
		if err := tx.QueryRowContext(ctx, qReserve, c.CounterName, missing).Scan(&start); err != nil {
			return 0, fmt.Errorf("reserve %d replacement codes from counter %q: %w", missing, c.CounterName, err)
		}
		if err := contract.CheckReplacement(*c, start, missing); err != nil {
			return 0, err
		}
		codes = codes[:0]
		for i := range missing {
			buf = c.Replace(buf[:0], uint64(start)+uint64(i))
			codes = append(codes, string(buf))
		}
		n, err := insertCodes(ctx, tx, codes, ref.PromotionID)
		if err != nil {
			return 0, fmt.Errorf("replacement codes: %w", err)
		}
		missing -= n
	}
	// The commit gate (see ../postgres/queries.go qPromotionLive). With one
	// writer a cancel cannot land mid-chunk here, but the rule is the same.
	var live bool
	if err := tx.QueryRowContext(ctx, qPromotionLive, ref.PromotionID).Scan(&live); err != nil {
		return 0, fmt.Errorf("check promotion is live: %w", err)
	}
	if !live {
		_ = tx.Rollback()
		if _, err := s.w.ExecContext(ctx, qCancelBatch, ref.PromotionID, ref.BatchNo, formatTime(time.Now())); err != nil {
			return 0, fmt.Errorf("mark batch cancelled: %w", err)
		}
		return 0, contract.PromotionStopped(*c)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return done, nil
}

// insertCodes inserts codes for a promotion, skipping those already present,
// in statements of insertCodesRows rows, and returns how many it inserted.
func insertCodes(ctx context.Context, tx *sql.Tx, codes []string, promotionID int64) (int64, error) {
	var (
		inserted int64
		full     *sql.Stmt
		args     = make([]any, 0, 2*min(len(codes), insertCodesRows))
	)
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for len(codes) > 0 {
		n := min(len(codes), insertCodesRows)
		args = args[:0]
		for _, code := range codes[:n] {
			args = append(args, code, promotionID)
		}
		var (
			res sql.Result
			err error
		)
		if n == insertCodesRows {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, qInsertCodes(n)); err != nil {
					return 0, fmt.Errorf("prepare code insert: %w", err)
				}
			}
			res, err = full.ExecContext(ctx, args...)
		} else {
			res, err = tx.ExecContext(ctx, qInsertCodes(n), args...)
		}
		if err != nil {
			return 0, fmt.Errorf("insert %d codes: %w", n, err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("insert %d codes: %w", n, err)
		}
		inserted += k
		codes = codes[n:]
	}
	return inserted, nil
}
