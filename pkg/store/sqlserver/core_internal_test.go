package sqlserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
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
	// answer returns the rows of a query (nil: none; for an Exec a single
	// int64 is the rows affected, 1 otherwise) or an error.
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
	rows, err := s.f.answer(s.q, s.f.record(s.q, args))
	switch {
	case err != nil:
		return nil, err
	case strings.HasPrefix(s.q, "INSERTBULK"):
		return driver.RowsAffected(0), nil // no count, as with NOCOUNT on
	case len(rows) == 1 && len(rows[0]) == 1:
		if n, ok := rows[0][0].(int64); ok {
			return driver.RowsAffected(n), nil
		}
	}
	return driver.RowsAffected(1), nil
}

func (s *fakeStmt) QueryContext(_ context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := s.f.answer(s.q, s.f.record(s.q, args))
	if err != nil {
		return nil, err
	}
	cols := 30 // enough for a query that answers no rows
	if len(rows) > 0 {
		cols = len(rows[0])
	}
	return &recRows{cols: make([]string, cols), vals: rows}, nil
}

type recRows struct {
	cols []string
	vals [][]driver.Value
}

func (r *recRows) Columns() []string { return r.cols }
func (r *recRows) Close() error      { return nil }
func (r *recRows) Next(dest []driver.Value) error {
	if len(r.vals) == 0 {
		return io.EOF
	}
	copy(dest, r.vals[0])
	r.vals = r.vals[1:]
	return nil
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

// names maps a statement's text to its name in allStatements, with the
// generated statements (any row count) by prefix.
func names() func(q string) string {
	byText := map[string]string{}
	for name, q := range allStatements() {
		byText[q] = name
	}
	return func(q string) string {
		switch {
		case byText[q] != "":
			return byText[q]
		case strings.HasPrefix(q, "INSERTBULK"):
			return "bulk"
		case strings.HasPrefix(q, "INSERT INTO codes (code, promotion_id, used)\nSELECT"):
			return "qInsertCodesSkipping"
		case strings.HasPrefix(q, "UPDATE b SET published = 1"):
			return "qMarkPublished"
		}
		return q
	}
}

// script answers each statement, by name, with its next answer in order (the
// last one repeats); flushErr is what the bulk copy's flush returns.
func script(flushErr error, answers map[string][][][]driver.Value) func(q string, args []any) ([][]driver.Value, error) {
	name, seen := names(), map[string]int{}
	var mu sync.Mutex
	return func(q string, args []any) ([][]driver.Value, error) {
		n := name(q)
		switch {
		case n == "bulk" && len(args) == 0:
			return nil, flushErr
		case n == "qInsertCodesSkipping":
			return [][]driver.Value{{int64(len(args) - 1)}}, nil
		}
		mu.Lock()
		defer mu.Unlock()
		a := answers[n]
		if len(a) == 0 {
			return nil, nil
		}
		i := min(seen[n], len(a)-1)
		seen[n]++
		return a[i], nil
	}
}

var (
	now    = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	future = now.Add(time.Hour)
)

func row(v ...driver.Value) [][]driver.Value { return [][]driver.Value{v} }

// promotionRow is promotionCols of promotion 7 (generated, 1 use per code,
// per-user limit 1), then extra.
func promotionRow(extra ...driver.Value) [][]driver.Value {
	return row(append([]driver.Value{int64(7), "w", "generated", int64(10), "{}", nil, int64(1), int64(1), nil, nil,
		"c", int64(0), now, `{"segments":["vip"]}`}, extra...)...)
}

func redemptionRow() [][]driver.Value {
	return row("r1", int64(7), "ABCD", "u", "", nil, now, int64(0), nil, "", "k", "",
		"203.0.113.7", "agent", int64(499000), "EUR", int64(50000), true, "vip\nnew", "DE")
}

func reservationRow() [][]driver.Value {
	return row("res1", int64(7), "ABCD", "u", "held", now, future, nil, "", "")
}

// Every statement the core runs on SQL Server, driven through every store
// operation (and the branches that reach the rest): each names exactly the
// parameters @p1..@pN of its arguments, with the argument types below (codes,
// ids and cursors varchar, batch numbers int32, times UTC), and every
// statement of the dialect runs at least once.
func TestCoreStatements(t *testing.T) {
	payload, err := promo.NewRedemptionEvent(promo.EventRedeemed, "e", now,
		promo.Redemption{ID: "r1", PromotionID: 7, Code: "ABCD", UserID: "u", RedeemedAt: now}, new(int))
	if err != nil {
		t.Fatal(err)
	}
	batchRow := row(int64(7), int64(1), int64(0), int64(5), int64(2), "pending", "")
	one, none := row(int64(1)), row(int64(0))
	use := row(int64(7), int64(1), int64(1), int64(1), "") // used 1 of 1, per-user limit 1, no rules
	srv := &fakeServer{answer: script(nil, map[string][][][]driver.Value{
		"Reserve": {row(int64(1000))}, "InsertPromotion": {row(int64(7))},
		"PromotionStatus": {promotionRow(true, nil, nil, int64(0), int64(0), int64(0))},
		"Progress":        {row(int64(2), int64(4), int64(0), int64(0), int64(0), int64(0))},
		"ListPromotions":  {promotionRow(int64(2), int64(4), int64(0), int64(0), int64(0), int64(0), true, nil, nil, int64(0), int64(0), int64(0))},
		"PromotionExists": {row(true)},
		"ExportCodes":     {row("ABCD")},
		"PendingBatches":  {batchRow}, "ClaimPendingBatches": {batchRow},
		"IncompleteBatches": {batchRow}, "AllIncompleteBatches": {batchRow},
		"LoadBatch":     {promotionRow(int64(1), int64(0), int64(5), int64(2), "pending", "", "fp")},
		"SetBatchState": {none}, "BatchExists": {row(true)},
		"OldestUnpublished": {row(now)}, "Now": {row(now)}, "Backlog": {row(int64(1), int64(0), int64(3))},
		"Advance":               {row(int64(4)), row(int64(4)), nil},
		"BatchProgress":         {row(int64(4), int64(10))},
		"PromotionLive":         {row(true), row(false)},
		"GetCode":               {row("ABCD", int64(7), int64(0), int64(1))},
		"StatsTotals":           {row(int64(1), int64(0), int64(1))},
		"StatsSeries":           {row(now, int64(1), int64(0), int64(0))},
		"StatsRefusalSeries":    {row(now, "code_exhausted", int64(2))},
		"StatsTopUsers":         {row("u", int64(1))},
		"StatsOrders":           {row("EUR", int64(1), int64(499000), int64(50000))},
		"StatsSegments":         {row("vip", "EUR", int64(1), int64(499000), int64(50000))},
		"IssuablePromotion":     {row("generated", false)},
		"IssueCodes":            {row("ABCD"), row("ABCD")},
		"IssuedCodes":           {row("ABCD")},
		"StoredIssuanceOutcome": {row("h", "i1")},
		"UserCodes":             {row("ABCD", int64(7), "w", now, int64(0), int64(1), false, true, false, nil, future)},
		"ClaimUncounted":        {row(int64(1), promo.StreamRedemptions, string(payload), now)},
		"RefusalsByReason":      {row("code_exhausted", int64(2))},
		"RedeemOnce":            {row("redeemed", int64(7), int64(0))},
		"ClaimKey":              {one, none, one, one, one, none, one, none},
		"UseCode":               {use, nil, use, use},
		"LockCode": {row(int64(7), int64(0), int64(1), int64(1), `{"countries":["DE"]}`),
			row(int64(7), int64(0), int64(5), int64(0), "")}, // then RedeemBatch's: 5 uses, no user limit, no rules
		"CodeLoad": {one, row(int64(2)), none, one}, "AllowanceLoad": {one, none, one},
		"CodeState":     {promotionRow("ABCD", int64(1), int64(0), true, false, false, int64(0), int64(0), "u")},
		"StoredOutcome": {row("h", "", "r1")}, "StoredReservationOutcome": {row("h", "", "res1")},
		"Redemption": {redemptionRow()}, "MarkRolledBack": {redemptionRow()},
		"Redemptions": {redemptionRow()}, "RedemptionsByUser": {redemptionRow()},
		"RedemptionsByCode": {redemptionRow()}, "UserRedemptions": {redemptionRow()},
		"ReleaseCode": {row(int64(0))},
		"ClaimEvents": {row(int64(1), promo.StreamRedemptions, "7", "{}")},
		"CodeSpaces":  {row(int64(7), "vanity", "", "V")},
		"Reservation": {reservationRow()}, "MarkReleased": {reservationRow()},
		"ReservationShopper": {row(`{"Country":"DE"}`), row(nil)},
		"CodeReservations":   {reservationRow()},
		"RevokeCode":         {row(int64(7)), nil},
		"Revocation":         {row(int64(7), now, "r")},
		"PromotionState":     {row(false, false)}, "LockPromotion": {row(false, false)},
		"AuditLog":        {row("a1", now, "admin", promo.ActionCodeRevoked, int64(7), "ABCD", "{}")},
		"UpdatePromotion": {row(int64(7), "n", nil, future, true, `{"firstOrderOnly":true}`)},
		"GrowPromotion":   {row("c", int64(20))}, "NextNumbers": {row(int64(2), int64(1))},
		"TopUps":            {row(int64(1), int64(10), int64(1000), int64(2), int64(2), now)},
		"ExpiredPromotions": {row(int64(7))}, "DeletionsPending": {row(int64(7))},
		"PurgeCount":         {row(int64(1), int64(1))},
		"Purge[redemptions]": {row(int64(1))},
		"Deletion":           {row(now, nil)},
	})}
	s := newStore(sql.OpenDB(srv), nil)
	defer s.Close()
	ctx := context.Background()
	starts := now
	chunk := func(from int64) promo.Chunk {
		return promo.Chunk{Batch: promo.BatchRef{PromotionID: 7, BatchNo: 1}, From: from, Count: 2, CodeLen: 4,
			Codes: []byte("AAABBBBB")}
	}
	discount, first := promo.Amount(50000), true
	redeem := promo.RedeemRequest{ID: "r1", EventID: "e1", Code: "ABCD", UserID: "u", OrderID: "o",
		IdempotencyKey: "k", RequestHash: "h", Now: now, ClientAddr: "203.0.113.7", UserAgent: "agent",
		Shopper: &promo.Shopper{Segments: []string{"vip", "new"}, Country: "de", FirstOrder: &first,
			Order: &promo.Order{Amount: 499000, Currency: "eur", Discount: &discount}}}
	gone := redeem
	gone.Code, gone.IdempotencyKey = "GONE", "gk"
	reserve := promo.ReserveRequest{ID: "res1", Code: "ABCD", UserID: "u", TTL: time.Hour, Now: now,
		IdempotencyKey: "rk", RequestHash: "h", Shopper: &promo.Shopper{Country: "DE"}}
	issue := promo.IssueRequest{ID: "i1", EventID: "e9", PromotionID: 7, UserID: "u", Count: 1, Now: now,
		IdempotencyKey: "ik", RequestHash: "h"}
	audit := promo.AuditEntry{ID: "a2", At: now, Actor: "admin", Action: promo.ActionPromotionDeleted, PromotionID: 7}
	name := "n"
	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"CreatePromotion", func() error {
			_, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "w",
				Kind: promo.KindGenerated, CodeCount: 10, MaxUsagePerCode: 1, PerUserLimit: 1, CounterName: "c",
				StartsAt: &starts, KeyFingerprint: "fp", Format: &promo.Format{}},
				BatchSize: 5, SeqLimit: 1 << 40, IdempotencyKey: "k", RequestHash: "h"})
			return err
		}},
		{"CreatePromotion vanity", func() error {
			_, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "v",
				Kind: promo.KindVanity, VanityCode: "VANITY", MaxUsagePerCode: 1,
				Eligibility: &promo.Eligibility{Countries: []string{"DE"}}}})
			return err
		}},
		{"GetPromotion", func() error { _, err := s.GetPromotion(ctx, 7); return err }},
		{"ListPromotions", func() error { _, err := s.ListPromotions(ctx, promo.ListFilter{}); return err }},
		{"ExportCodes", func() error { return s.ExportCodes(ctx, 7, func(string) error { return nil }) }},
		{"GetCode", func() error { _, err := s.GetCode(ctx, "ABCD"); return err }},
		{"PendingBatches", func() error { _, err := s.PendingBatches(ctx, 10); return err }},
		{"ClaimPendingBatches", func() error { _, err := s.ClaimPendingBatches(ctx, 10, time.Minute); return err }},
		{"MarkPublished", func() error {
			return s.MarkPublished(ctx, []promo.BatchRef{{PromotionID: 7, BatchNo: 0}, {PromotionID: 7, BatchNo: 1}})
		}},
		{"LoadBatch", func() error { _, err := s.LoadBatch(ctx, promo.BatchRef{PromotionID: 7, BatchNo: 1}); return err }},
		{"SetBatchState", func() error {
			return s.SetBatchState(ctx, promo.BatchRef{PromotionID: 7, BatchNo: 1}, promo.BatchRetrying, "e")
		}},
		{"IncompleteBatches", func() error { _, err := s.IncompleteBatches(ctx, 0); return err }},
		{"IncompleteBatches of one", func() error { _, err := s.IncompleteBatches(ctx, 7); return err }},
		{"OldestUnpublished", func() error { _, _, err := s.OldestUnpublished(ctx); return err }},
		{"Now", func() error { _, err := s.Now(ctx); return err }},
		{"Backlog", func() error { _, err := s.Backlog(ctx); return err }},
		{"CommitChunk", func() error { _, err := s.CommitChunk(ctx, chunk(2)); return err }},
		{"CommitChunk of a cancelled promotion", func() error {
			if _, err := s.CommitChunk(ctx, chunk(2)); promo.Code(err) != promo.EMoved {
				return fmt.Errorf("want EMoved, got %v", err)
			}
			return nil
		}},
		{"CommitChunk moved", func() error {
			if _, err := s.CommitChunk(ctx, chunk(2)); promo.Code(err) != promo.EMoved {
				return fmt.Errorf("want EMoved, got %v", err)
			}
			return nil
		}},
		{"Stats", func() error {
			_, err := s.Stats(ctx, promo.StatsQuery{PromotionID: 7, Bucket: promo.BucketDay})
			return err
		}},
		{"RollUp", func() error { _, err := s.RollUp(ctx, 10); return err }},
		{"AddRefusals", func() error {
			return s.AddRefusals(ctx, []promo.RefusalCount{{PromotionID: 7, Reason: promo.ReasonCodeExhausted, Hour: now, N: 1}})
		}},
		{"RefusalsByReason", func() error { _, err := s.RefusalsByReason(ctx, 7); return err }},
		{"Redeem", func() error { _, err := s.Redeem(ctx, redeem); return err }},
		{"Redeem replayed", func() error { _, err := s.Redeem(ctx, redeem); return err }},
		{"Redeem refused", func() error { _, err := s.Redeem(ctx, gone); return err }},
		{"Redeem exhausted by holds", func() error { _, err := s.Redeem(ctx, gone); return err }},
		{"Redeem in one batch", func() error { // no shopper fields: RedeemOnce
			once := redeem
			once.ID, once.Shopper = "r5", nil
			_, err := s.Redeem(ctx, once)
			return err
		}},
		{"CodeState", func() error { _, err := s.CodeState(ctx, "ABCD", "u"); return err }},
		{"Rollback", func() error {
			_, _, err := s.Rollback(ctx, promo.RollbackRequest{RedemptionID: "r1", EventID: "e2", Reason: "x", Now: now})
			return err
		}},
		{"Redemptions", func() error {
			for _, f := range []promo.RedemptionFilter{{PromotionID: 7, After: "r9", Since: "r0"}, {PromotionID: 7, UserID: "u"},
				{PromotionID: 7, Code: "ABCD"}, {UserID: "u"}} {
				if _, err := s.Redemptions(ctx, f); err != nil {
					return err
				}
			}
			return s.ExportRedemptions(ctx, promo.RedemptionFilter{PromotionID: 7}, func(promo.Redemption) error { return nil })
		}},
		{"ClaimEvents", func() error { _, err := s.ClaimEvents(ctx, 10, time.Minute); return err }},
		{"MarkEventsPublished", func() error { return s.MarkEventsPublished(ctx, []int64{1, 2}) }},
		{"PruneEvents", func() error { _, err := s.PruneEvents(ctx, now, 10); return err }},
		{"CodeSpaces", func() error { _, err := s.CodeSpaces(ctx, 0, 10); return err }},
		{"SetPromotionActive", func() error { return s.SetPromotionActive(ctx, 7, false) }},
		{"Reserve", func() error { _, err := s.Reserve(ctx, reserve); return err }},
		{"Reserve replayed", func() error { _, err := s.Reserve(ctx, reserve); return err }},
		{"Confirm", func() error {
			_, err := s.Confirm(ctx, promo.ConfirmRequest{ReservationID: "res1", RedemptionID: "r2", EventID: "e3",
				OrderID: "o", Now: now})
			return err
		}},
		{"Confirm exhausted by holds", func() error {
			_, err := s.Confirm(ctx, promo.ConfirmRequest{ReservationID: "res1", RedemptionID: "r3", EventID: "e4",
				OrderID: "o", Now: now})
			return err
		}},
		{"Release", func() error { _, _, err := s.Release(ctx, "res1", now); return err }},
		{"Reservation", func() error { _, err := s.Reservation(ctx, "res1"); return err }},
		{"SweepReservations", func() error { _, err := s.SweepReservations(ctx, now, 10); return err }},
		{"SweepIdempotencyKeys", func() error { _, err := s.SweepIdempotencyKeys(ctx, now, 10); return err }},
		{"CodeReservations", func() error { _, err := s.CodeReservations(ctx, 7, "ABCD", now, 10); return err }},
		{"RevokeCode", func() error {
			_, _, err := s.RevokeCode(ctx, promo.RevokeRequest{Code: "ABCD", Reason: "r", AuditID: "a1", Actor: "admin", Now: now})
			return err
		}},
		{"RevokeCode replayed", func() error {
			_, _, err := s.RevokeCode(ctx, promo.RevokeRequest{Code: "ABCD", Reason: "r", AuditID: "a1", Actor: "admin", Now: now})
			return err
		}},
		{"Revocation", func() error { _, _, err := s.Revocation(ctx, "ABCD"); return err }},
		{"AuditLog", func() error { _, err := s.AuditLog(ctx, promo.AuditFilter{PromotionID: 7, After: "a9"}); return err }},
		{"UpdatePromotion", func() error {
			_, err := s.UpdatePromotion(ctx, promo.PromotionUpdate{ID: 7, Name: &name, SetExpiresAt: true, ExpiresAt: &future,
				AuditID: "a3", Actor: "admin", Now: now})
			return err
		}},
		{"CancelPromotion", func() error {
			_, err := s.CancelPromotion(ctx, promo.CancelRequest{PromotionID: 7, AuditID: "a4", Actor: "admin", Now: now})
			return err
		}},
		{"TopUp", func() error {
			_, _, err := s.TopUp(ctx, promo.TopUpRequest{PromotionID: 7, CodeCount: 10, BatchSize: 5, SeqLimit: 1 << 40,
				AuditID: "a5", Actor: "admin", Now: now, IdempotencyKey: "tk", RequestHash: "h"})
			return err
		}},
		{"TopUps", func() error { _, err := s.TopUps(ctx, 7); return err }},
		{"ExpiredPromotions", func() error { _, err := s.ExpiredPromotions(ctx, now); return err }},
		{"DeletionsPending", func() error { _, err := s.DeletionsPending(ctx); return err }},
		{"PurgeCount", func() error { _, _, err := s.PurgeCount(ctx, 7); return err }},
		{"PurgeRows", func() error {
			for _, table := range []string{"reservations", "user_uses", "codes", "redemptions"} {
				if _, err := s.PurgeRows(ctx, table, 7, 100); err != nil {
					return err
				}
			}
			return nil
		}},
		{"MarkPurge", func() error { _, err := s.MarkPurge(ctx, 7, now, now); return err }},
		{"RecordPurge", func() error { return s.RecordPurge(ctx, audit) }},
		{"RequestDeletion", func() error { _, err := s.RequestDeletion(ctx, audit); return err }},
		{"FinishDeletion", func() error { return s.FinishDeletion(ctx, audit) }},
		{"Deletion", func() error { _, err := s.Deletion(ctx, 7); return err }},
		{"Issue", func() error { _, err := s.Issue(ctx, issue); return err }},
		{"Issue replayed", func() error { _, err := s.Issue(ctx, issue); return err }},
		{"UserCodes", func() error { _, err := s.UserCodes(ctx, "u", now, 10); return err }},
		{"UpdatePromotion eligibility", func() error {
			_, err := s.UpdatePromotion(ctx, promo.PromotionUpdate{ID: 7, SetEligibility: true,
				Eligibility: &promo.Eligibility{FirstOrderOnly: true}, AuditID: "a6", Actor: "admin", Now: now})
			return err
		}},
		{"RedeemBatch", func() error { // last: it takes LockCode's last row
			batch := redeem
			batch.ID, batch.IdempotencyKey, batch.RequestHash, batch.Shopper = "r9", "", "", nil
			res, err := s.RedeemBatch(ctx, []promo.RedeemRequest{batch})
			if err == nil && (res[0].Err != nil || res[0].Outcome.Refused != "") {
				err = fmt.Errorf("result %+v, want a redemption", res[0])
			}
			return err
		}},
	} {
		if err := op.run(); err != nil {
			t.Errorf("%s: %v", op.name, err)
		}
	}

	const (
		v   = "mssql.VarChar"
		utc = "time.Time/UTC"
	)
	want := map[string]string{
		"PromotionByKey":  "string",
		"Reserve":         "string,int64",
		"InsertPromotion": "string,string,int64,string,<nil>,int32,int32,time.Time/UTC,<nil>,string,int64,string,string,time.Time/UTC,mssql.VarChar,<nil>",
		"InsertPromotion vanity": "string,string,int64,<nil>,mssql.VarChar,int32,int32,<nil>,<nil>,string,int64,<nil>,string," +
			"time.Time/UTC,mssql.VarChar,string",
		"InsertBatches":   "int64,int64,int64,int64,int64," + utc,
		"InsertCode":      v + ",int64",
		"PromotionStatus": "int64", "Progress": "int64", "PromotionExists": "int64", "ExportCodes": "int64",
		"ListPromotions": "int64,string,string,int,int",
		"GetCode":        v,
		"PendingBatches": "int64", "ClaimPendingBatches": "int64,int32",
		"qMarkPublished": "int64,int32,int64,int32",
		"LoadBatch":      "int64,int32", "SetBatchState": "int64,int32,string,string", "BatchExists": "int64,int32",
		"IncompleteBatches": "int64", "AllIncompleteBatches": "", "OldestUnpublished": "", "Now": "", "Backlog": "",
		"Advance": "int64,int32,int64,int64", "BatchProgress": "int64,int32", "PromotionLive": "int64",
		"CancelBatch": "int64,int32", "qInsertCodesSkipping": "int64," + v + "," + v,
		"StatsTotals": "int64", "StatsSeries": "int64,string," + utc + "," + utc,
		"StatsRefusalSeries": "int64,string," + utc + "," + utc, "StatsTopUsers": "int64,int",
		"ClaimUncounted": "int," + utc, "AddTotals": "int64,int64,int64,int64," + utc,
		"AddRefusals": "int64,string," + utc + ",int64", "RefusalsByReason": "int64",
		"ClaimKey":   "string,string," + utc + "," + v,
		"RedeemOnce": v + "," + v + ",string,string,<nil>," + utc + ",string,string," + v + ",string,string,string,string",
		"UseCode":    v + "," + utc + ",string", "LockCode": v + "," + utc + ",string", "UnuseCode": v,
		"AddCodeUses": v + ",int",
		"CodeLoad":    v + "," + utc + "," + v, "AllowanceLoad": "int64,string," + utc + "," + v,
		"UseAllowance": "int64,string,int", "UseAllowanceInsert": "int64,string",
		"LockAllowance": "int64,string,int", "LockAllowanceInsert": "int64,string",
		"InsertRedemption": v + ",int64," + v + ",string,string,<nil>," + utc + ",int,string,string,string,int64," + v +
			",int64,bool,string,string",
		"InsertRedemption no key": v + ",int64," + v + ",string,string,<nil>," + utc + ",int,<nil>,<nil>,<nil>,<nil>,<nil>," +
			"<nil>,<nil>,<nil>,<nil>",
		// RedeemBatch's: no key, the client's address and agent, no shopper fields.
		"InsertRedemption all": v + ",int64," + v + ",string,string,<nil>," + utc +
			",int,<nil>,string,string,<nil>,<nil>,<nil>,<nil>,<nil>,<nil>",
		// Confirm's: no key, the reservation's shopper (a country only).
		"InsertRedemption confirm": v + ",int64," + v + ",string,string,<nil>," + utc +
			",int,<nil>,<nil>,<nil>,<nil>,<nil>,<nil>,<nil>,<nil>,string",
		"InsertRedemptionSegment": v + ",int64,string",
		"StatsOrders":             "int64", "StatsSegments": "int64",
		"IssuablePromotion": "int64", "IssueCodes": "int64,string," + v + "," + utc + ",int",
		"IssuedCodes": "string," + v, "SaveIssuanceOutcome": "string," + v, "StoredIssuanceOutcome": "string",
		"UserCodes":   "string,int",
		"InsertEvent": v + ",string,string," + utc,
		"SaveOutcome": "string,string," + v, "SaveReservationOutcome": "string,string," + v,
		"StoredOutcome": "string", "StoredReservationOutcome": "string",
		"CodeState":  v + ",string," + utc,
		"Redemption": v, "MarkRolledBack": v + "," + utc + ",string",
		"ReleaseCode": v + ",int64", "RecordCodeRelease": v + "," + v, "ReleaseAllowance": "int64,string",
		"Redemptions": "int64,int," + v + "," + v, "RedemptionsByUser": "int64,int," + v + "," + v + ",string",
		"RedemptionsByCode": "int64,int," + v + "," + v + "," + v, "UserRedemptions": "string,int," + v + "," + v,
		"Redemptions all": "int64,int," + v + "," + v,
		"ClaimEvents":     "int,int32", "MarkEventPublished": "int64",
		"PruneEvents": utc + ",int", "CodeSpaces": "int64,int", "SetActive": "int64,bool",
		"InsertReservation":        v + ",int64," + v + ",string," + utc + "," + utc + ",string",
		"InsertReservation no key": v + ",int64," + v + ",string," + utc + "," + utc + ",<nil>",
		"Reservation":              v, "ReservationShopper": v, "MarkConfirmed": v + "," + v + ",string," + utc, "MarkReleased": v + "," + utc,
		"SweepReservations": utc + ",int", "SweepIdempotencyKeys": utc + ",int", "CodeReservations": v + ",int64," + utc + ",int",
		"RevokeCode": v + "," + utc + ",string", "Revocation": v,
		"InsertAudit":            v + "," + utc + ",string," + v + ",int64," + v + ",string",
		"AuditLog":               "int64,int," + v,
		"UpdatePromotion":        "int64,string,bool,<nil>,bool," + utc + ",<nil>,bool,<nil>",
		"UpdatePromotion vanity": "int64,<nil>,bool,<nil>,bool,<nil>,<nil>,bool,string",
		"PromotionState":         "int64", "LockPromotion": "int64",
		"FlagCancelled": "int64," + utc, "CancelBatches": "int64," + utc,
		"StoredTopUp": "int64,string", "GrowPromotion": "int64,int64", "NextNumbers": "int64",
		"InsertTopUpBatches": "int64,int64,int64,int64,int," + utc + ",int",
		"InsertTopUp":        "int64,int,int64,int64,int,int," + utc + ",string," + v,
		"TopUps":             "int64",
		"ExpiredPromotions":  utc, "DeletionsPending": "", "PurgeCount": "int64",
		"Purge[codes]": "int64,int", "Purge[user_uses]": "int64,int", "Purge[reservations]": "int64,int",
		"Purge[redemptions]": "int64,int",
		"RequestDeletion":    "int64," + utc, "FinishDeletion": "int64," + utc, "Deletion": "int64",
		"MarkPurge": "int64," + utc + "," + utc,
	}
	name2, param := names(), regexp.MustCompile(`@p(\d+)\b`)
	ran := map[string]bool{}
	for _, c := range srv.calls {
		n := name2(c.query)
		if strings.HasPrefix(n, "BEGIN ") || n == "COMMIT" || n == "ROLLBACK" || n == "bulk" {
			continue
		}
		ran[n] = true
		hi := 0
		for _, m := range param.FindAllStringSubmatch(c.query, -1) {
			k, _ := strconv.Atoi(m[1])
			hi = max(hi, k)
		}
		if hi != len(c.args) {
			t.Errorf("%s names @p1..@p%d for %d arguments", n, hi, len(c.args))
		}
		got, ok := types(c.args), false
		for _, w := range []string{want[n], want[n+" vanity"], want[n+" no key"], want[n+" all"], want[n+" confirm"]} {
			ok = ok || (w == got && (w != "" || len(c.args) == 0))
		}
		if !ok {
			t.Errorf("%s: arguments %s, want %s", n, got, want[n])
		}
	}
	for n, q := range allStatements() {
		if q != "" && !ran[n] && !strings.HasPrefix(n, "q") {
			t.Errorf("statement %s was not run", n)
		}
	}
	if !slices.ContainsFunc(srv.calls, func(c call) bool {
		return strings.HasPrefix(c.query, "INSERTBULK") && len(c.args) > 0 &&
			types(c.args) == "[]uint8,int64,int32"
	}) {
		t.Error("no bulk copy row with the code's bytes, int64, int32")
	}
}

