//go:build integration

package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/kafka"
)

// appName is a DSN that names the process in pg_stat_activity.
func (s *stack) appName(name string) string {
	u, err := url.Parse(s.dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", s.schema)
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return "PROMOCODES_DB_DSN=" + u.String()
}

// frozenTx is the transaction a stopped generator left open.
type frozenTx struct {
	pid     int    // the server process of its session
	xid     string // its transaction id
	state   string // idle in transaction, or active (mid-statement)
	batchNo int    // the batch whose row it holds
	done    int64  // that batch's committed progress when it froze
}

// freezeMidChunk stops the generator process p (SIGSTOP) at a moment its
// session has written in an open transaction (the chunk's progress update:
// the batch row is locked), retrying until it catches one.
func (s *stack) freezeMidChunk(conn *pgx.Conn, p *proc, app string, promotionID int64) frozenTx {
	s.t.Helper()
	ctx := context.Background()
	const q = `SELECT pid, backend_xid::text, xact_start FROM pg_stat_activity
		WHERE application_name = $1 AND backend_xid IS NOT NULL ORDER BY xact_start LIMIT 1`
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var (
			f     frozenTx
			start time.Time
		)
		if err := conn.QueryRow(ctx, q, app).Scan(&f.pid, &f.xid, &start); errors.Is(err, pgx.ErrNoRows) {
			time.Sleep(2 * time.Millisecond)
			continue
		} else if err != nil {
			s.t.Fatal(err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			s.t.Fatal(err)
		}
		// Still in that transaction once stopped?
		var (
			xid    *string
			start2 *time.Time
		)
		err := conn.QueryRow(ctx, `SELECT backend_xid::text, xact_start, state FROM pg_stat_activity WHERE pid = $1`, f.pid).
			Scan(&xid, &start2, &f.state)
		if err == nil && xid != nil && *xid == f.xid && start2 != nil && start2.Equal(start) {
			batches := pgx.Identifier{s.schema, "batches"}.Sanitize()
			err := conn.QueryRow(ctx, `SELECT batch_no, done FROM `+batches+` WHERE promotion_id = $1 AND xmax = $2::xid`,
				promotionID, f.xid).Scan(&f.batchNo, &f.done)
			if err == nil {
				return f
			}
		}
		if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			s.t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("never caught %s inside a chunk transaction", app)
	return frozenTx{}
}

// A generator frozen mid-chunk (SIGSTOP, as a long GC pause or a frozen VM
// would) for five minutes, with a second generator running: the frozen
// session's row lock must not stall the batch beyond the generator's
// database session limits, nothing may be parked, and the count stays
// exact when the frozen process runs again.
func TestAdversarialFrozenGeneratorFiveMinutes(t *testing.T) {
	if testing.Short() {
		t.Skip("a five-minute freeze")
	}
	freeze := 5 * time.Minute
	if v, err := time.ParseDuration(os.Getenv("PROMOCODES_TEST_FREEZE")); err == nil {
		freeze = v // shorter for a quick local run; the suite freezes five minutes
	}
	const n = 1_500_000
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	genA := s.startGenerator("gen-a", s.appName("gen-a"), "PROMOCODES_GENERATOR_CHUNKSIZE=25000")
	s.startGenerator("gen-b", s.appName("gen-b"), "PROMOCODES_GENERATOR_CHUNKSIZE=25000")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	id := s.create(n)
	pid, _ := strconv.ParseInt(id, 10, 64)
	f := s.freezeMidChunk(conn, genA, "gen-a", pid)
	frozenAt := time.Now()
	t.Logf("gen-a stopped %s on batch %d (done %d), session %d", f.state, f.batchNo, f.done, f.pid)

	// Watch the frozen batch: when does its progress move again, and how
	// long did the other generator wait on the lock meanwhile?
	batches := pgx.Identifier{s.schema, "batches"}.Sanitize()
	var resumed, completed time.Duration
	var waitedOn time.Duration
	lastWait := time.Time{}
	for time.Since(frozenAt) < freeze-5*time.Second && completed == 0 {
		var done int64
		if err := conn.QueryRow(ctx, `SELECT done FROM `+batches+` WHERE promotion_id = $1 AND batch_no = $2`, pid, f.batchNo).
			Scan(&done); err != nil {
			t.Fatal(err)
		}
		if resumed == 0 && done > f.done {
			resumed = time.Since(frozenAt)
		}
		var waiting bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE application_name = 'gen-b' AND $1::int = ANY(pg_blocking_pids(pid)))`, f.pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			if !lastWait.IsZero() {
				waitedOn += time.Since(lastWait)
			}
			lastWait = time.Now()
		} else {
			lastWait = time.Time{}
		}
		if st := s.status(id); st.Status == "completed" {
			completed = time.Since(frozenAt)
		} else if st.Batches.Parked > 0 {
			t.Fatalf("a batch was parked while gen-a was frozen: %+v", st)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if resumed == 0 || completed == 0 {
		t.Fatalf("with gen-a frozen %s: the frozen batch resumed after %v, the promotion completed after %v (0: never)",
			time.Since(frozenAt).Round(time.Second), resumed, completed)
	}
	// Bound: the frozen session ends after generator.db.
	// idleInTransactionTimeout (30s) between statements, or, frozen inside
	// the chunk's COPY, when the blocked worker finds the COPY older than
	// statementTimeout (30s); the taker-over's next attempt comes within a
	// lock timeout (10s). gen-b must hold gen-a's partitions by then: the
	// consumer group hands a stopped member's partitions over within
	// kafka.StoppedMemberHandover (13 s), also when gen-a stopped while
	// leading a rebalance, so the group adds nothing to the session limit.
	bound := max(30*time.Second, kafka.StoppedMemberHandover) + 10*time.Second + 10*time.Second
	if resumed > bound {
		t.Errorf("the frozen batch resumed %v after the freeze; the session limits bound it to %v", resumed, bound)
	}
	time.Sleep(time.Until(frozenAt.Add(freeze)))
	if err := genA.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second) // gen-a runs again: its session is gone, its partitions are gen-b's
	select {
	case <-genA.done:
		t.Errorf("gen-a exited after it was resumed: %v", genA.err)
	default:
	}
	st := s.status(id)
	dead, errs := len(s.events(s.topics.Dead)), len(s.events(s.topics.Error))
	if st.Status != "completed" || st.Batches.Parked != 0 || dead != 0 {
		t.Fatalf("after the freeze: status %+v, %d events in the dead-letter topic; want completed, nothing parked", st, dead)
	}
	s.assertExact(id, n)
	rows, distinct := s.rowCount(id)
	t.Logf("adversarial: %s [%s]: %s", "5-minute SIGSTOP of a generator mid-chunk", "postgres", fmt.Sprintf(
		"frozen %s holding batch %d; its row moved again %.1f s after the freeze (bound 50 s: idle-in-transaction or COPY limit 30s + lock timeout 10s + 10s), "+
			"gen-b waited on the lock %.1f s; promotion completed %.1f s after the freeze while gen-a stayed frozen %s; "+
			"%d parked, %d remainders on the error topic, %d distinct codes in %d rows (want 1500000) after gen-a resumed",
		strings.ReplaceAll(f.state, " ", "-"), f.batchNo, resumed.Seconds(), waitedOn.Seconds(), completed.Seconds(), freeze,
		dead, errs, distinct, rows))
}
