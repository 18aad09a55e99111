package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Reserve holds one use of a code for a user until req.Now+req.TTL, in one
// write transaction (a refusal is an outcome whose idempotency record
// commits too).
//
// Locks are taken in redeem's order (key, code row, allowance row), then the
// reservation row; take says why the count under them is complete.
func (s *Core[T]) Reserve(ctx context.Context, req promo.ReserveRequest) (promo.ReserveOutcome, error) {
	return onceOr(ctx, s, req, s.d.ReserveOnce != "" && req.Shopper == nil, s.reserveOnce, stmts[T].reserve,
		"reserve %q for %q", req.Code, req.UserID)
}

func (x stmts[T]) reserve(ctx context.Context, req promo.ReserveRequest) (promo.ReserveOutcome, error) {
	if claimed, err := x.claim(ctx, req.IdempotencyKey, req.RequestHash, req.Now, ""); err != nil {
		return promo.ReserveOutcome{}, err
	} else if !claimed {
		return x.replayReservation(ctx, req)
	}
	out, err := x.hold(ctx, req)
	if err != nil {
		return out, err
	}
	return out, x.saveOutcome(ctx, x.d.SaveReservationOutcome, req.IdempotencyKey,
		promo.Reason(promo.Refused(out.Refused, out.Rule)), out.Reservation.ID)
}

// hold takes the locks, counts and writes the reservation, or names the
// refusal (and the eligibility rule of a not_eligible).
func (x stmts[T]) hold(ctx context.Context, req promo.ReserveRequest) (promo.ReserveOutcome, error) {
	u, load, ok, err := x.useCode(ctx, x.d.LockCode, req.Code, req.UserID, req.Now, "", false)
	switch {
	case err != nil:
		return promo.ReserveOutcome{}, fmt.Errorf("lock code, count its holds: %w", err)
	case !ok:
		reason, _, err := x.refusal(ctx, req.Code, req.UserID, req.Now)
		return promo.ReserveOutcome{Refused: reason}, err
	case load+1 > u.MaxUsage:
		return promo.ReserveOutcome{Refused: promo.ReasonCodeExhausted}, nil
	}
	if rule := u.Eligibility.Check(req.Shopper); rule != "" {
		return promo.ReserveOutcome{Refused: promo.ReasonNotEligible, Rule: rule}, nil
	}
	if u.PerUserLimit != promo.UnlimitedPerUser {
		ok, load, err := x.allowanceLoad(ctx, x.d.LockAllowance, x.d.LockAllowanceInsert, u, req.UserID, req.Now, "", false)
		if err != nil {
			return promo.ReserveOutcome{}, fmt.Errorf("lock allowance, count its holds: %w", err)
		}
		if !ok || load+1 > u.PerUserLimit {
			return promo.ReserveOutcome{Refused: promo.ReasonUserLimitReached}, nil
		}
	}
	now := req.Now.UTC().Truncate(time.Microsecond)
	r := promo.Reservation{ID: req.ID, Code: req.Code, PromotionID: u.PromotionID, UserID: req.UserID,
		Status: promo.ReservationHeld, CreatedAt: now, ExpiresAt: now.Add(req.TTL).Truncate(time.Microsecond)}
	var shopper any
	if req.Shopper != nil {
		b, err := json.Marshal(req.Shopper.Normalize())
		if err != nil {
			return promo.ReserveOutcome{}, fmt.Errorf("encode shopper: %w", err)
		}
		shopper = string(b)
	}
	if err := x.exec(ctx, x.d.InsertReservation, x.d.VarChar(r.ID), r.PromotionID, x.d.VarChar(r.Code), r.UserID,
		x.d.Time(r.CreatedAt), x.d.Time(r.ExpiresAt), shopper); err != nil {
		return promo.ReserveOutcome{}, fmt.Errorf("insert reservation: %w", err)
	}
	return promo.ReserveOutcome{Reservation: r}, nil
}

func (x stmts[T]) replayReservation(ctx context.Context, req promo.ReserveRequest) (promo.ReserveOutcome, error) {
	reason, rule, id, err := x.recorded(ctx, x.d.StoredReservationOutcome, req.IdempotencyKey, req.RequestHash)
	if err != nil || reason != "" {
		return promo.ReserveOutcome{Refused: reason, Rule: rule, Replayed: true}, err
	}
	r, found, err := x.reservation(ctx, x.d.Reservation, x.d.VarChar(id))
	if r, err = need(r, found, err, promo.Errorf(promo.ENotFound,
		"the reservation this Idempotency-Key made was swept after it ended"), "read reservation %s", id); err != nil {
		return promo.ReserveOutcome{}, err
	}
	return promo.ReserveOutcome{Reservation: r, Replayed: true}, nil
}

