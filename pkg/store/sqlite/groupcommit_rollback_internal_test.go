package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/promocodes/promocodes/pkg/promo"
)

// rollbackDriver is modernc's driver, but while fails > 0 a run of the
// statement text fail rolls the connection's transaction back and answers
// an error instead (fails counts down): what SQLite does by itself when a
// statement meets SQLITE_IOERR, SQLITE_FULL or SQLITE_NOMEM. outside counts
// the statements run after such a rollback before the next BEGIN (but
// ROLLBACK ...): each one committed on its own, outside the transaction.
type rollbackDriver struct {
	fail           string
	fails, outside atomic.Int64
	rolledBack     atomic.Bool
}

// rawConn and rawStmt are what modernc's connections and statements do.
type rawConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

type rawStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

func (d *rollbackDriver) Open(name string) (driver.Conn, error) {
	c, err := (&sqlite.Driver{}).Open(name)
	if err != nil {
		return nil, err
	}
	return &rollbackConn{c.(rawConn), d}, nil
}

type rollbackConn struct {
	rawConn
	d *rollbackDriver
}

// run is called before each statement: it counts one run outside a
// transaction, or makes query fail.
func (c *rollbackConn) run(ctx context.Context, query string) error {
	if c.d.rolledBack.Load() && !strings.HasPrefix(query, "ROLLBACK") {
		c.d.outside.Add(1)
	}
	if query != c.d.fail || c.d.fails.Add(-1) < 0 {
		return nil
	}
	if _, err := c.rawConn.ExecContext(ctx, "ROLLBACK", nil); err != nil {
		return fmt.Errorf("roll back to simulate SQLITE_IOERR: %w", err)
	}
	c.d.rolledBack.Store(true)
	return errors.New("disk I/O error (simulated: SQLite rolled the transaction back)")
}

func (c *rollbackConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.d.rolledBack.Store(false)
	return c.rawConn.BeginTx(ctx, opts)
}

func (c *rollbackConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.run(ctx, query); err != nil {
		return nil, err
	}
	return c.rawConn.ExecContext(ctx, query, args)
}

func (c *rollbackConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.run(ctx, query); err != nil {
		return nil, err
	}
	return c.rawConn.QueryContext(ctx, query, args)
}

func (c *rollbackConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *rollbackConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.rawConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &rollbackStmt{st.(rawStmt), c, query}, nil
}

type rollbackStmt struct {
	rawStmt
	c     *rollbackConn
	query string
}

func (s *rollbackStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.c.run(ctx, s.query); err != nil {
		return nil, err
	}
	return s.rawStmt.ExecContext(ctx, args)
}

func (s *rollbackStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.c.run(ctx, s.query); err != nil {
		return nil, err
	}
	return s.rawStmt.QueryContext(ctx, args)
}

var registerRollback sync.Once

// theRollbackDriver is the one registered, as "sqlite-rollback".
var theRollbackDriver = &rollbackDriver{}

