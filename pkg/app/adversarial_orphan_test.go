package app

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the SQLite driver, for a writer outside the store

	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
)

// orphanProxy forwards TCP connections to a database. Once armed, a
// connection that sends a COMMIT is orphaned: from then on nothing is
// forwarded either way and nothing is closed, which is what a connection cut
// on the client's side looks like to the server (its session stays idle in
// its transaction, holding the transaction's row locks).
type orphanProxy struct {
	ln       net.Listener
	target   string
	armed    atomic.Bool
	orphaned atomic.Int32
	mu       sync.Mutex
	conns    []net.Conn
	stop     chan struct{}
}

func newOrphanProxy(t *testing.T, target string) *orphanProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &orphanProxy{ln: ln, target: target, stop: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() {
		close(p.stop)
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *orphanProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		var orphaned atomic.Bool
		go p.pipe(c, up, &orphaned, true)
		go p.pipe(up, c, &orphaned, false)
	}
}

// pipe copies src to dst until the connection is orphaned; then it stops
// reading (the peer's data waits, unacknowledged by nobody, in the buffers)
// until the test ends.
func (p *orphanProxy) pipe(src, dst net.Conn, orphaned *atomic.Bool, fromClient bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fromClient && p.armed.Load() && bytes.Contains(bytes.ToLower(buf[:n]), []byte("commit")) {
				if orphaned.CompareAndSwap(false, true) {
					p.orphaned.Add(1)
				}
			}
			if orphaned.Load() {
				<-p.stop
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF || orphaned.Load() {
				return
			}
			dst.Close()
			return
		}
		if orphaned.Load() {
			<-p.stop
			return
		}
	}
}

// redeemUntil redeems code on url as user, as a checkout does: retrying the
// same order with the same Idempotency-Key until it answers 201 or within
// passes. It returns the time it took and the answers on the way.
func redeemUntil(t *testing.T, url, code, user string, within time.Duration) (time.Duration, []string) {
	t.Helper()
	start := time.Now()
	var others []string
	for time.Since(start) < within {
		st, body := call(t, "POST", url+"/v1/codes/"+code+"/redemptions", `{"userId":"`+user+`","orderId":"o-1"}`,
			"Idempotency-Key", "order-"+user+"-"+code)
		if st == http.StatusCreated {
			return time.Since(start), others
		}
		others = append(others, fmt.Sprintf("%d %v", st, body["reason"]))
		time.Sleep(100 * time.Millisecond)
	}
	return 0, others
}

