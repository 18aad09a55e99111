package redemption

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

// ReservationStore is what reservations need from the database.
type ReservationStore interface {
	Reserve(ctx context.Context, req promo.ReserveRequest) (promo.ReserveOutcome, error)
	Confirm(ctx context.Context, req promo.ConfirmRequest) (promo.ConfirmOutcome, error)
	Release(ctx context.Context, id string, now time.Time) (promo.Reservation, bool, error)
	Reservation(ctx context.Context, id string) (promo.Reservation, error)
	SweepReservations(ctx context.Context, before time.Time, limit int) (int64, error)
	SweepIdempotencyKeys(ctx context.Context, before time.Time, limit int) (int64, error)
}

// ReserveInput is a reservation request as the API decoded it. TTL 0 takes
// the configured default.
type ReserveInput struct {
	Code           string // as typed
	UserID         string
	TTL            time.Duration
	IdempotencyKey string
	// Shopper is checked against the promotion's eligibility rules.
	Shopper *promo.Shopper
}

// ReservationView is a reservation as the API answers it (pkg/wire).
type ReservationView = wire.Reservation

// ConfirmInput confirms a reservation.
type ConfirmInput struct {
	ReservationID string
	OrderID       string
	Metadata      json.RawMessage
	// Shopper is the order as finally placed (nil: the reservation's
	// stands); the promotion's eligibility rules are checked again either way.
	Shopper *promo.Shopper
	// Client is the confirming client (its address and agent go into the
	// audit row).
	Client Client
}

// Reserve holds one use of the code for the user for the TTL. A refusal is a
// *promo.Error with a Reason (the same ones as a redemption's).
func (s *Service) Reserve(ctx context.Context, client Client, in ReserveInput) (ReservationView, bool, error) {
	start := time.Now()
	v, replayed, err := s.reserve(ctx, client, in)
	s.countReservation("reserve", start, err)
	return v, replayed, err
}

func (s *Service) reserve(ctx context.Context, client Client, in ReserveInput) (ReservationView, bool, error) {
	ttl := in.TTL
	if ttl == 0 {
		ttl = s.cfg.ReservationTTL
	}
	if ttl < time.Second || ttl > s.cfg.MaxReservationTTL {
		return ReservationView{}, false, promo.FieldErrorf("ttl", "must be from 1s to %s, got %s",
			s.cfg.MaxReservationTTL, ttl)
	}
	canon, adm, err := s.recognise(ctx, client, in.Code)
	defer s.settle(adm)
	if err != nil {
		return ReservationView{}, false, err
	}
	req := promo.ReserveRequest{ID: s.newID(), Code: canon, UserID: in.UserID, Now: s.now().UTC(), TTL: ttl,
		IdempotencyKey: in.IdempotencyKey, Shopper: in.Shopper}
	if in.IdempotencyKey != "" {
		h := sha256.New()
		shopper := ""
		if in.Shopper != nil {
			b, _ := json.Marshal(in.Shopper.Normalize())
			shopper = string(b)
		}
		for _, part := range []string{"reserve", canon, in.UserID, in.TTL.String(), shopper} {
			fmt.Fprintf(h, "%d:%s;", len(part), part)
		}
		req.RequestHash = hex.EncodeToString(h.Sum(nil))
	}
	var out promo.ReserveOutcome
	err = s.gate.run(ctx, func(ctx context.Context) (err error) {
		out, err = s.store.Reserve(ctx, req)
		return err
	})
	if err != nil {
		return ReservationView{}, false, err
	}
	if out.Refused != "" {
		return ReservationView{}, out.Replayed, refusal(adm, out.Refused, out.Rule)
	}
	return s.reservationView(ctx, out.Reservation), out.Replayed, nil
}

// Confirm turns a reservation into a redemption (see docs/redemption.md for
// what confirming an expired one does).
func (s *Service) Confirm(ctx context.Context, in ConfirmInput) (Receipt, bool, error) {
	start := time.Now()
	var out promo.ConfirmOutcome
	err := s.gate.run(ctx, func(ctx context.Context) (err error) {
		out, err = s.store.Confirm(ctx, promo.ConfirmRequest{ReservationID: in.ReservationID, RedemptionID: s.newID(),
			EventID: s.newID(), OrderID: in.OrderID, Metadata: in.Metadata, Now: s.now().UTC(), Shopper: in.Shopper,
			ClientAddr: in.Client.Addr, UserAgent: in.Client.UserAgent})
		return err
	})
	if err == nil && out.Refused != "" {
		err = refusal(nil, out.Refused, out.Rule)
	}
	s.countReservation("confirm", start, err)
	if err != nil {
		return Receipt{}, out.Replayed, err
	}
	if !out.Replayed && s.notify != nil {
		s.notify()
	}
	return s.receipt(ctx, &out.Redemption), out.Replayed, nil
}

// Release ends a held reservation: its use is free at once.
func (s *Service) Release(ctx context.Context, id string) (ReservationView, bool, error) {
	start := time.Now()
	var (
		r        promo.Reservation
		replayed bool
	)
	err := s.gate.run(ctx, func(ctx context.Context) (err error) {
		r, replayed, err = s.store.Release(ctx, id, s.now().UTC())
		return err
	})
	s.countReservation("release", start, err)
	if err != nil {
		return ReservationView{}, false, err
	}
	return s.reservationView(ctx, r), replayed, nil
}

// Reservation reads one reservation.
func (s *Service) Reservation(ctx context.Context, id string) (ReservationView, error) {
	r, err := s.store.Reservation(ctx, id)
	if err != nil {
		return ReservationView{}, err
	}
	return s.reservationView(ctx, r), nil
}

func (s *Service) reservationView(ctx context.Context, r promo.Reservation) ReservationView {
	r.Status = r.State(s.now())
	return ReservationView{Reservation: r, Code: s.catalog.display(ctx, r.PromotionID, r.Code),
		PromotionID: promo.FormatID(r.PromotionID)}
}

func (s *Service) countReservation(op string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = resultOf(err)
	}
	s.metrics.reservation.WithLabelValues(op, result).Inc()
	s.metrics.seconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// sweep, every SweepInterval, deletes reservations that ended more than
// ReservationRetention ago and Idempotency-Key records older than
// IdempotencyRetention, a bounded batch per statement. Limits never depend
// on it: an expired reservation holds nothing whether or not it was swept.
func (s *Service) sweep(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		s.sweepAll(ctx, "reservation", now.Add(-s.cfg.ReservationRetention), s.store.SweepReservations)
		if s.cfg.IdempotencyRetention > 0 {
			s.sweepAll(ctx, "idempotency record", now.Add(-s.cfg.IdempotencyRetention), s.store.SweepIdempotencyKeys)
		}
	}
}

// sweepAll deletes what del finds before before, sweepBatch rows per call,
// until a call deletes fewer.
func (s *Service) sweepAll(ctx context.Context, what string, before time.Time,
	del func(ctx context.Context, before time.Time, limit int) (int64, error)) {
	for ctx.Err() == nil {
		n, err := del(ctx, before, sweepBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn(what+" sweep failed; will retry", zap.Error(err))
			}
			return
		}
		if n < sweepBatch {
			return
		}
	}
}

// sweepBatch bounds one sweep statement (a short transaction).
const sweepBatch = 1000