// TestGroupMemberRollsTheTransactionBack: a group's member whose read
// (writing nothing: a key's replay reads its record) fails after SQLite
// rolled the whole transaction back, simulated by the driver. Once (the
// first run only): the group is written again with savepoints and every
// member answers as if alone, its rows committed. Every time: the savepoint
// is gone with the transaction, and every member is answered the error,
// with nothing committed. Either way no statement runs outside the group's
// transaction. Before, the members after the read ran outside it (each
// statement committed on its own), then the group's COMMIT failed: every
// member was answered an error, the later ones' rows committed.
func TestGroupMemberRollsTheTransactionBack(t *testing.T) {
	registerRollback.Do(func() { sql.Register("sqlite-rollback", theRollbackDriver) })
	d := theRollbackDriver
	d.fail = statements.StoredOutcome
	old := writerDriver
	writerDriver = "sqlite-rollback"
	s, path := migratedFile(t)
	writerDriver = old
	db := rawDB(t, path)
	ctx := context.Background()
	p, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "AR",
		Kind: promo.KindVanity, VanityCode: "AR", MaxUsagePerCode: 1000, PerUserLimit: 5}})
	if err != nil {
		t.Fatal(err)
	}
	req := func(user, key string) promo.RedeemRequest {
		r := promo.RedeemRequest{ID: storetestID(), EventID: storetestID(), Code: "AR", UserID: user, Now: time.Now().UTC()}
		if key != "" {
			r.IdempotencyKey, r.RequestHash = key, "h:"+user
		}
		return r
	}
	redeemed := 0
	for _, always := range []bool{false, true} {
		name := map[bool]string{false: "once", true: "always"}[always]
		target := req("target-"+name, "k-target-"+name)
		if out, err := s.Redeem(ctx, target); err != nil || out.Refused != "" {
			t.Fatalf("%s: target: %+v, %v", name, out, err)
		}
		redeemed++
		again := target
		again.ID, again.EventID = storetestID(), storetestID()
		reqs := []promo.RedeemRequest{req("before-"+name, "k-before-"+name), again,
			req("after1-"+name, ""), req("after2-"+name, "k-after2-"+name)}
		d.fails.Store(1)
		if always {
			d.fails.Store(1 << 20)
		}
		d.outside.Store(0)
		res, led := inOneGroupWith(t, s, path, req("lead-"+name, ""), reqs)
		d.fails.Store(0)
		if led.Err != nil {
			t.Errorf("%s: lead: %v", name, led.Err)
		}
		redeemed++
		if n := d.outside.Load(); n != 0 {
			t.Errorf("%s: %d statements ran outside the group's transaction", name, n)
		}
		for i, r := range reqs {
			var audit, events, uses, keys int
			for _, c := range []struct {
				n    *int
				q    string
				args []any
			}{
				{&audit, `SELECT count(*) FROM redemptions WHERE id = ?`, []any{r.ID}},
				{&events, `SELECT count(*) FROM events WHERE payload LIKE ?`, []any{`%"eventId":"` + r.EventID + `"%`}},
				{&uses, `SELECT COALESCE(sum(used), 0) FROM user_uses WHERE promotion_id = ? AND user_id = ?`, []any{p.ID, r.UserID}},
				{&keys, `SELECT count(*) FROM idempotency_keys WHERE idem_key = ?`, []any{r.IdempotencyKey}},
			} {
				if err := db.QueryRowContext(ctx, c.q, c.args...).Scan(c.n); err != nil {
					t.Fatal(err)
				}
			}
			if r.IdempotencyKey == "" {
				keys = uses
			}
			a := res[i]
			switch {
			case i == 1 && !always && (a.Err != nil || !a.Outcome.Replayed || a.Outcome.Redemption.ID != target.ID):
				t.Errorf("%s: the replay, its read failing once: %+v, %v; want the target's redemption", name, a.Outcome, a.Err)
			case i == 1: // its rows are the target's
			case !always && a.Err != nil:
				t.Errorf("%s: %s answered %v; want redeemed (the failing read was another member's, once)", name, r.UserID, a.Err)
			case always && a.Err == nil:
				t.Errorf("%s: %s answered %+v; want the group's error (its transaction is gone)", name, r.UserID, a.Outcome)
			case a.Err == nil && (audit != 1 || events != 1 || uses != 1 || keys != 1):
				t.Errorf("%s: %s answered redeemed: %d audit rows, %d events, %d uses, %d key records", name, r.UserID,
					audit, events, uses, keys)
			case a.Err != nil && (audit != 0 || events != 0 || uses != 0 || keys != 0):
				t.Errorf("%s: %s answered %v: committed %d audit rows, %d events, %d uses, %d key records", name, r.UserID,
					a.Err, audit, events, uses, keys)
			}
			if i != 1 && a.Err == nil {
				redeemed++
			}
		}
		if always && res[1].Err == nil {
			t.Errorf("%s: the replay whose read fails every time answered %+v", name, res[1].Outcome)
		}
		used, audit, events := codeTotals(t, db, "AR", p.ID)
		if used != redeemed || audit != redeemed || events != redeemed {
			t.Errorf("%s: %d answered redeemed: %d uses, %d audit rows, %d events", name, redeemed, used, audit, events)
		}
		t.Logf("%s: the replay answered %v; %d statements outside the transaction; %d redeemed = uses %d = audit rows %d = events %d",
			name, res[1].Err, d.outside.Load(), redeemed, used, audit, events)
	}
}
