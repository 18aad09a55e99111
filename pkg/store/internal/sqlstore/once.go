package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

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

// reserveOnce is Reserve in one round trip; false for the core's turn
// (a replay, rules).
func (s *Core[T]) reserveOnce(ctx context.Context, req promo.ReserveRequest) (out promo.ReserveOutcome, ok bool, err error) {
	now := req.Now.UTC().Truncate(time.Microsecond)
	r := promo.Reservation{ID: req.ID, Code: req.Code, UserID: req.UserID, Status: promo.ReservationHeld,
		CreatedAt: now, ExpiresAt: now.Add(req.TTL).Truncate(time.Microsecond)}
	outcome, err := s.once(ctx, "reserve", s.d.ReserveOnce, []any{s.d.VarChar(r.ID), s.d.VarChar(r.Code), r.UserID,
		s.d.Time(r.CreatedAt), s.d.Time(r.ExpiresAt), req.IdempotencyKey, req.RequestHash}, &r.PromotionID)
	switch {
	case err != nil || outcome == "" || outcome == "replay":
		return out, false, err
	case outcome != "reserved":
		return promo.ReserveOutcome{Refused: promo.Reason(outcome)}, true, nil
	}
	return promo.ReserveOutcome{Reservation: r}, true, nil
}

// confirmOnce is Confirm in one round trip; false for the core's turn (a
// settled reservation, rules to check again).
func (s *Core[T]) confirmOnce(ctx context.Context, req promo.ConfirmRequest) (out promo.ConfirmOutcome, ok bool, err error) {
	at := req.Now.UTC().Truncate(time.Microsecond)
	red := promo.Redemption{ID: req.RedemptionID, OrderID: req.OrderID, Metadata: req.Metadata, RedeemedAt: at,
		ClientAddr: req.ClientAddr, UserAgent: req.UserAgent}
	head, mid, body, err := ConfirmEventParts(req.EventID, red)
	if err != nil {
		return out, false, err
	}
	outcome, err := s.once(ctx, "confirm", s.d.ConfirmOnce, []any{s.d.VarChar(req.ReservationID),
		s.d.VarChar(req.RedemptionID), req.OrderID, text(string(req.Metadata)), s.d.Time(at),
		s.d.VarChar(promo.StreamRedemptions), head, mid, body, req.ClientAddr, req.UserAgent},
		&red.PromotionID, &red.Code, &red.UserID, &red.UsesLeft)
	switch {
	case err != nil || outcome == "" || outcome == "settled":
		return out, false, err
	case outcome == "not_found":
		return out, true, reservationNotFound(req.ReservationID)
	case outcome != "confirmed":
		return promo.ConfirmOutcome{Refused: promo.Reason(outcome)}, true, nil
	}
	return promo.ConfirmOutcome{Redemption: red}, true, nil
}

// rollbackOnce is Rollback in one round trip.
func (s *Core[T]) rollbackOnce(ctx context.Context, req promo.RollbackRequest) (promo.Redemption, bool, error) {
	now := req.Now.UTC().Truncate(time.Microsecond)
	head, rolled, err := RollbackEventParts(req.EventID, now, req.Reason)
	if err != nil {
		return promo.Redemption{}, false, err
	}
	var (
		outcome string
		r       promo.Redemption
	)
	err = s.retry(ctx, func() error {
		r, err = scanRedemption(prefixRow{s.w.QueryRow(ctx, s.d.RollbackOnce, s.d.VarChar(req.RedemptionID),
			s.d.Time(now), req.Reason, s.d.VarChar(promo.StreamRedemptions), head, rolled, s.d.Time(time.Now())), &outcome})
		return err
	})
	switch {
	case err != nil:
		return promo.Redemption{}, false, fmt.Errorf("roll back in one statement: %w", err)
	case outcome == "not_found":
		return promo.Redemption{}, false, promo.Errorf(promo.ENotFound, "no redemption %q", req.RedemptionID)
	}
	return r, outcome == "replayed", nil
}

// prefixRow scans its first column into first, the rest into Scan's dest.
type prefixRow struct {
	Row
	first any
}

func (p prefixRow) Scan(dest ...any) error { return p.Row.Scan(append([]any{p.first}, dest...)...) }

// ConfirmEventParts splits the redemption.created event of a confirmation
// of r (whose PromotionID, Code, UserID and UsesLeft the database learns)
// so that head || promotion id || mid || JSON code || `,"userId":` || JSON
// user || body || uses left || `},"codeUses":` || code uses || `}` is byte
// for byte what NewRedemptionEvent encodes (EventParts, with the code and
// the user cut out: they are the fields right after the redemption's id,
// and `","code":"","userId":""` cannot occur inside an encoded string, whose
// quotes are escaped).
func ConfirmEventParts(eventID string, r promo.Redemption) (head, mid, body string, err error) {
	r.Code, r.UserID = "", ""
	head, rest, err := EventParts(eventID, r)
	if err != nil {
		return "", "", "", err
	}
	const cut = `,"code":"","userId":""`
	i := strings.Index(rest, cut)
	if i < 0 {
		return "", "", "", errors.New("confirmation event: not the expected shape")
	}
	return head, rest[:i] + `,"code":`, rest[i+len(cut):], nil
}

// RollbackEventParts is what a one-statement rollback's event needs from
// the request: its head up to the promotion id's digits
// (`{"v":1,"type":"redemption.rolled_back","eventId":…,"occurredAt":…,"promotionId":"`)
// and its rollback fields (`"rolledBackAt":…` and `,"rollbackReason":…`),
// in NewRedemptionEvent's encoding; the database writes the rest from the
// audit row (docs/store.md, migration 00015).
func RollbackEventParts(eventID string, now time.Time, reason string) (head, rolled string, err error) {
	at := now.UTC()
	p, err := promo.NewRedemptionEvent(promo.EventRolledBack, eventID, at,
		promo.Redemption{RolledBackAt: &at, RollbackReason: reason}, nil)
	if err != nil {
		return "", "", fmt.Errorf("encode rollback event: %w", err)
	}
	s := string(p)
	const pid, from = `"promotionId":"0"`, `"rolledBackAt":`
	i, j, k := strings.Index(s, pid), strings.Index(s, from), strings.LastIndex(s, "}}")
	if i < 0 || j < 0 || k < j || !strings.HasSuffix(s, "}}") {
		return "", "", fmt.Errorf("rollback event %s: not the expected shape", s)
	}
	return s[:i+len(pid)-2], s[j:k], nil
}
