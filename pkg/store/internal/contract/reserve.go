package contract

import (
	"context"
	"fmt"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// ReservationTx is one dialect's statements of the reservation transactions
// (reserve, confirm, release), bound to the open transaction; part of
// RedemptionTx. Reserve, Confirm and Release below are the algorithm.
type ReservationTx interface {
	// LockCode takes the code row's lock if, in one conditional statement,
	// the code could be used now (the conditions of UseCode) without adding
	// a use; ok is false when it matched no row.
	LockCode(ctx context.Context, code string, now time.Time) (u CodeUse, ok bool, err error)
	// LockAllowance takes the (promotion, user) allowance row's lock,
	// creating the row at 0 uses, if its committed uses are below limit;
	// false when they are not.
	LockAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error)
	// InsertReservation writes a held reservation.
	InsertReservation(ctx context.Context, r promo.Reservation) error
	// Reservation reads one reservation.
	Reservation(ctx context.Context, id string) (r promo.Reservation, found bool, err error)
	// MarkConfirmed settles a held reservation as confirmed by redemptionID;
	// false when it is not held (a concurrent confirm or release settled it:
	// the statement waited for that one's row lock and re-checked).
	MarkConfirmed(ctx context.Context, id, redemptionID, orderID string, now time.Time) (bool, error)
	// MarkReleased settles a held reservation as released; ok is false when
	// it is not held.
	MarkReleased(ctx context.Context, id string, now time.Time) (r promo.Reservation, ok bool, err error)
	// SaveReservationOutcome and StoredReservationOutcome are
	// SaveOutcome/StoredOutcome for a reservation's idempotency record.
	SaveReservationOutcome(ctx context.Context, key, refused, reservationID string) error
	StoredReservationOutcome(ctx context.Context, key string) (hash, refused, reservationID string, err error)
}

// Reserve holds one use of a code for a user until req.Now+req.TTL, in tx
// (committed by the caller when Reserve returns no error: a refusal is an
// outcome whose idempotency record commits too).
//
// Locks, in the order every transaction takes them (idempotency key, code
// row, allowance row, reservation row) so that reserving, redeeming,
// confirming and rolling back cannot deadlock: LockCode locks the code row,
// then CodeLoad counts uses and live reservations with the lock held. Every
// transaction that adds a use or a reservation to a code holds that lock
// until it commits, so the count is complete and no other can be added
// before this one commits; reservations only leave the count (release,
// expiry) without it, which can only make the count too high for a moment,
// never too low. The same holds for the user's allowance row.
func Reserve(ctx context.Context, tx RedemptionTx, req promo.ReserveRequest) (promo.ReserveOutcome, error) {
	if req.IdempotencyKey != "" {
		claimed, err := tx.ClaimKey(ctx, req.IdempotencyKey, req.RequestHash, req.Now)
		if err != nil {
			return promo.ReserveOutcome{}, fmt.Errorf("claim idempotency key: %w", err)
		}
		if !claimed {
			return replayReservation(ctx, tx, req)
		}
	}
	out, err := reserve(ctx, tx, req)
	if err != nil {
		return out, err
	}
	if req.IdempotencyKey != "" {
		if err := tx.SaveReservationOutcome(ctx, req.IdempotencyKey, string(out.Refused), out.Reservation.ID); err != nil {
			return promo.ReserveOutcome{}, fmt.Errorf("save idempotency record: %w", err)
		}
	}
	return out, nil
}

