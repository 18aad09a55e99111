package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// stmts binds the dialect's statements to a transaction (or a pool, for
// reads). Every limit is a conditional statement the database re-checks
// under its row lock: nothing reads a count and decides in Go to write.
type stmts[T Tx] struct {
	q Querier
	d *Dialect[T]
}

// on binds the statements to q.
func (s *Core[T]) on(q Querier) stmts[T] { return stmts[T]{q, &s.d} }

// StatementTx is the statements storetest drives at their limits.
type StatementTx interface {
	UseCode(ctx context.Context, code, userID string, now time.Time) (CodeUse, bool, error)
	UnuseCode(ctx context.Context, code string) error
	UseAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error)
	LockAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error)
	ReleaseCode(ctx context.Context, promotionID int64, code string) (int, bool, error)
	ReleaseAllowance(ctx context.Context, promotionID int64, userID string) error
	CodeState(ctx context.Context, code, userID string, now time.Time) (promo.CodeState, bool, error)
}

var errRolledBack = errors.New("rolled back on purpose")

// InStatementTx runs fn in a write transaction it then rolls back (tests).
func (s *Core[T]) InStatementTx(ctx context.Context, fn func(StatementTx) error) error {
	err := s.inTx(ctx, func(tx T) error {
		if err := fn(s.on(tx)); err != nil {
			return err
		}
		return errRolledBack
	})
	if errors.Is(err, errRolledBack) {
		return nil
	}
	return err
}

// run runs fn in a write transaction, committed if fn returns no error; ok
// is fn's second answer. A deadlock victim, having written nothing, runs
// again (retry; docs/store.md says how a cycle forms despite the lock order).
func run[T Tx, R any](ctx context.Context, s *Core[T], fn func(x stmts[T]) (R, bool, error)) (r R, ok bool, err error) {
	err = s.retry(ctx, func() error {
		return s.inTx(ctx, func(tx T) error {
			var err error
			r, ok, err = fn(s.on(tx))
			return err
		})
	})
	return r, ok, err
}