// A connection cut on an API replica's side in the middle of a transaction
// on a code (a reservation: on PostgreSQL a redemption is one statement in
// autocommit, with no COMMIT to cut) leaves its database session idle in its
// transaction, holding the code's row lock. The other replica must redeem the code again within the
// configured bound (api.db.idleInTransactionTimeout), not for as long as the
// orphaned socket stays. SQLite has no connection to orphan: there the
// counterpart is a writer that holds the database's write lock and never
// finishes, and the bound is api.db.lockTimeout (SQLite's busy timeout).
func TestAdversarialOrphanedConnection(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Broker(t)
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		db := testDatabase(t, "postgres")
		u, err := url.Parse(db.DSN)
		if err != nil {
			t.Fatal(err)
		}
		proxy := newOrphanProxy(t, u.Host)
		viaProxy := *u
		viaProxy.Host = proxy.ln.Addr().String()
		cut := db
		cut.DSN = viaProxy.String()
		cfgA := replicaConfig(t, cut, brokers, nil)
		cfgB := replicaConfig(t, db, brokers, nil)
		bound := cfgA.API.DB.IdleInTransactionTimeout
		a := startReplica(t, cfgA, "replica-a")
		b := startReplica(t, cfgB, "replica-b")
		code := fmt.Sprintf("ORPHAN%d", time.Now().UnixNano()%1_000_000)
		if st, body := call(t, "POST", b+"/v1/promotions", `{"name":"orphan","code":"`+code+`","maxUsagePerCode":10,"perUserLimit":1}`); st != http.StatusCreated {
			t.Fatalf("create: %d %v", st, body)
		}
		if st, body := call(t, "GET", a+"/v1/codes/"+code, ""); st != http.StatusOK {
			t.Fatalf("look-up through the proxy: %d %v", st, body)
		}
		// Replica A reserves a use; its connection is cut at the COMMIT.
		proxy.armed.Store(true)
		aDone := make(chan int, 1)
		go func() {
			// A shopper field sends the reservation down the store's
			// statement path (BEGIN, its statements, COMMIT): a reservation
			// without one is a single autocommit statement on PostgreSQL
			// (reserve_code), with no COMMIT to cut.
			st, _ := call(t, "POST", a+"/v1/codes/"+code+"/reservations", `{"userId":"alice","ttl":"10m","country":"DE"}`)
			aDone <- st
		}()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, db.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var orphanedAt time.Time
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var held bool
			if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
				WHERE l.relation = 'codes'::regclass AND l.mode = 'RowExclusiveLock' AND a.state LIKE 'idle in transaction%')`).
				Scan(&held); err != nil {
				t.Fatal(err)
			}
			if held {
				orphanedAt = time.Now()
				break
			}
		}
		if orphanedAt.IsZero() {
			t.Fatalf("no orphaned session came to hold the code's row lock (%d connections orphaned)", proxy.orphaned.Load())
		}
		took, others := redeemUntil(t, b, code, "bob", 3*bound+30*time.Second)
		if took == 0 {
			t.Fatalf("replica B could not redeem the code for %v after replica A's connection was cut: answers %v", 3*bound, others)
		}
		stA := <-aDone
		st, body := call(t, "GET", b+"/v1/codes/"+code, "")
		left, _ := body["usesLeft"].(float64)
		if st != http.StatusOK || left != 9 {
			t.Fatalf("after the cut: %d %v; want 9 uses left (A's reservation rolled back, B's redemption counted)", st, body)
		}
		if took > bound+10*time.Second {
			t.Errorf("replica B redeemed %v after the cut; the bound is api.db.idleInTransactionTimeout %v", took, bound)
		}
		t.Logf("adversarial: %s [%s]: %s", "orphaned database connection mid-reservation", "postgres", fmt.Sprintf(
			"replica A's connection cut at COMMIT holding the code's row lock (%d connections orphaned); replica B redeemed the code "+
				"%.1f s later (api.db.idleInTransactionTimeout %s; answers before: %v); A's request answered %d, its hold rolled back: 9/10 uses left",
			proxy.orphaned.Load(), took.Seconds(), bound, others, stA))
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		db := testDatabase(t, "sqlite")
		cfg := replicaConfig(t, db, brokers, nil)
		cfg.API.DB.LockTimeout = 2 * time.Second
		b := startReplica(t, cfg, "replica")
		code := fmt.Sprintf("ORPHAN%d", time.Now().UnixNano()%1_000_000)
		if st, body := call(t, "POST", b+"/v1/promotions", `{"name":"orphan","code":"`+code+`","maxUsagePerCode":10,"perUserLimit":1}`); st != http.StatusCreated {
			t.Fatalf("create: %d %v", st, body)
		}
		// Another process on the file takes the write lock and never finishes.
		holder, err := sql.Open("sqlite", "file:"+db.DSN+"?_pragma=busy_timeout(1000)&_txlock=immediate")
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Close()
		tx, err := holder.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`UPDATE counters SET next = next WHERE 0`); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		st, body := call(t, "POST", b+"/v1/codes/"+code+"/redemptions", `{"userId":"bob","orderId":"b-1"}`)
		waited := time.Since(start)
		// The redemption waits for the process's one writer connection
		// (behind the relays' and the roll-up's attempts, each up to the
		// busy timeout), then its own busy timeout; the request's database
		// deadline (the API's DBTimeout, 10 s) bounds it all.
		const requestDeadline = 10 * time.Second
		if st != http.StatusServiceUnavailable || waited > requestDeadline+5*time.Second {
			t.Fatalf("redeeming while another process holds the write lock: %d %v after %v; want 503 within the request's database deadline %v",
				st, body, waited, requestDeadline)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		took, others := redeemUntil(t, b, code, "bob", 10*time.Second)
		if took == 0 {
			t.Fatalf("no redemption after the write lock was released: %v", others)
		}
		t.Logf("adversarial: %s [%s]: %s", "orphaned database connection mid-redemption", "sqlite", fmt.Sprintf(
			"no connection to orphan (embedded); a writer holding the write lock and never finishing: the redemption answered %d after %.1f s "+
				"(api.db.lockTimeout, SQLite's busy timeout, %s), not hung; released: redeemed %.2f s later",
			st, waited.Seconds(), cfg.API.DB.LockTimeout, took.Seconds()))
	})
}
