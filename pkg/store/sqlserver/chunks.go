package sqlserver

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// SQL Server's bulk path for the core's chunk commit (sqlstore.Bulk): a bulk
// copy into codes; a collision (2627, reported when the copy is flushed)
// makes the core redo the chunk through insertCodesSkipping.

// bulkCodes is the fast path's bulk copy (column names exactly the table's;
// no TABLOCK: workers copy concurrently). sorted gives the ORDER hint, which
// spares the server a sort but fails the copy if untrue.
func bulkCodes(rows int, sorted bool) string {
	opts := mssql.BulkOptions{RowsPerBatch: rows}
	if sorted {
		opts.Order = []string{"code ASC"}
	}
	return mssql.CopyIn("codes", opts, "code", "promotion_id", "used")
}

// ascending reports whether the chunk's codes are in strictly ascending
// byte order (the generator sorts them; duplicates are not).
func ascending(c *promo.Chunk) bool {
	for i := 1; i < c.Count; i++ {
		if bytes.Compare(c.Code(i-1), c.Code(i)) >= 0 {
			return false
		}
	}
	return true
}

// copyCodes bulk-copies the chunk's codes into codes on tx (prepared there:
// on its connection). The rows stream as they are added; a duplicate key
// (2627) comes back when an Exec without arguments flushes the copy.
func copyCodes(ctx context.Context, tx *sqlstore.SQLTx, c *promo.Chunk) error {
	stmt, err := tx.Tx.PrepareContext(ctx, bulkCodes(c.Count, ascending(c)))
	if err != nil {
		return fmt.Errorf("prepare bulk copy: %w", err)
	}
	defer stmt.Close()
	pid := c.Batch.PromotionID
	for i := range c.Count {
		if _, err := stmt.ExecContext(ctx, c.Code(i), pid, zero); err != nil {
			// Finish the half-sent copy so that the connection is in a
			// known state for the rollback; its own error adds nothing.
			_, _ = stmt.ExecContext(ctx)
			return fmt.Errorf("bulk copy code %d of %d: %w", i, c.Count, err)
		}
	}
	res, err := stmt.ExecContext(ctx)
	if err != nil {
		return fmt.Errorf("bulk copy %d codes: %w", c.Count, err)
	}
	// INSERT BULK is all or nothing; the count is a sanity check (0: none
	// reported, NOCOUNT on).
	if n, err := res.RowsAffected(); err == nil && n != int64(c.Count) && n != 0 {
		return fmt.Errorf("bulk copy: server reports %d rows copied, want %d", n, c.Count)
	}
	return nil
}

// zero is the initial use count of a bulk-copied code, boxed once.
var zero any = int32(0)

// insertCodesSkipping inserts codes for a promotion on tx, skipping those
// already present (in the table or earlier in codes), in statements of up to
// maxValuesRows codes, and returns how many it inserted.
func insertCodesSkipping(ctx context.Context, tx *sqlstore.SQLTx, codes []string, promotionID int64) (int64, error) {
	var inserted int64
	args := make([]any, 0, 1+min(len(codes), maxValuesRows))
	for part := range slices.Chunk(codes, maxValuesRows) {
		args = append(args[:0], promotionID)
		for _, code := range part {
			args = append(args, mssql.VarChar(code))
		}
		var k int64
		if err := tx.QueryRow(ctx, qInsertCodesSkipping(len(part)), args...).Scan(&k); err != nil {
			return 0, fmt.Errorf("insert %d codes: %w", len(part), err)
		}
		if k < 0 || k > int64(len(part)) {
			return 0, fmt.Errorf("insert %d codes: server reports %d rows inserted", len(part), k)
		}
		inserted += k
	}
	return inserted, nil
}