// wrap says what was being done around an internal error; a domain error
// (a refusal, ENotFound, ...) reaches the caller as it is.
func wrap(err error, format string, args ...any) error {
	if err != nil && promo.Code(err) == promo.EInternal {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	return err
}

// row runs query and scans its row into dest; false when there is none.
func (x stmts[T]) row(ctx context.Context, query string, args []any, dest ...any) (bool, error) {
	_, ok, err := found(0, x.q.QueryRow(ctx, query, args...).Scan(dest...))
	return ok, err
}

// found is a single-row read's answer: false, with no error, for no row.
func found[R any](r R, err error) (R, bool, error) {
	if noRows(err) {
		return r, false, nil
	}
	return r, err == nil, err
}

// need is a single-row read that must find its row: its error wrapped as
// format says, or notFound when there was no row.
func need[R any](r R, ok bool, err error, notFound error, format string, args ...any) (R, error) {
	if err != nil {
		return r, fmt.Errorf(format+": %w", append(args, err)...)
	}
	if !ok {
		return r, notFound
	}
	return r, nil
}

// one runs a statement and reports whether it changed exactly one row.
func (x stmts[T]) one(ctx context.Context, query string, args ...any) (bool, error) {
	n, err := x.q.Exec(ctx, query, args...)
	return n == 1, err
}

func (x stmts[T]) exec(ctx context.Context, query string, args ...any) error {
	_, err := x.q.Exec(ctx, query, args...)
	return err
}

// text is an optional text argument: NULL for "".
func text(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// claim inserts the idempotency record for key (none: nothing to claim),
// naming redemptionID (empty for none) as its outcome; false when it exists
// (committed by an earlier or concurrent transaction, which the insert
// waited for): the caller replays it.
func (x stmts[T]) claim(ctx context.Context, key, hash string, now time.Time, redemptionID string) (bool, error) {
	if key == "" {
		return true, nil
	}
	n, err := x.q.Exec(ctx, x.d.ClaimKey, key, hash, x.d.Time(now), x.d.VarChar(redemptionID))
	if err != nil && !x.d.UniqueViolation(err) {
		return false, fmt.Errorf("claim idempotency key: %w", err)
	}
	return err == nil && n == 1, nil // a unique violation: the record exists
}

// recorded reads key's idempotency record through query (StoredOutcome or
// StoredReservationOutcome): idempotency_conflict for a request with
// another hash, else the refusal (its reason and rule) or the id of what it
// made.
func (x stmts[T]) recorded(ctx context.Context, query, key, hash string) (reason promo.Reason, rule, id string, err error) {
	var h, refused string
	if err := x.q.QueryRow(ctx, query, key).Scan(&h, &refused, &id); err != nil {
		return "", "", "", fmt.Errorf("read idempotency record: %w", err)
	}
	if h != hash {
		return "", "", "", idempotencyConflict()
	}
	reason, rule = promo.SplitRefused(refused)
	return reason, rule, id, nil
}

// lookUp explains a conditional change of a promotion that matched no row:
// ENotFound for no such promotion, promotion_deleted for one being deleted;
// otherwise it answers the promotion's flags.
func (x stmts[T]) lookUp(ctx context.Context, id int64) (promotionState, error) {
	st, err := x.promotionState(ctx, x.d.PromotionState, id)
	switch {
	case err != nil:
		return st, fmt.Errorf("look up promotion: %w", err)
	case !st.Found:
		return st, promotionNotFound(id)
	case st.Deleting:
		return st, promotionDeleted(id)
	}
	return st, nil
}

// run1 is run for an algorithm with one answer.
func run1[T Tx, R any](ctx context.Context, s *Core[T], fn func(x stmts[T]) (R, error)) (R, error) {
	r, _, err := run(ctx, s, func(x stmts[T]) (R, bool, error) {
		r, err := fn(x)
		return r, false, err
	})
	return r, err
}

// onceOr answers req, once it validates, with once when has, else (or when
// once leaves it to the core: ok false) with the core's transaction tx; an
// internal error wrapped as format says.
func onceOr[T Tx, Q interface{ Validate() error }, R any](ctx context.Context, s *Core[T], req Q, has bool,
	once func(context.Context, Q) (R, bool, error), tx func(stmts[T], context.Context, Q) (R, error),
	format string, args ...any) (out R, err error) {
	ok := false
	if err = req.Validate(); err == nil && has {
		out, ok, err = once(ctx, req)
	}
	if err == nil && !ok {
		out, err = run1(ctx, s, func(x stmts[T]) (R, error) { return tx(x, ctx, req) })
	}
	return out, wrap(err, format, args...)
}

// validRun1 is onceOr without a one-statement form.
func validRun1[T Tx, Q interface{ Validate() error }, R any](ctx context.Context, s *Core[T], req Q,
	tx func(stmts[T], context.Context, Q) (R, error), format string, args ...any) (R, error) {
	return onceOr(ctx, s, req, false, nil, tx, format, args...)
}

// validRun runs fn's transaction (run) for req once req validates, an
// internal error wrapped as format says.
func validRun[T Tx, Q interface{ Validate() error }, R any](ctx context.Context, s *Core[T], req Q,
	fn func(stmts[T], context.Context, Q) (R, bool, error), format string, args ...any) (r R, ok bool, err error) {
	if err = req.Validate(); err == nil {
		r, ok, err = run(ctx, s, func(x stmts[T]) (R, bool, error) { return fn(x, ctx, req) })
	}
	return r, ok, wrap(err, format, args...)
}

// once runs a one-statement call in autocommit, again after a deadlock
// (which wrote nothing): the outcome its row starts with, the rest scanned
// into dest; "", with no error, when it left the request to the core
// (Dialect.StatementPath).
func (s *Core[T]) once(ctx context.Context, what, query string, args []any, dest ...any) (outcome string, err error) {
	err = s.retry(ctx, func() error { return s.w.QueryRow(ctx, query, args...).Scan(append([]any{&outcome}, dest...)...) })
	if err != nil && s.d.StatementPath(err) {
		return "", nil
	}
	return outcome, wrap(err, "%s in one statement", what)
}

// CodeUse is what UseCode's and LockCode's statements return about the code.
type CodeUse struct {
	PromotionID  int64
	Used         int
	MaxUsage     int
	PerUserLimit int
	// Eligibility is the promotion's rules as the statement read them.
	Eligibility *promo.Eligibility
}

// UseCode adds a use (committed uses only: codeLoad counts live
// reservations once the row is locked); false when it matched no row.
func (x stmts[T]) UseCode(ctx context.Context, code, userID string, now time.Time) (CodeUse, bool, error) {
	return x.codeUse(ctx, x.d.UseCode, code, userID, now)
}

// useCode runs query (UseCode or LockCode), then reads the code's load
// (codeLoad's count but exclude): in the same statement when folded
// (UseCodeLoad; nothing is excluded).
func (x stmts[T]) useCode(ctx context.Context, query, code, userID string, now time.Time, exclude string,
	folded bool) (u CodeUse, load int, ok bool, err error) {
	if folded {
		u, ok, err = x.codeUse(ctx, x.d.UseCodeLoad, code, userID, now, &load)
	} else if u, ok, err = x.codeUse(ctx, query, code, userID, now); ok && err == nil {
		load, err = x.codeLoad(ctx, code, now, exclude)
	}
	return u, load, ok, err
}

func (x stmts[T]) codeUse(ctx context.Context, query, code, userID string, now time.Time,
	more ...any) (u CodeUse, ok bool, err error) {
	var eligibility string
	ok, err = x.row(ctx, query, []any{x.d.VarChar(code), x.d.Time(now), userID},
		append([]any{&u.PromotionID, &u.Used, &u.MaxUsage, &u.PerUserLimit, &eligibility}, more...)...)
	if ok && err == nil {
		u.Eligibility, err = promo.DecodeEligibility(eligibility)
	}
	return u, ok, err
}

// UnuseCode takes back the use UseCode added in this transaction.
func (x stmts[T]) UnuseCode(ctx context.Context, code string) error {
	return x.exec(ctx, x.d.UnuseCode, x.d.VarChar(code))
}

// UseAllowance adds a use to the user's allowance within limit (a new row
// starts at 1); false when it would not.
func (x stmts[T]) UseAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error) {
	return x.allowance(ctx, x.d.UseAllowance, x.d.UseAllowanceInsert, promotionID, userID, limit)
}

// LockAllowance locks the allowance row (a new one at 0) below limit.
func (x stmts[T]) LockAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error) {
	return x.allowance(ctx, x.d.LockAllowance, x.d.LockAllowanceInsert, promotionID, userID, limit)
}