func reserve(ctx context.Context, tx RedemptionTx, req promo.ReserveRequest) (promo.ReserveOutcome, error) {
	u, ok, err := tx.LockCode(ctx, req.Code, req.Now)
	if err != nil {
		return promo.ReserveOutcome{}, fmt.Errorf("lock code: %w", err)
	}
	if !ok {
		reason, _, err := refusal(ctx, tx, req.Code, req.Now)
		return promo.ReserveOutcome{Refused: reason}, err
	}
	load, err := tx.CodeLoad(ctx, req.Code, req.Now, "")
	if err != nil {
		return promo.ReserveOutcome{}, fmt.Errorf("count code holds: %w", err)
	}
	if load+1 > u.MaxUsage {
		return promo.ReserveOutcome{Refused: promo.ReasonCodeExhausted}, nil
	}
	if u.PerUserLimit != promo.UnlimitedPerUser {
		ok, err := tx.LockAllowance(ctx, u.PromotionID, req.UserID, u.PerUserLimit)
		if err != nil {
			return promo.ReserveOutcome{}, fmt.Errorf("lock allowance: %w", err)
		}
		if !ok {
			return promo.ReserveOutcome{Refused: promo.ReasonUserLimitReached}, nil
		}
		userLoad, err := tx.AllowanceLoad(ctx, u.PromotionID, req.UserID, req.Now, "")
		if err != nil {
			return promo.ReserveOutcome{}, fmt.Errorf("count user holds: %w", err)
		}
		if userLoad+1 > u.PerUserLimit {
			return promo.ReserveOutcome{Refused: promo.ReasonUserLimitReached}, nil
		}
	}
	now := req.Now.UTC().Truncate(time.Microsecond)
	r := promo.Reservation{ID: req.ID, Code: req.Code, PromotionID: u.PromotionID, UserID: req.UserID,
		Status: promo.ReservationHeld, CreatedAt: now, ExpiresAt: now.Add(req.TTL).Truncate(time.Microsecond)}
	if err := tx.InsertReservation(ctx, r); err != nil {
		return promo.ReserveOutcome{}, fmt.Errorf("insert reservation: %w", err)
	}
	return promo.ReserveOutcome{Reservation: r}, nil
}

func replayReservation(ctx context.Context, tx RedemptionTx, req promo.ReserveRequest) (promo.ReserveOutcome, error) {
	hash, refused, id, err := tx.StoredReservationOutcome(ctx, req.IdempotencyKey)
	if err != nil {
		return promo.ReserveOutcome{}, fmt.Errorf("read idempotency record: %w", err)
	}
	if hash != req.RequestHash {
		return promo.ReserveOutcome{}, IdempotencyConflict()
	}
	if refused != "" {
		return promo.ReserveOutcome{Refused: promo.Reason(refused), Replayed: true}, nil
	}
	r, found, err := tx.Reservation(ctx, id)
	if err != nil {
		return promo.ReserveOutcome{}, fmt.Errorf("read reservation %s: %w", id, err)
	}
	if !found {
		return promo.ReserveOutcome{}, promo.Errorf(promo.ENotFound,
			"the reservation this Idempotency-Key made was swept after it ended")
	}
	return promo.ReserveOutcome{Reservation: r, Replayed: true}, nil
}

