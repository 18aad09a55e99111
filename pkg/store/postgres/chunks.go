package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

var codeColumns = []string{"code", "promotion_id"}

// CommitChunk commits one chunk: in one transaction it advances the batch's
// progress from c.From to c.From+c.Count (compare-and-set) and inserts exactly
// c.Count new codes. It returns the batch's new Done.
//
// The fast path binary-COPYs the codes straight into the codes table. If a
// code collides with an existing one (unique violation), the transaction is
// rolled back and the chunk redone on the fallback path: COPY into a staging
// table, INSERT ... ON CONFLICT DO NOTHING, and for each skipped code a
// further sequence number from c.CounterName rendered by c.Replace. A
// deadlock (possible only between fallback commits) is retried.
//
// Errors: EMoved when the batch's Done is not c.From (another worker
// committed first, or a replay), ENotFound for an unknown batch, EInvalid for
// a chunk beyond the batch's end. Nothing is written in those cases.
func (s *Store) CommitChunk(ctx context.Context, c promo.Chunk) (int64, error) {
	if err := contract.CheckChunk(c); err != nil {
		return 0, err
	}
	var (
		done     int64
		err      error
		fallback bool
	)
	for attempt := 0; ; attempt++ {
		done, err = s.commitChunk(ctx, c, fallback)
		switch {
		case err == nil || attempt == 3:
		case uniqueViolationOn(err, "codes") && !fallback:
			fallback = true
			continue
		case retryable(err):
			// Two fallback commits can deadlock on each other's uncommitted
			// codes and the counter row; the victim was rolled back whole.
			continue
		}
		break
	}
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("commit chunk %d/%d [%d, +%d): %w", c.Batch.PromotionID, c.Batch.BatchNo, c.From, c.Count, err)
	}
	return done, err
}

func (s *Store) commitChunk(ctx context.Context, c promo.Chunk, fallback bool) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	ref := c.Batch
	var done int64
	err = tx.QueryRow(ctx, qAdvance, ref.PromotionID, ref.BatchNo, int64(c.Count), c.From).Scan(&done)
	if errors.Is(err, pgx.ErrNoRows) {
		_ = tx.Rollback(ctx)
		return 0, s.notAdvanced(ctx, c)
	}
	if err != nil {
		return 0, fmt.Errorf("advance progress: %w", err)
	}

	src := newChunkSource(&c)
	if !fallback {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"codes"}, codeColumns, src)
		if err != nil {
			return 0, fmt.Errorf("copy codes: %w", err)
		}
		if n != int64(c.Count) {
			return 0, fmt.Errorf("copy codes: %d rows copied, want %d", n, c.Count)
		}
	} else {
		if _, err := tx.Exec(ctx, qCreateStaging); err != nil {
			return 0, fmt.Errorf("create staging table: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"codes_staging"}, codeColumns, src); err != nil {
			return 0, fmt.Errorf("copy codes to staging: %w", err)
		}
		tag, err := tx.Exec(ctx, qInsertFromStaging)
		if err != nil {
			return 0, fmt.Errorf("insert staged codes: %w", err)
		}
		if err := replaceMissing(ctx, tx, &c, int64(c.Count)-tag.RowsAffected()); err != nil {
			return 0, err
		}
	}
	var live bool
	if err := tx.QueryRow(ctx, qPromotionLive, ref.PromotionID).Scan(&live); err != nil {
		return 0, fmt.Errorf("check promotion is live: %w", err)
	}
	if !live {
		_ = tx.Rollback(ctx)
		if _, err := s.pool.Exec(ctx, qCancelBatch, ref.PromotionID, ref.BatchNo); err != nil {
			return 0, fmt.Errorf("mark batch cancelled: %w", err)
		}
		return 0, contract.PromotionStopped(c)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return done, nil
}

// replaceMissing inserts missing further codes, rendered by c.Replace from
// sequence numbers reserved from c.CounterName in the chunk's transaction,
// skipping any that collide again.
func replaceMissing(ctx context.Context, tx pgx.Tx, c *promo.Chunk, missing int64) error {
	var buf []byte
	for round := 0; missing > 0; round++ {
		if round == contract.MaxReplaceRounds || c.Replace == nil || c.CounterName == "" {
			return contract.NoReplacement(*c, missing)
		}
		var start int64
		if err := tx.QueryRow(ctx, qReserve, c.CounterName, missing).Scan(&start); err != nil {
			return fmt.Errorf("reserve %d replacement codes from counter %q: %w", missing, c.CounterName, err)
		}
		if err := contract.CheckReplacement(*c, start, missing); err != nil {
			return err
		}
		codes := make([]string, missing)
		for i := range codes {
			buf = c.Replace(buf[:0], uint64(start)+uint64(i))
			codes[i] = string(buf)
		}
		tag, err := tx.Exec(ctx, qInsertCodesArray, codes, c.Batch.PromotionID)
		if err != nil {
			return fmt.Errorf("insert %d replacement codes: %w", missing, err)
		}
		missing -= tag.RowsAffected()
	}
	return nil
}

// notAdvanced explains, after the rollback, why the progress update matched
// no row.
func (s *Store) notAdvanced(ctx context.Context, c promo.Chunk) error {
	var done, codeCount int64
	err := s.pool.QueryRow(ctx, qBatchProgress, c.Batch.PromotionID, c.Batch.BatchNo).Scan(&done, &codeCount)
	if errors.Is(err, pgx.ErrNoRows) {
		return contract.NotAdvanced(c, false, 0, 0)
	}
	if err != nil {
		return fmt.Errorf("read batch progress: %w", err)
	}
	return contract.NotAdvanced(c, true, done, codeCount)
}

// chunkSource feeds a chunk's codes to CopyFrom without allocating per row:
// the row slice, and the pointers in it, are made once per chunk; code
// implements pgtype.TextValuer over a sub-string of one per-chunk string.
type chunkSource struct {
	codes  string // all codes, back to back
	length int
	n, i   int
	code   codeValue
	row    []any
}

type codeValue struct{ s string }

// TextValue implements pgtype.TextValuer: pgx appends the bytes as they are
// (the binary format of text is its bytes).
func (v *codeValue) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: v.s, Valid: true}, nil
}

func newChunkSource(c *promo.Chunk) *chunkSource {
	src := &chunkSource{codes: string(c.Codes[:c.Count*c.CodeLen]), length: c.CodeLen, n: c.Count, i: -1}
	src.row = []any{&src.code, c.Batch.PromotionID}
	return src
}

func (s *chunkSource) Next() bool {
	s.i++
	if s.i >= s.n {
		return false
	}
	s.code.s = s.codes[s.i*s.length : (s.i+1)*s.length]
	return true
}

func (s *chunkSource) Values() ([]any, error) { return s.row, nil }
func (s *chunkSource) Err() error             { return nil }
