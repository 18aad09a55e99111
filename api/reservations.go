package api

import (
	"context"
	"net/http"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
	"github.com/promocodes/promocodes/redemption"
)

// Reserver is what the reservation endpoints need: the redemption service.
type Reserver interface {
	Reserve(ctx context.Context, client redemption.Client, in redemption.ReserveInput) (redemption.ReservationView, bool, error)
	Confirm(ctx context.Context, in redemption.ConfirmInput) (redemption.Receipt, bool, error)
	Release(ctx context.Context, id string) (redemption.ReservationView, bool, error)
	Reservation(ctx context.Context, id string) (redemption.ReservationView, error)
}

// reservationRoutes are the reservation endpoints.
func (s *Server) reservationRoutes() []route {
	return []route{
		{"POST /v1/codes/{code}/reservations", s.redeemRole(s.queued(s.shopperIdentity(s.reserveCode)))},
		{"GET /v1/reservations/{id}", s.redeemRole(s.deadline(s.shopperIdentity(s.getReservation)))},
		{"POST /v1/reservations/{id}/confirm", s.redeemRole(s.queued(s.shopperIdentity(s.confirmReservation)))},
		{"DELETE /v1/reservations/{id}", s.redeemRole(s.queued(s.shopperIdentity(s.releaseReservation)))},
	}
}

func (s *Server) reserveCode(w http.ResponseWriter, r *http.Request) {
	code, err := typedCode(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req wire.Reserve
	key, fields, ok := s.readShopper(w, r, &req, &req.UserID)
	if !ok {
		return
	}
	for _, c := range []struct {
		field, v string
		max      int
		required bool
	}{{"userId", req.UserID, maxUserIDLen, true}} {
		if err := promo.CheckText(c.field, c.v, c.max, c.required); err != nil {
			fields = append(fields, err.(*promo.Error).Fields...)
		}
	}
	var ttl time.Duration
	if req.TTL != "" {
		ttl, err = time.ParseDuration(req.TTL)
		if err != nil || ttl <= 0 {
			fields = append(fields, promo.FieldError{Field: "ttl",
				Message: `must be a positive duration such as "90s" or "15m"`})
		}
	}
	shopper, errs := shopperOf(req.Shopper)
	if fields = append(fields, errs...); len(fields) > 0 {
		s.writeError(w, r, &promo.Error{Code: promo.EInvalid, Message: "invalid request", Fields: fields})
		return
	}
	v, replayed, err := s.redeemer.Reserve(r.Context(), s.client(r), redemption.ReserveInput{
		Code: code, UserID: req.UserID, TTL: ttl, IdempotencyKey: key, Shopper: shopper})
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/reservations/"+v.ID)
	writeJSON(w, http.StatusCreated, v)
}

// reservationID reads the {id} path value; an impossible one is not found.
func (s *Server) reservationID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := promo.CheckText("id", id, 64, true); err != nil {
		s.writeError(w, r, promo.Refusal(promo.ReasonReservationNotFound, "no reservation %q", truncate(id, 64)))
		return "", false
	}
	return id, true
}

func (s *Server) getReservation(w http.ResponseWriter, r *http.Request) {
	id, ok := s.reservationID(w, r)
	if !ok {
		return
	}
	v, err := s.redeemer.Reservation(r.Context(), id)
	if err == nil {
		err = shopperOwns(r, "reservation", v.UserID)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) confirmReservation(w http.ResponseWriter, r *http.Request) {
	id, ok := s.reservationID(w, r)
	if !ok {
		return
	}
	var req wire.Confirm
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.reservationOwner(r, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	var fields []promo.FieldError
	if err := promo.CheckText("orderId", req.OrderID, maxOrderIDLen, true); err != nil {
		fields = append(fields, err.(*promo.Error).Fields...)
	}
	metadata, err := s.checkMetadata(req.Metadata)
	if err != nil {
		fields = append(fields, err.(*promo.Error).Fields...)
	}
	shopper, errs := shopperOf(req.Shopper)
	if fields = append(fields, errs...); len(fields) > 0 {
		s.writeError(w, r, &promo.Error{Code: promo.EInvalid, Message: "invalid request", Fields: fields})
		return
	}
	rc, replayed, err := s.redeemer.Confirm(r.Context(), redemption.ConfirmInput{ReservationID: id,
		OrderID: req.OrderID, Metadata: metadata, Shopper: shopper, Client: s.client(r)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/redemptions/"+rc.ID)
	writeJSON(w, http.StatusCreated, rc)
}

func (s *Server) releaseReservation(w http.ResponseWriter, r *http.Request) {
	id, ok := s.reservationID(w, r)
	if !ok {
		return
	}
	if err := s.reservationOwner(r, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	v, replayed, err := s.redeemer.Release(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusOK, v)
}