// Confirm turns a reservation into a redemption, in tx. The use is taken like
// a redemption's (take), except that the reservation's own hold is not
// counted: a live reservation always fits. An expired one is confirmed when
// its use is still free (the use is taken anew, within every limit, as a
// redemption made now would be) and refused reservation_expired when it is
// not. A promotion deactivated or ended since, or a code revoked since, is
// refused with that reason: a reservation holds a use, not an exemption.
//
// Confirming a confirmed reservation answers its redemption again (Replayed)
// when orderID is the same, else idempotency_conflict. A released one is
// reservation_released. Lock order: code row, allowance row, then the
// reservation row (MarkConfirmed), as in Reserve.
func Confirm(ctx context.Context, tx RedemptionTx, req promo.ConfirmRequest) (promo.ConfirmOutcome, error) {
	r, found, err := tx.Reservation(ctx, req.ReservationID)
	if err != nil {
		return promo.ConfirmOutcome{}, fmt.Errorf("read reservation: %w", err)
	}
	if !found {
		return promo.ConfirmOutcome{}, ReservationNotFound(req.ReservationID)
	}
	if r.Status != promo.ReservationHeld {
		return settled(ctx, tx, r, req)
	}
	expired := !r.Live(req.Now)
	u, left, refused, err := take(ctx, tx, r.Code, r.UserID, req.Now, r.ID)
	if err != nil {
		return promo.ConfirmOutcome{}, err
	}
	if refused != "" {
		// A concurrent confirm of this reservation may have taken the use
		// while this one waited for the code's (or allowance's) lock: its
		// commit is what refused this one. Answer from what it did (the
		// lock was released by that commit, so a new read sees it).
		now, found, err := tx.Reservation(ctx, req.ReservationID)
		if err != nil {
			return promo.ConfirmOutcome{}, fmt.Errorf("re-read reservation: %w", err)
		}
		if found && now.Status != promo.ReservationHeld {
			return settled(ctx, tx, now, req)
		}
		if expired && (refused == promo.ReasonCodeExhausted || refused == promo.ReasonUserLimitReached) {
			refused = promo.ReasonReservationExpired
		}
		return promo.ConfirmOutcome{Refused: refused}, nil
	}
	ok, err := tx.MarkConfirmed(ctx, r.ID, req.RedemptionID, req.OrderID, req.Now.UTC().Truncate(time.Microsecond))
	if err != nil {
		return promo.ConfirmOutcome{}, fmt.Errorf("mark reservation confirmed: %w", err)
	}
	if !ok {
		// A concurrent confirm or release settled it while this one waited:
		// give the use back and answer from what that one did.
		if u.PerUserLimit != promo.UnlimitedPerUser {
			if err := tx.ReleaseAllowance(ctx, u.PromotionID, r.UserID); err != nil {
				return promo.ConfirmOutcome{}, fmt.Errorf("take back allowance use: %w", err)
			}
		}
		if err := tx.UnuseCode(ctx, r.Code); err != nil {
			return promo.ConfirmOutcome{}, fmt.Errorf("take back code use: %w", err)
		}
		r, found, err := tx.Reservation(ctx, req.ReservationID)
		if err != nil || !found {
			return promo.ConfirmOutcome{}, fmt.Errorf("re-read settled reservation %s (found %t): %w", req.ReservationID, found, err)
		}
		return settled(ctx, tx, r, req)
	}
	red := promo.Redemption{ID: req.RedemptionID, Code: r.Code, PromotionID: u.PromotionID, UserID: r.UserID,
		OrderID: req.OrderID, Metadata: req.Metadata, RedeemedAt: req.Now.UTC().Truncate(time.Microsecond),
		UsesLeft: left}
	if err := insertRedemption(ctx, tx, red, req.EventID, u.Used); err != nil {
		return promo.ConfirmOutcome{}, err
	}
	return promo.ConfirmOutcome{Redemption: red}, nil
}

// settled answers a confirmation of a reservation that is no longer held.
func settled(ctx context.Context, tx RedemptionTx, r promo.Reservation, req promo.ConfirmRequest) (promo.ConfirmOutcome, error) {
	if r.Status == promo.ReservationReleased {
		return promo.ConfirmOutcome{Refused: promo.ReasonReservationReleased}, nil
	}
	if r.OrderID != req.OrderID {
		return promo.ConfirmOutcome{}, promo.Refusal(promo.ReasonIdempotencyConflict,
			"reservation %s was confirmed with another orderId", r.ID)
	}
	red, found, err := tx.Redemption(ctx, r.RedemptionID)
	if err != nil {
		return promo.ConfirmOutcome{}, fmt.Errorf("read redemption %s: %w", r.RedemptionID, err)
	}
	if !found {
		return promo.ConfirmOutcome{}, fmt.Errorf("reservation %s names redemption %s, which does not exist", r.ID, r.RedemptionID)
	}
	return promo.ConfirmOutcome{Redemption: red, Replayed: true}, nil
}

