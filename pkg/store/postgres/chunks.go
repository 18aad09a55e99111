package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/promocodes/promocodes/pkg/promo"
)

// PostgreSQL's bulk path for the core's chunk commit (sqlstore.Bulk): binary
// COPY straight into codes; on a collision (23505) the core rolls back and
// redoes the chunk through a staging table with ON CONFLICT DO NOTHING.

var codeColumns = []string{"code", "promotion_id"}

// copyChunk is the fast path: the progress UPDATE's transaction COPYs the
// chunk's codes into codes.
func copyChunk(ctx context.Context, tx pgxTx, c *promo.Chunk) error {
	n, err := tx.tx.CopyFrom(ctx, pgx.Identifier{"codes"}, codeColumns, chunkRows(c))
	if err != nil {
		return fmt.Errorf("copy codes: %w", err)
	}
	if n != int64(c.Count) {
		return fmt.Errorf("copy codes: %d rows copied, want %d", n, c.Count)
	}
	return nil
}

// insertChunk is the skipping path: COPY into a staging table, then insert
// what does not conflict; it returns how many codes it inserted.
func insertChunk(ctx context.Context, tx pgxTx, c *promo.Chunk) (int64, error) {
	if _, err := tx.tx.Exec(ctx, qCreateStaging); err != nil {
		return 0, fmt.Errorf("create staging table: %w", err)
	}
	if _, err := tx.tx.CopyFrom(ctx, pgx.Identifier{"codes_staging"}, codeColumns, chunkRows(c)); err != nil {
		return 0, fmt.Errorf("copy codes to staging: %w", err)
	}
	tag, err := tx.tx.Exec(ctx, qInsertFromStaging)
	if err != nil {
		return 0, fmt.Errorf("insert staged codes: %w", err)
	}
	return tag.RowsAffected(), nil
}

// insertCodes inserts replacement codes skipping those that exist.
func insertCodes(ctx context.Context, tx pgxTx, codes []string, promotionID int64) (int64, error) {
	tag, err := tx.tx.Exec(ctx, qInsertCodesArray, codes, promotionID)
	if err != nil {
		return 0, fmt.Errorf("insert %d codes: %w", len(codes), err)
	}
	return tag.RowsAffected(), nil
}

// chunkRows feeds a chunk's codes to CopyFrom without allocating per row:
// the row slice, and the pointers in it, are made once per chunk; code
// implements pgtype.TextValuer over a sub-string of one per-chunk string.
func chunkRows(c *promo.Chunk) pgx.CopyFromSource {
	codes, n := string(c.Codes[:c.Count*c.CodeLen]), c.CodeLen
	var code codeValue
	row := []any{&code, c.Batch.PromotionID}
	return pgx.CopyFromSlice(c.Count, func(i int) ([]any, error) {
		code.s = codes[i*n : (i+1)*n]
		return row, nil
	})
}

type codeValue struct{ s string }

// TextValue implements pgtype.TextValuer: pgx appends the bytes as they are
// (the binary format of text is its bytes).
func (v *codeValue) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: v.s, Valid: true}, nil
}
