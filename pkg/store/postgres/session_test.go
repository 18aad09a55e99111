package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
)

// Every connection of the pool carries the session limits and TCP settings
// as the server sees them, and names itself.
func TestSessionLimitsReachTheServer(t *testing.T) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, postgres.Config{DSN: postgrestest.DSN(t), Schema: postgrestest.Schema(t), MaxConns: 2,
		StatementTimeout: 61 * time.Second, LockTimeout: 2500 * time.Millisecond, IdleInTransactionTimeout: 7 * time.Second,
		KeepAlive: 9 * time.Second, TCPUserTimeout: 20 * time.Second, ApplicationName: "promocodes-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[string]string{"statement_timeout": "61s", "lock_timeout": "2500ms",
		"idle_in_transaction_session_timeout": "7s", "tcp_keepalives_idle": "9", "tcp_keepalives_interval": "9",
		"tcp_keepalives_count": "3", "tcp_user_timeout": "20000", "application_name": "promocodes-test"}
	for name, v := range want {
		var got string
		if err := postgres.Pool(s).QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	// The idle-in-transaction limit ends a session that holds a row lock
	// and goes quiet, and lock_timeout ends a wait for it: 55P03.
	short, err := postgres.Open(ctx, postgres.Config{DSN: postgrestest.DSN(t), Schema: postgrestest.Schema(t),
		LockTimeout: 200 * time.Millisecond, IdleInTransactionTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	pool := postgres.Pool(short)
	if _, err := pool.Exec(ctx, "CREATE TABLE held (id int PRIMARY KEY); INSERT INTO held VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "SELECT 1 FROM held WHERE id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, "UPDATE held SET id = 1 WHERE id = 1")
	if !short.LockTimeout(err) {
		t.Fatalf("waiting behind the holder: %v; want a lock timeout (55P03)", err)
	}
	start := time.Now()
	for {
		_, err := pool.Exec(ctx, "UPDATE held SET id = 1 WHERE id = 1")
		if err == nil {
			break
		}
		if !short.LockTimeout(err) || time.Since(start) > 10*time.Second {
			t.Fatalf("after %s: %v", time.Since(start), err)
		}
	}
	t.Logf("the quiet holder's session was ended and its lock free %s after the first wait", time.Since(start).Round(time.Millisecond))
	if err := holder.Commit(ctx); err == nil || errors.Is(err, pgx.ErrTxClosed) {
		t.Fatalf("the holder committed after its session was ended: %v", err)
	}
}

func TestSessionConfigValidate(t *testing.T) {
	for _, c := range []postgres.Config{{DSN: "x", LockTimeout: -1}, {DSN: "x", StatementTimeout: time.Microsecond},
		{DSN: "x", IdleInTransactionTimeout: 30 * 24 * time.Hour}, {DSN: "x", TCPUserTimeout: -time.Second}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
}

// stalledRows is a CopyFrom source that stops in the middle, as a client
// frozen while it streams a chunk.
type stalledRows struct {
	n       int
	stalled chan struct{}
	release chan struct{}
}

func (s *stalledRows) Next() bool {
	s.n++
	if s.n == 100 {
		close(s.stalled)
		<-s.release
	}
	return s.n < 1000
}
func (s *stalledRows) Values() ([]any, error) { return []any{s.n}, nil }
func (s *stalledRows) Err() error             { return nil }

// statement_timeout does not cancel a COPY whose client stopped sending; a
// blocked worker ends such a session once it is older than the statement
// timeout, and only then.
func TestEndFrozenCopies(t *testing.T) {
	ctx := context.Background()
	dsn, schema := postgrestest.DSN(t), postgrestest.Schema(t)
	s, err := postgres.Open(ctx, postgres.Config{DSN: dsn, Schema: schema, StatementTimeout: 700 * time.Millisecond,
		LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pool := postgres.Pool(s)
	if _, err := pool.Exec(ctx, "CREATE TABLE sink (v int); CREATE TABLE held (id int PRIMARY KEY); INSERT INTO held VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	// The frozen client: a session of the same store, mid-COPY, holding a row lock.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE held SET id = 1"); err != nil {
		t.Fatal(err)
	}
	src := &stalledRows{stalled: make(chan struct{}), release: make(chan struct{})}
	copied := make(chan error, 1)
	go func() {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"sink"}, []string{"v"}, src)
		copied <- err
	}()
	<-src.stalled
	time.Sleep(100 * time.Millisecond)
	if n, err := s.EndFrozenCopies(ctx); err != nil || n != 0 {
		t.Fatalf("a COPY younger than the statement timeout: ended %d (%v), want none", n, err)
	}
	time.Sleep(time.Second) // past the statement timeout, which did not cancel it
	if _, err := pool.Exec(ctx, "UPDATE held SET id = 1"); !s.LockTimeout(err) {
		t.Fatalf("the frozen COPY's lock: %v; want still held (a lock timeout)", err)
	}
	if n, err := s.EndFrozenCopies(ctx); err != nil || n != 1 {
		t.Fatalf("ended %d frozen COPY sessions (%v), want 1", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := pool.Exec(ctx, "UPDATE held SET id = 1")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lock is still held after its session was ended: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(src.release)
	if err := <-copied; err == nil {
		t.Error("the ended session's COPY succeeded")
	}
}