// allowance runs an allowance upsert, or its update then insert.
func (x stmts[T]) allowance(ctx context.Context, update, insert string, promotionID int64, userID string, limit int) (bool, error) {
	for attempt := 0; ; attempt++ {
		var used int
		ok, err := x.row(ctx, update, []any{promotionID, userID, limit}, &used)
		if ok || err != nil || insert == "" {
			return ok, err
		}
		ok, err = x.one(ctx, insert, promotionID, userID)
		if err != nil && x.d.UniqueViolation(err) && attempt == 0 {
			continue // a concurrent first use by this user committed the row: update it
		}
		return ok, err // false: the row exists and is at the limit
	}
}

// codeLoad reads, under the code row lock this transaction holds (UseCode or
// LockCode), the code's committed uses plus its live reservations (held,
// expires_at > now) other than exclude; allowanceLoad the same for the
// user's allowance row.
func (x stmts[T]) codeLoad(ctx context.Context, code string, now time.Time, exclude string) (n int, err error) {
	err = x.q.QueryRow(ctx, x.d.CodeLoad, x.d.VarChar(code), x.d.Time(now), x.d.VarChar(exclude)).Scan(&n)
	return n, err
}

// (folded: in the same statement, UseAllowanceLoad, when the dialect has it).
func (x stmts[T]) allowanceLoad(ctx context.Context, update, insert string, u CodeUse, userID string, now time.Time,
	exclude string, folded bool) (ok bool, n int, err error) {
	if folded && x.d.UseAllowanceLoad != "" {
		var used int
		ok, err = x.row(ctx, x.d.UseAllowanceLoad, []any{u.PromotionID, userID, u.PerUserLimit, x.d.Time(now)}, &used, &n)
	} else if ok, err = x.allowance(ctx, update, insert, u.PromotionID, userID, u.PerUserLimit); ok && err == nil {
		err = x.q.QueryRow(ctx, x.d.AllowanceLoad, u.PromotionID, userID, x.d.Time(now), x.d.VarChar(exclude)).Scan(&n)
	}
	return ok, n, err
}

// ReleaseCode gives one use back to the promotion's code row and returns its
// uses after it; false when it matched none (gone, or no use to give back).
func (x stmts[T]) ReleaseCode(ctx context.Context, promotionID int64, code string) (used int, ok bool, err error) {
	ok, err = x.row(ctx, x.d.ReleaseCode, []any{x.d.VarChar(code), promotionID}, &used)
	return used, ok, err
}

// ReleaseAllowance gives the user one use back (never below 0).
func (x stmts[T]) ReleaseAllowance(ctx context.Context, promotionID int64, userID string) error {
	return x.exec(ctx, x.d.ReleaseAllowance, promotionID, userID)
}

