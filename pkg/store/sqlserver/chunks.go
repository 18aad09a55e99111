package sqlserver

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/internal/contract"
)

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

// CommitChunk commits one chunk: in one transaction it advances the batch's
// progress from c.From to c.From+c.Count (compare-and-set) and inserts exactly
// c.Count new codes. It returns the batch's new Done.
//
// The fast path bulk-copies the codes straight into the codes table, on the
// chunk's transaction. If a code collides with an existing one (2627 on the
// primary key, reported when the copy is flushed), the transaction is rolled
// back and the chunk redone on the fallback path: multi-row inserts that skip
// existing and repeated codes, and for each skipped code a further sequence
// number from c.CounterName rendered by c.Replace. A deadlock victim (1205,
// possible between fallback commits) is run again: SQL Server rolled it back
// whole.
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
	for attempt := 1; ; attempt++ {
		done, err = s.commitChunk(ctx, &c, fallback)
		switch {
		case err == nil || attempt == maxTxAttempts:
		case uniqueViolation(err):
			// On the fast path: a collision, redo the chunk on the fallback
			// path. On the fallback path: another transaction inserted one
			// of our codes between the check and the insert (no range
			// locks); run it again, the code now exists and is skipped.
			fallback = true
			continue
		case deadlocked(err):
			if perr := pause(ctx, attempt); perr != nil {
				err = perr
				break
			}
			continue
		}
		break
	}
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("commit chunk %d/%d [%d, +%d): %w", c.Batch.PromotionID, c.Batch.BatchNo, c.From, c.Count, err)
	}
	return done, err
}

func (s *Store) commitChunk(ctx context.Context, c *promo.Chunk, fallback bool) (int64, error) {
	tx, err := s.db.BeginTx(ctx, readCommitted)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	ref := c.Batch
	var done int64
	err = tx.QueryRowContext(ctx, qAdvance, ref.PromotionID, int32(ref.BatchNo), int64(c.Count), c.From).Scan(&done)
	if errors.Is(err, sql.ErrNoRows) {
		_ = tx.Rollback()
		return 0, s.notAdvanced(ctx, c)
	}
	if err != nil {
		return 0, fmt.Errorf("advance progress: %w", err)
	}

	if !fallback {
		if err := copyCodes(ctx, tx, c); err != nil {
			return 0, err
		}
	} else {
		all := string(c.Codes[:c.Count*c.CodeLen]) // one copy; the codes are sub-strings of it
		codes := make([]string, c.Count)
		for i := range codes {
			codes[i] = all[i*c.CodeLen : (i+1)*c.CodeLen]
		}
		inserted, err := insertCodesSkipping(ctx, tx, codes, ref.PromotionID)
		if err != nil {
			return 0, err
		}
		if err := replaceMissing(ctx, tx, c, int64(c.Count)-inserted); err != nil {
			return 0, err
		}
	}
	var live bool
	if err := tx.QueryRowContext(ctx, qPromotionLive, ref.PromotionID).Scan(&live); err != nil {
		return 0, fmt.Errorf("check promotion is live: %w", err)
	}
	if !live {
		_ = tx.Rollback()
		if _, err := s.db.ExecContext(ctx, qCancelBatch, ref.PromotionID, int32(ref.BatchNo)); err != nil {
			return 0, fmt.Errorf("mark batch cancelled: %w", err)
		}
		return 0, contract.PromotionStopped(*c)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return done, nil
}

// copyCodes bulk-copies the chunk's codes into codes on tx. The rows stream to
// the server as they are added; the server's verdict (a duplicate key among
// them) comes back only when the copy is flushed by an Exec without
// arguments, so that is where a 2627 shows up.
func copyCodes(ctx context.Context, tx *sql.Tx, c *promo.Chunk) error {
	// Prepared on the transaction, so that the copy runs on its connection
	// and in it.
	stmt, err := tx.PrepareContext(ctx, bulkCodes(c.Count, ascending(c)))
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
func insertCodesSkipping(ctx context.Context, tx *sql.Tx, codes []string, promotionID int64) (int64, error) {
	var inserted int64
	args := make([]any, 0, 1+min(len(codes), maxValuesRows))
	for len(codes) > 0 {
		n := min(len(codes), maxValuesRows)
		args = append(args[:0], promotionID)
		for _, code := range codes[:n] {
			args = append(args, mssql.VarChar(code))
		}
		var k int64
		if err := tx.QueryRowContext(ctx, qInsertCodesSkipping(n), args...).Scan(&k); err != nil {
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

// replaceMissing inserts missing further codes, rendered by c.Replace from
// sequence numbers reserved from c.CounterName in the chunk's transaction,
// skipping any that collide again.
func replaceMissing(ctx context.Context, tx *sql.Tx, c *promo.Chunk, missing int64) error {
	var (
		buf   []byte
		codes []string
	)
	for round := 0; missing > 0; round++ {
		if round == contract.MaxReplaceRounds || c.Replace == nil || c.CounterName == "" {
			return contract.NoReplacement(*c, missing)
		}
		start, err := reserve(ctx, tx, c.CounterName, missing)
		if err != nil {
			return fmt.Errorf("replacement codes: %w", err)
		}
		if err := contract.CheckReplacement(*c, start, missing); err != nil {
			return err
		}
		codes = codes[:0]
		for i := range missing {
			buf = c.Replace(buf[:0], uint64(start)+uint64(i))
			codes = append(codes, string(buf))
		}
		n, err := insertCodesSkipping(ctx, tx, codes, c.Batch.PromotionID)
		if err != nil {
			return fmt.Errorf("replacement codes: %w", err)
		}
		missing -= n
	}
	return nil
}

// notAdvanced explains, after the rollback, why the progress update matched
// no row.
func (s *Store) notAdvanced(ctx context.Context, c *promo.Chunk) error {
	var done, codeCount int64
	err := s.db.QueryRowContext(ctx, qBatchProgress, c.Batch.PromotionID, int32(c.Batch.BatchNo)).Scan(&done, &codeCount)
	if errors.Is(err, sql.ErrNoRows) {
		return contract.NotAdvanced(*c, false, 0, 0)
	}
	if err != nil {
		return fmt.Errorf("read batch progress: %w", err)
	}
	return contract.NotAdvanced(*c, true, done, codeCount)
}