// A chunk takes one transaction at READ COMMITTED: the progress update, the
// bulk copy (its rows, then the flush), the commit gate, the commit. A
// duplicate key at the flush rolls it back and redoes it on the skipping
// path.
func TestChunkCommitStatements(t *testing.T) {
	chunk := promo.Chunk{Batch: promo.BatchRef{PromotionID: 7, BatchNo: 1}, From: 2, Count: 2, CodeLen: 4,
		Codes: []byte("AAAABBBB")}
	for _, tc := range []struct {
		name     string
		flushErr error
		want     string
	}{
		{"fast path", nil, "BEGIN Read Committed|Advance|bulk|bulk|bulk|PromotionLive|COMMIT"},
		{"collision", mssql.Error{Number: 2627, All: []mssql.Error{{Number: 2627}, {Number: 3621}}},
			"BEGIN Read Committed|Advance|bulk|bulk|bulk|ROLLBACK|" +
				"BEGIN Read Committed|Advance|qInsertCodesSkipping|PromotionLive|COMMIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &fakeServer{answer: script(tc.flushErr, map[string][][][]driver.Value{
				"Advance": {row(int64(4))}, "PromotionLive": {row(true)}})}
			s := newStore(sql.OpenDB(srv), nil)
			defer s.Close()
			if done, err := s.CommitChunk(context.Background(), chunk); err != nil || done != 4 {
				t.Fatalf("CommitChunk = %d, %v", done, err)
			}
			name := names()
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

// A redemption is one batch in one round trip (no BEGIN or COMMIT from the
// driver: the batch is its own transaction), answered from its one row; the
// batch keeps the core's lock order and its conditions.