// Release ends a held reservation (its use is free at once). Releasing a
// released or expired-and-released one answers it again (replayed); a
// confirmed one is refused reservation_confirmed (roll the redemption back
// instead). It locks only the reservation row and waits for nothing else.
func Release(ctx context.Context, tx RedemptionTx, id string, now time.Time) (promo.Reservation, bool, error) {
	r, ok, err := tx.MarkReleased(ctx, id, now.UTC().Truncate(time.Microsecond))
	if err != nil {
		return r, false, fmt.Errorf("mark reservation released: %w", err)
	}
	if ok {
		return r, false, nil
	}
	r, found, err := tx.Reservation(ctx, id)
	switch {
	case err != nil:
		return r, false, fmt.Errorf("read reservation: %w", err)
	case !found:
		return r, false, ReservationNotFound(id)
	case r.Status == promo.ReservationConfirmed:
		return r, false, promo.Refusal(promo.ReasonReservationConfirmed,
			"reservation %s was confirmed (redemption %s); roll the redemption back instead", id, r.RedemptionID)
	}
	return r, true, nil
}

// ReservationNotFound is the error of an unknown reservation id.
func ReservationNotFound(id string) error {
	return promo.Errorf(promo.ENotFound, "no reservation %q", id)
}

// CheckReserveRequest validates what the store relies on.
func CheckReserveRequest(req promo.ReserveRequest) error {
	switch {
	case req.ID == "":
		return promo.Errorf(promo.EInvalid, "reservation id is required")
	case req.Code == "":
		return promo.FieldErrorf("code", "is required")
	case req.UserID == "":
		return promo.FieldErrorf("userId", "is required")
	case req.TTL <= 0:
		return promo.FieldErrorf("ttl", "must be positive")
	case req.Now.IsZero():
		return promo.Errorf(promo.EInvalid, "reservation time is required")
	}
	return nil
}

// CheckConfirmRequest validates what the store relies on.
func CheckConfirmRequest(req promo.ConfirmRequest) error {
	switch {
	case req.ReservationID == "" || req.RedemptionID == "" || req.EventID == "":
		return promo.Errorf(promo.EInvalid, "reservation, redemption and event ids are required")
	case req.Now.IsZero():
		return promo.Errorf(promo.EInvalid, "confirmation time is required")
	}
	return nil
}

// ReservationSweepBatch bounds one sweeper statement.
const ReservationSweepBatch = 1000

// RunReserve is a store's Reserve: the request checked, then Reserve in one
// transaction.
func RunReserve(ctx context.Context, inTx TxFunc, req promo.ReserveRequest) (promo.ReserveOutcome, error) {
	if err := CheckReserveRequest(req); err != nil {
		return promo.ReserveOutcome{}, err
	}
	var out promo.ReserveOutcome
	err := inTx(ctx, func(tx RedemptionTx) error {
		var err error
		out, err = Reserve(ctx, tx, req)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("reserve %q for %q: %w", req.Code, req.UserID, err)
	}
	return out, err
}

// RunConfirm is a store's Confirm: the request checked, then Confirm in one
// transaction.
func RunConfirm(ctx context.Context, inTx TxFunc, req promo.ConfirmRequest) (promo.ConfirmOutcome, error) {
	if err := CheckConfirmRequest(req); err != nil {
		return promo.ConfirmOutcome{}, err
	}
	var out promo.ConfirmOutcome
	err := inTx(ctx, func(tx RedemptionTx) error {
		var err error
		out, err = Confirm(ctx, tx, req)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("confirm reservation %q: %w", req.ReservationID, err)
	}
	return out, err
}

// RunRelease is a store's Release: Release in one transaction.
func RunRelease(ctx context.Context, inTx TxFunc, id string, now time.Time) (promo.Reservation, bool, error) {
	var (
		r        promo.Reservation
		replayed bool
	)
	err := inTx(ctx, func(tx RedemptionTx) error {
		var err error
		r, replayed, err = Release(ctx, tx, id, now)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("release reservation %q: %w", id, err)
	}
	return r, replayed, err
}

// ReadReservation is a store's Reservation: ENotFound for an unknown id.
func ReadReservation(ctx context.Context, q RedemptionTx, id string) (promo.Reservation, error) {
	r, found, err := q.Reservation(ctx, id)
	if err != nil {
		return r, fmt.Errorf("read reservation %q: %w", id, err)
	}
	if !found {
		return r, ReservationNotFound(id)
	}
	return r, nil
}
