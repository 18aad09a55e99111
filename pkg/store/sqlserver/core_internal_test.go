package sqlserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/promocodes/promocodes/pkg/promo"
)

// The shared core runs SQL Server's statements with the argument types that
// decide whether SQL Server uses its indexes (queries.go): these tests run
// the core's operations on a database/sql driver that records every
// statement with its arguments as the store passed them (it keeps Go types,
// as go-mssqldb's does) and answers from a script.

type call struct {
	query string
	args  []any
}

type fakeServer struct {
	mu    sync.Mutex
	calls []call
	// answer returns the result of a query (nil: no rows) or an error.
	answer func(q string, args []any) ([][]driver.Value, error)
}

func (f *fakeServer) record(q string, args []driver.NamedValue) []any {
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{q, vals})
	return vals
}

func (f *fakeServer) Connect(context.Context) (driver.Conn, error) { return &fakeConn{f}, nil }
func (f *fakeServer) Driver() driver.Driver                        { return nil }

type fakeConn struct{ f *fakeServer }

func (c *fakeConn) Prepare(q string) (driver.Stmt, error)    { return &fakeStmt{c.f, q}, nil }
func (c *fakeConn) Close() error                             { return nil }
func (c *fakeConn) Begin() (driver.Tx, error)                { return nil, errors.New("BeginTx only") }
func (c *fakeConn) CheckNamedValue(*driver.NamedValue) error { return nil } // keep the Go types
func (c *fakeConn) BeginTx(_ context.Context, o driver.TxOptions) (driver.Tx, error) {
	c.f.record(fmt.Sprintf("BEGIN %v", sql.IsolationLevel(o.Isolation)), nil)
	return fakeTx{c.f}, nil
}

type fakeTx struct{ f *fakeServer }

func (t fakeTx) Commit() error   { t.f.record("COMMIT", nil); return nil }
func (t fakeTx) Rollback() error { t.f.record("ROLLBACK", nil); return nil }

type fakeStmt struct {
	f *fakeServer
	q string
}

func (s *fakeStmt) Close() error  { return nil }
func (s *fakeStmt) NumInput() int { return -1 }
func (s *fakeStmt) Exec([]driver.Value) (driver.Result, error) {
	return nil, errors.New("ExecContext only")
}
func (s *fakeStmt) Query([]driver.Value) (driver.Rows, error) {
	return nil, errors.New("QueryContext only")
}

func (s *fakeStmt) ExecContext(_ context.Context, args []driver.NamedValue) (driver.Result, error) {
	vals := s.f.record(s.q, args)
	if _, err := s.f.answer(s.q, vals); err != nil {
		return nil, err
	}
	if strings.HasPrefix(s.q, "INSERTBULK") {
		return driver.RowsAffected(0), nil // no count, as with NOCOUNT on
	}
	return driver.RowsAffected(1), nil
}

func (s *fakeStmt) QueryContext(_ context.Context, args []driver.NamedValue) (driver.Rows, error) {
	vals := s.f.record(s.q, args)
	rows, err := s.f.answer(s.q, vals)
	if err != nil {
		return nil, err
	}
	cols := 30 // enough for a query that answers no rows
	if len(rows) > 0 {
		cols = len(rows[0])
	}
	return &recRows{cols: make([]string, cols), vals: rows}, nil
}

// types names the Go types of args, with a time's location: "time.Time/UTC".
func types(args []any) string {
	var b []string
	for _, a := range args {
		if t, ok := a.(time.Time); ok {
			b = append(b, "time.Time/"+t.Location().String())
			continue
		}
		b = append(b, fmt.Sprintf("%T", a))
	}
	return strings.Join(b, ",")
}

// script answers the core's statements as a database would; flushErr is what
// the bulk copy's flush returns.
func script(flushErr error) func(q string, args []any) ([][]driver.Value, error) {
	return func(q string, args []any) ([][]driver.Value, error) {
		switch {
		case q == statements.PromotionByKey:
			return nil, nil
		case q == statements.Reserve:
			return [][]driver.Value{{int64(1000)}}, nil
		case q == statements.InsertPromotion:
			return [][]driver.Value{{int64(7)}}, nil
		case q == statements.Advance:
			return [][]driver.Value{{int64(4)}}, nil
		case strings.HasPrefix(q, "INSERTBULK") && len(args) == 0:
			return nil, flushErr
		case strings.HasPrefix(q, "INSERT INTO codes (code, promotion_id, used)\nSELECT"):
			return [][]driver.Value{{int64(len(args) - 1)}}, nil
		case q == statements.GetCode:
			return [][]driver.Value{{"ABCD", int64(7), int64(0), int64(1)}}, nil
		case q == statements.PromotionLive:
			return [][]driver.Value{{true}}, nil
		case q == statements.StatsTotals:
			return [][]driver.Value{{int64(0), int64(0), int64(0)}}, nil
		}
		return nil, nil
	}
}