// Confirm turns a reservation into a redemption, in one write transaction
// (docs/redemption.md, "Reservations", has every answer). The use is taken
// like a redemption's (take), except that the reservation's own hold is not
// counted; an expired one is confirmed when its use is still free. Lock
// order: code row, allowance row, then the reservation row (MarkConfirmed),
// as in Reserve. A reservation confirms only on the code row it was made on.
func (s *Core[T]) Confirm(ctx context.Context, req promo.ConfirmRequest) (promo.ConfirmOutcome, error) {
	// A confirmation with shopper fields of its own takes the statement path.
	return onceOr(ctx, s, req, s.d.ConfirmOnce != "" && req.Shopper == nil, s.confirmOnce, stmts[T].confirm,
		"confirm reservation %q", req.ReservationID)
}

func (x stmts[T]) confirm(ctx context.Context, req promo.ConfirmRequest) (promo.ConfirmOutcome, error) {
	id := x.d.VarChar(req.ReservationID)
	r, found, err := x.reservation(ctx, x.d.Reservation, id)
	if r, err = need(r, found, err, reservationNotFound(req.ReservationID), "read reservation"); err != nil {
		return promo.ConfirmOutcome{}, err
	}
	if r.Status != promo.ReservationHeld {
		return x.settled(ctx, r, req)
	}
	expired := !r.Live(req.Now)
	// The rules in force are checked again, against the confirmation's
	// shopper fields or else the reservation's.
	shopper := req.Shopper
	if shopper == nil {
		if shopper, err = x.reservationShopper(ctx, id); err != nil {
			return promo.ConfirmOutcome{}, err
		}
	}
	u, left, refused, rule, err := x.take(ctx, r.Code, r.UserID, req.Now, r.ID, shopper)
	if err != nil {
		return promo.ConfirmOutcome{}, err
	}
	if refused == promo.ReasonNotEligible {
		return promo.ConfirmOutcome{Refused: refused, Rule: rule}, nil
	}
	if refused != "" {
		// A concurrent confirm of this reservation may have taken the use
		// while this one waited for the lock: answer from what it did (a
		// new read sees its commit).
		now, found, err := x.reservation(ctx, x.d.Reservation, id)
		if err != nil {
			return promo.ConfirmOutcome{}, fmt.Errorf("re-read reservation: %w", err)
		}
		if found && now.Status != promo.ReservationHeld {
			return x.settled(ctx, now, req)
		}
		if expired && (refused == promo.ReasonCodeExhausted || refused == promo.ReasonUserLimitReached) {
			refused = promo.ReasonReservationExpired
		}
		return promo.ConfirmOutcome{Refused: refused}, nil
	}
	if u.PromotionID != r.PromotionID {
		// The reservation's code row is gone and the string now names
		// another promotion's code, of which it held nothing.
		if err := x.takeBack(ctx, u, r.Code, r.UserID, true); err != nil {
			return promo.ConfirmOutcome{}, err
		}
		return promo.ConfirmOutcome{Refused: promo.ReasonPromotionDeleted}, nil
	}
	at := req.Now.UTC().Truncate(time.Microsecond)
	ok, err := x.one(ctx, x.d.MarkConfirmed, id, x.d.VarChar(req.RedemptionID), req.OrderID, x.d.Time(at))
	if err != nil {
		return promo.ConfirmOutcome{}, fmt.Errorf("mark reservation confirmed: %w", err)
	}
	if !ok {
		// A concurrent confirm or release settled it meanwhile.
		if err := x.takeBack(ctx, u, r.Code, r.UserID, true); err != nil {
			return promo.ConfirmOutcome{}, err
		}
		r, found, err := x.reservation(ctx, x.d.Reservation, id)
		if err != nil || !found {
			return promo.ConfirmOutcome{}, fmt.Errorf("re-read settled reservation %s (found %t): %w", req.ReservationID, found, err)
		}
		return x.settled(ctx, r, req)
	}
	red := promo.Redemption{ID: req.RedemptionID, Code: r.Code, PromotionID: u.PromotionID, UserID: r.UserID,
		OrderID: req.OrderID, Metadata: req.Metadata, RedeemedAt: at, UsesLeft: left,
		ClientAddr: req.ClientAddr, UserAgent: req.UserAgent}
	red.WithShopper(shopper)
	if err := x.redeemed(ctx, red, req.EventID, u.Used); err != nil {
		return promo.ConfirmOutcome{}, err
	}
	return promo.ConfirmOutcome{Redemption: red}, nil
}

