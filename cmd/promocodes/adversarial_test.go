//go:build integration

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestAdversarialFrozenGenerator is the adversarial suite's case for an
// admin's cancel and delete against a generator frozen mid-chunk: the real
// generator process is SIGSTOPped while its chunk transaction holds a batch
// row lock (checked with FOR UPDATE NOWAIT), then the cancel (and, on a
// second promotion, the delete) must answer at once, and when the process
// resumes nothing past the chunks already in flight may commit. PostgreSQL: separate generator
// processes share a database there; SQLite has one write lock for the whole
// file, which a frozen writer holds against every other writer, so the case
// does not apply to it (its line says so).
func TestAdversarialFrozenGenerator(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Logf("adversarial: cancel/delete with a frozen generator [sqlite]: not applicable: SQLite has one write lock " +
			"for the whole database, held by a writer frozen mid-transaction against every other writer (run separate " +
			"generator processes on PostgreSQL or SQL Server); the flag and commit gate are in its contract suite")
	})
	t.Run("postgres", func(t *testing.T) {
		s := newStack(t)
		s.startBroker()
		s.startAPI()
		gen := s.startGenerator("gen", "PROMOCODES_GENERATOR_CHUNKSIZE=20000")
		t.Cleanup(func() { _ = gen.cmd.Process.Signal(syscall.SIGCONT) }) // before the stack stops it

		cancelled := s.create(3_000_000)
		froze := s.freezeHoldingBatchLock(gen, cancelled)
		start := time.Now()
		code, body := s.do("POST", "/v1/promotions/"+cancelled+"/cancel", "")
		cancelTook := time.Since(start)
		var atCancel status
		_ = json.Unmarshal(body, &atCancel)
		if code != http.StatusOK || atCancel.Status != "cancelled" || cancelTook > 2*time.Second {
			t.Errorf("cancel with the generator frozen mid-chunk: %d after %v: %s; want 200 cancelled at once", code,
				cancelTook.Round(time.Millisecond), body)
		}

		deleted := s.create(3_000_000)
		_ = gen.cmd.Process.Signal(syscall.SIGCONT)
		froze2 := s.freezeHoldingBatchLock(gen, deleted)
		start = time.Now()
		dcode, dbody := s.do("DELETE", "/v1/promotions/"+deleted, "")
		deleteTook := time.Since(start)
		if dcode != http.StatusAccepted || deleteTook > 2*time.Second {
			t.Errorf("delete with the generator frozen mid-chunk: %d after %v: %s; want 202 at once", dcode,
				deleteTook.Round(time.Millisecond), dbody)
		}

		// Resume: a frozen chunk that had not passed its commit gate is
		// refused there; one frozen between the gate's read and its COMMIT
		// (a window of one statement) still lands. So after the cancel at
		// most one chunk per worker is added, and the count stays exact.
		_ = gen.cmd.Process.Signal(syscall.SIGCONT)
		time.Sleep(3 * time.Second)
		after := s.status(cancelled)
		rows, progress := s.rowsAndProgress(cancelled)
		const workers, chunk = 2, 20_000 // the generator's default workers; its chunk size above
		if after.Status != "cancelled" || rows != progress || rows != after.GeneratedCount ||
			after.GeneratedCount < atCancel.GeneratedCount || after.GeneratedCount > atCancel.GeneratedCount+workers*chunk {
			t.Errorf("after resuming: %s with %d codes (%d rows, progress %d); want cancelled, exact, and at most %d "+
				"(one chunk per worker) past the %d reported at the cancel",
				after.Status, after.GeneratedCount, rows, progress, workers*chunk, atCancel.GeneratedCount)
		}
		del := s.waitFor(deleted, 60*time.Second, "deleted", func(st status) bool { return st.Status == "deleted" })
		drows, _ := s.rowCount(deleted)
		if drows != 0 {
			t.Errorf("deleted promotion: %d code rows after the frozen generator resumed, want 0", drows)
		}
		outcome := fmt.Sprintf("generator SIGSTOPped holding a batch row lock (after %d and %d tries): cancel answered %d in %v "+
			"(generatedCount %d, still %d with %d rows 3 s after SIGCONT), delete answered %d in %v (then %s, %d rows)",
			froze, froze2, code, cancelTook.Round(time.Millisecond), atCancel.GeneratedCount, after.GeneratedCount, rows,
			dcode, deleteTook.Round(time.Millisecond), del.Status, drows)
		if t.Failed() {
			outcome = "FAILED: " + outcome
		}
		t.Logf("adversarial: cancel/delete with a frozen generator [postgres]: %s", outcome)
	})
}

// freezeHoldingBatchLock waits until the promotion is generating, then SIGSTOPs the
// generator until it is caught holding one of the promotion's batch rows
// (FOR UPDATE NOWAIT fails with lock_not_available); it returns the number
// of tries. The process is left stopped.
func (s *stack) freezeHoldingBatchLock(gen *proc, id string) int {
	s.t.Helper()
	s.waitFor(id, 60*time.Second, "generating", func(st status) bool { return st.GeneratedCount > 0 })
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close(ctx)
	pid, _ := strconv.ParseInt(id, 10, 64)
	q := `SELECT 1 FROM ` + pgx.Identifier{s.schema}.Sanitize() + `.batches WHERE promotion_id = $1 FOR UPDATE NOWAIT`
	for try := 1; try <= 200; try++ {
		_ = gen.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(50 * time.Millisecond)
		tx, err := conn.Begin(ctx)
		if err != nil {
			s.t.Fatal(err)
		}
		_, err = tx.Exec(ctx, q, pid)
		_ = tx.Rollback(ctx)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55P03" {
			return try
		}
		if err != nil {
			s.t.Fatalf("probe the batch locks: %v", err)
		}
		_ = gen.cmd.Process.Signal(syscall.SIGCONT)
		time.Sleep(time.Duration(10+try%7*5) * time.Millisecond)
	}
	s.t.Fatal("never caught the generator holding a batch row lock")
	return 0
}
