package sqlserver

import (
	"bytes"
	"context"
	"fmt"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/sqlstore"
)

// SQL Server's bulk path for the core's chunk commit (sqlstore.Bulk): the
// fast path bulk-copies the codes straight into codes on the chunk's
// transaction; a collision (2627 on the primary key, reported when the copy
// is flushed) makes the core roll back and redo the chunk through
// insertCodesSkipping, whose statements skip existing and repeated codes.

// bulkCodes is the bulk copy of the chunk fast path. Column names must match
// the table's exactly (the driver matches them as strings). used is sent
// explicitly rather than left to its default. No TABLOCK: several workers
// copy into codes at once. sorted says the rows come in the clustered key's
// order (code, binary collation = byte order): the ORDER hint then lets the
// server insert them without sorting them first. The hint must be true (the
// server checks it and fails the copy otherwise), so it is given only when
// the chunk was checked to be in strictly ascending byte order.
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

// copyCodes bulk-copies the chunk's codes into codes on tx. The rows stream to
// the server as they are added; the server's verdict (a duplicate key among
// them) comes back only when the copy is flushed by an Exec without
// arguments, so that is where a 2627 shows up.
func copyCodes(ctx context.Context, tx *sqlstore.SQLTx, c *promo.Chunk) error {
	// Prepared on the transaction, so that the copy runs on its connection
	// and in it.
	stmt, err := tx.Tx.PrepareContext(ctx, bulkCodes(c.Count, ascending(c)))
	if err != nil {
		return fmt.Errorf("prepare bulk copy: %w", err)
	}
	defer stmt.Close()
	pid := c.Batch.PromotionID
	for i := range c.Count {
		// The code is a sub-slice of the chunk: the driver copies its bytes
		// into the outgoing packet (varchar column: the bytes as they are).
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
	// A flush without error inserted every row: INSERT BULK is all or
	// nothing, and codes_pk does not ignore duplicates. The count is a
	// sanity check; 0 means none was reported (NOCOUNT on).
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
	for len(codes) > 0 {
		n := min(len(codes), maxValuesRows)
		args = append(args[:0], promotionID)
		for _, code := range codes[:n] {
			args = append(args, mssql.VarChar(code))
		}
		var k int64
		if err := tx.QueryRow(ctx, qInsertCodesSkipping(n), args...).Scan(&k); err != nil {
			return 0, fmt.Errorf("insert %d codes: %w", n, err)
		}
		if k < 0 || k > int64(n) {
			return 0, fmt.Errorf("insert %d codes: server reports %d rows inserted", n, k)
		}
		inserted += k
		codes = codes[n:]
	}
	return inserted, nil
}