// settled answers a confirmation of a reservation that is no longer held.
func (x stmts[T]) settled(ctx context.Context, r promo.Reservation, req promo.ConfirmRequest) (promo.ConfirmOutcome, error) {
	if r.Status == promo.ReservationReleased {
		return promo.ConfirmOutcome{Refused: promo.ReasonReservationReleased}, nil
	}
	if r.OrderID != req.OrderID {
		return promo.ConfirmOutcome{}, promo.Refusal(promo.ReasonIdempotencyConflict,
			"reservation %s was confirmed with another orderId", r.ID)
	}
	red, found, err := x.redemption(ctx, x.d.Redemption, x.d.VarChar(r.RedemptionID))
	if red, err = need(red, found, err, fmt.Errorf("reservation %s names redemption %s, which does not exist", r.ID,
		r.RedemptionID), "read redemption %s", r.RedemptionID); err != nil {
		return promo.ConfirmOutcome{}, err
	}
	return promo.ConfirmOutcome{Redemption: red, Replayed: true}, nil
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

// Release ends a held reservation (its use is free at once); a released one
// is answered again (replayed), a confirmed one refused
// reservation_confirmed. It locks only the reservation row.
func (s *Core[T]) Release(ctx context.Context, id string, now time.Time) (promo.Reservation, bool, error) {
	r, replayed, err := run(ctx, s, func(x stmts[T]) (promo.Reservation, bool, error) {
		r, ok, err := x.reservation(ctx, x.d.MarkReleased, x.d.VarChar(id), x.d.Time(now.UTC().Truncate(time.Microsecond)))
		if err != nil || ok {
			return r, false, wrap(err, "mark reservation released")
		}
		r, found, err := x.reservation(ctx, x.d.Reservation, x.d.VarChar(id))
		if r, err = need(r, found, err, reservationNotFound(id), "read reservation"); err != nil {
			return r, false, err
		}
		if r.Status == promo.ReservationConfirmed {
			return r, false, promo.Refusal(promo.ReasonReservationConfirmed,
				"reservation %s was confirmed (redemption %s); roll the redemption back instead", id, r.RedemptionID)
		}
		return r, true, nil
	})
	return r, replayed, wrap(err, "release reservation %q", id)
}

// Reservation reads one reservation; ENotFound when there is none.
func (s *Core[T]) Reservation(ctx context.Context, id string) (promo.Reservation, error) {
	r, found, err := s.on(s.r).reservation(ctx, s.d.Reservation, s.d.VarChar(id))
	return need(r, found, err, reservationNotFound(id), "read reservation %q", id)
}

// SweepReservations deletes up to limit reservations that ended (expired, or
// were settled and expired) before before; it returns how many.
func (s *Core[T]) SweepReservations(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.count(ctx, "sweep reservations", s.d.SweepReservations, s.d.Time(before), limit)
}

// SweepIdempotencyKeys deletes up to limit Idempotency-Key records (of
// redemptions, reservations and issuances) made before before; it returns
// how many. A request repeating a swept key is a new request.
func (s *Core[T]) SweepIdempotencyKeys(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.count(ctx, "sweep idempotency records", s.d.SweepIdempotencyKeys, s.d.Time(before), limit)
}

// CodeReservations returns the live reservations (held, not expired at now)
// of promotion promotionID's code (canonical), soonest to expire first, at
// most limit.
func (s *Core[T]) CodeReservations(ctx context.Context, promotionID int64, code string, now time.Time, limit int) ([]promo.Reservation, error) {
	out, err := collect(ctx, s.r, s.d.CodeReservations, []any{s.d.VarChar(code), promotionID, s.d.Time(now), limit},
		func(row Row, r *promo.Reservation) (err error) {
			*r, err = scanReservation(row)
			return err
		})
	return out, wrap(err, "reservations of code %s", code)
}

// reservationShopper reads what the reservation said about the shopper
// (nil: nothing).
func (x stmts[T]) reservationShopper(ctx context.Context, id any) (*promo.Shopper, error) {
	var raw sql.NullString
	if err := x.q.QueryRow(ctx, x.d.ReservationShopper, id).Scan(&raw); err != nil {
		return nil, fmt.Errorf("read reservation's shopper: %w", err)
	}
	if !raw.Valid || raw.String == "" {
		return nil, nil
	}
	var sh promo.Shopper
	if err := json.Unmarshal([]byte(raw.String), &sh); err != nil {
		return nil, fmt.Errorf("decode reservation's shopper: %w", err)
	}
	return &sh, nil
}