func TestCoreArgumentTypes(t *testing.T) {
	srv := &fakeServer{answer: script(nil)}
	s := newStore(sql.OpenDB(srv))
	defer s.Close()
	ctx := context.Background()
	starts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	np := promo.NewPromotion{Promotion: promo.Promotion{Name: "w", Kind: promo.KindGenerated, CodeCount: 10,
		MaxUsagePerCode: 1, PerUserLimit: 1, CounterName: "c", StartsAt: &starts, KeyFingerprint: "fp",
		Format: &promo.Format{}},
		BatchSize: 5, SeqLimit: 1 << 40, IdempotencyKey: "k", RequestHash: "h"}
	if _, _, err := s.CreatePromotion(ctx, np); err != nil {
		t.Fatalf("CreatePromotion: %v", err)
	}
	if _, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "v",
		Kind: promo.KindVanity, VanityCode: "VANITY", MaxUsagePerCode: 1}}); err != nil {
		t.Fatalf("CreatePromotion vanity: %v", err)
	}
	chunk := promo.Chunk{Batch: promo.BatchRef{PromotionID: 7, BatchNo: 1}, From: 2, Count: 2, CodeLen: 4,
		Codes: []byte("AAAABBBB")}
	if done, err := s.CommitChunk(ctx, chunk); err != nil || done != 4 {
		t.Fatalf("CommitChunk = %d, %v", done, err)
	}
	if _, err := s.GetCode(ctx, "ABCD"); err != nil {
		t.Fatalf("GetCode: %v", err)
	}
	if err := s.SetBatchState(ctx, chunk.Batch, promo.BatchRetrying, "e"); err != nil {
		t.Fatalf("SetBatchState: %v", err)
	}
	if err := s.MarkPublished(ctx, []promo.BatchRef{{PromotionID: 7, BatchNo: 0}, {PromotionID: 7, BatchNo: 1}}); err != nil {
		t.Fatalf("MarkPublished: %v", err)
	}
	if _, err := s.ClaimPendingBatches(ctx, 10, time.Minute); err != nil {
		t.Fatalf("ClaimPendingBatches: %v", err)
	}
	if _, err := s.Stats(ctx, promo.StatsQuery{PromotionID: 7, Bucket: promo.BucketDay}); err != nil {
		t.Fatalf("Stats: %v", err)
	}

	want := map[string]string{
		statements.PromotionByKey: "string",
		statements.Reserve:        "string,int64",
		statements.InsertPromotion: "string,string,int64,string,<nil>,int32,int32,time.Time/UTC,<nil>,string,int64," +
			"string,string,time.Time/UTC,mssql.VarChar",
		statements.InsertBatches:       "int64,int64,int64,int64,int64,time.Time/UTC",
		statements.InsertCode:          "mssql.VarChar,int64",
		statements.Advance:             "int64,int32,int64,int64",
		statements.GetCode:             "mssql.VarChar",
		statements.SetBatchState:       "int64,int32,string,string",
		qMarkPublished(2):              "int64,int32,int64,int32",
		statements.ClaimPendingBatches: "int64,time.Time/UTC,time.Time/UTC",
		statements.StatsSeries:         "int64,string,time.Time/UTC,time.Time/UTC",
		statements.StatsRefusalSeries:  "int64,string,time.Time/UTC,time.Time/UTC",
		statements.PromotionLive:       "int64",
	}
	seen := map[string]bool{}
	for _, c := range srv.calls {
		if w, ok := want[c.query]; ok {
			seen[c.query] = true
			// The vanity promotion's insert has the vanity code where the
			// generated one has NULL, and no key.
			if got := types(c.args); got != w && !(c.query == statements.InsertPromotion &&
				got == "string,string,int64,<nil>,mssql.VarChar,int32,int32,<nil>,<nil>,string,int64,<nil>,string,time.Time/UTC,mssql.VarChar") {
				t.Errorf("%.60q...\n got arguments %s\nwant %s", c.query, got, w)
			}
		}
		if strings.HasPrefix(c.query, "INSERTBULK") && len(c.args) > 0 {
			if got := types(c.args); got != "[]uint8,int64,int32" {
				t.Errorf("bulk copy row arguments %s, want the code's bytes, int64, int32", got)
			}
		}
		if c.query == statements.StatsSeries && c.args[1] != "day" {
			t.Errorf("StatsSeries bucket %v, want day", c.args[1])
		}
	}
	for q := range want {
		if !seen[q] {
			t.Errorf("not run: %.80q", q)
		}
	}
}

// A chunk takes one transaction at READ COMMITTED: the progress update, the
// bulk copy (its rows, then the flush), the commit gate, the commit. A duplicate key at the
// flush rolls it back and redoes it on the skipping path.
func TestChunkCommitStatements(t *testing.T) {
	chunk := promo.Chunk{Batch: promo.BatchRef{PromotionID: 7, BatchNo: 1}, From: 2, Count: 2, CodeLen: 4,
		Codes: []byte("AAAABBBB")}
	name := func(q string) string {
		switch {
		case q == statements.Advance:
			return "Advance"
		case q == statements.PromotionLive:
			return "PromotionLive"
		case strings.HasPrefix(q, "INSERTBULK"):
			return "bulk"
		case strings.HasPrefix(q, "INSERT INTO codes (code, promotion_id, used)\nSELECT"):
			return "insertSkipping"
		}
		return q
	}
	for _, tc := range []struct {
		name     string
		flushErr error
		want     string
	}{
		{"fast path", nil, "BEGIN Read Committed|Advance|bulk|bulk|bulk|PromotionLive|COMMIT"},
		{"collision", mssql.Error{Number: 2627, All: []mssql.Error{{Number: 2627}, {Number: 3621}}},
			"BEGIN Read Committed|Advance|bulk|bulk|bulk|ROLLBACK|" +
				"BEGIN Read Committed|Advance|insertSkipping|PromotionLive|COMMIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &fakeServer{answer: script(tc.flushErr)}
			s := newStore(sql.OpenDB(srv))
			defer s.Close()
			if done, err := s.CommitChunk(context.Background(), chunk); err != nil || done != 4 {
				t.Fatalf("CommitChunk = %d, %v", done, err)
			}
			var got []string
			for _, c := range srv.calls {
				got = append(got, name(c.query))
			}
			if g := strings.Join(got, "|"); g != tc.want {
				t.Errorf("statements\n got %s\nwant %s", g, tc.want)
			}
		})
	}
}