// CodeState reads a code with its promotion, the user's uses and the
// reservations live at now; false when there is no such code.
func (x stmts[T]) CodeState(ctx context.Context, code, userID string, now time.Time) (promo.CodeState, bool, error) {
	st := promo.CodeState{User: userID}
	err := scanPromotion(x.q.QueryRow(ctx, x.d.CodeState, x.d.VarChar(code), userID, x.d.Time(now)), &st.Promotion,
		&st.Code, &st.Used, &st.UserUsed, &st.Active, &st.Revoked, &st.Deleted, &st.Reserved, &st.UserReserved, &st.Owner)
	return found(st, err)
}

// insertRedemption writes the audit row (with its segments) and its event's
// outbox row.
func (x stmts[T]) insertRedemption(ctx context.Context, r promo.Redemption, ev promo.OutboxEvent) error {
	args := x.redemptionArgs(nil, r)
	var err error
	if x.d.RedemptionWithEvent != "" {
		err = x.exec(ctx, x.d.RedemptionWithEvent, append(args, x.d.VarChar(ev.Stream), ev.Key, string(ev.Payload))...)
	} else if err = x.exec(ctx, x.d.InsertRedemption, args...); err == nil {
		err = x.insertEvent(ctx, ev)
	}
	if err != nil {
		return err
	}
	for _, seg := range r.Segments {
		if err := x.exec(ctx, x.d.InsertRedemptionSegment, x.d.VarChar(r.ID), r.PromotionID, seg); err != nil {
			return fmt.Errorf("insert redemption segment: %w", err)
		}
	}
	return nil
}

// redemptionArgs appends InsertRedemption's arguments for r to args.
func (x stmts[T]) redemptionArgs(args []any, r promo.Redemption) []any {
	var amount, currency, discount, firstOrder any
	if o := r.Order; o != nil {
		amount, currency = int64(o.Amount), x.d.VarChar(o.Currency)
		if o.Discount != nil {
			discount = int64(*o.Discount)
		}
	}
	if r.FirstOrder != nil {
		firstOrder = *r.FirstOrder
	}
	return append(args, x.d.VarChar(r.ID), r.PromotionID, x.d.VarChar(r.Code), r.UserID, text(r.OrderID),
		text(string(r.Metadata)), x.d.Time(r.RedeemedAt), r.UsesLeft, text(r.IdempotencyKey),
		text(r.ClientAddr), text(r.UserAgent), amount, currency, discount, firstOrder,
		text(strings.Join(r.Segments, "\n")), text(r.Country))
}

// insertEvent writes an outbox row.
func (x stmts[T]) insertEvent(ctx context.Context, ev promo.OutboxEvent) error {
	return x.exec(ctx, x.d.InsertEvent, x.d.VarChar(ev.Stream), ev.Key, string(ev.Payload), x.d.Time(time.Now()))
}

// redemption reads one audit row through query (Redemption, MarkRolledBack);
// reservation one reservation (Reservation, MarkReleased).
func (x stmts[T]) redemption(ctx context.Context, query string, args ...any) (promo.Redemption, bool, error) {
	return found(scanRedemption(x.q.QueryRow(ctx, query, args...)))
}
func (x stmts[T]) reservation(ctx context.Context, query string, args ...any) (promo.Reservation, bool, error) {
	return found(scanReservation(x.q.QueryRow(ctx, query, args...)))
}

// promotionState reads a promotion's lifecycle flags through query
// (PromotionState, or LockPromotion, which locks its row).
func (x stmts[T]) promotionState(ctx context.Context, query string, id int64) (st promotionState, err error) {
	st.Found, err = x.row(ctx, query, []any{id}, &st.Deleting, &st.Cancelled)
	return st, err
}

// promotionState is a promotion's lifecycle flags.
type promotionState struct {
	Found     bool
	Deleting  bool // deletion requested (final)
	Cancelled bool // generation cancelled (final)
}

// audit writes an audit row, with detail (if not nil) encoded as its detail,
// and its event on the redemptions topic.
func (x stmts[T]) audit(ctx context.Context, a promo.AuditEntry, detail any) error {
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			return err
		}
		a.Detail = b
	}
	if err := x.exec(ctx, x.d.InsertAudit, x.d.VarChar(a.ID), x.d.Time(a.At), a.Actor, x.d.VarChar(a.Action),
		a.PromotionID, x.d.VarChar(a.Code), string(a.Detail)); err != nil {
		return fmt.Errorf("insert audit row: %w", err)
	}
	ev, err := promo.NewLifecycleEvent(a)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", a.Action, err)
	}
	return wrap(x.insertEvent(ctx, ev), "insert %s event", a.Action)
}
