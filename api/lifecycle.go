package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/redemption"
)

// Administrator is what the admin changes of codes need: the redemption
// service.
type Administrator interface {
	Revoke(ctx context.Context, actor, raw, reason string) (redemption.RevocationView, bool, error)
	AuditLog(ctx context.Context, f promo.AuditFilter) ([]redemption.AuditView, error)
	UpdatePromotion(ctx context.Context, u promo.PromotionUpdate) (redemption.PromotionView, error)
	CancelPromotion(ctx context.Context, actor string, id int64) (bool, error)
	TopUp(ctx context.Context, req promo.TopUpRequest) (t promo.TopUp, replayed bool, err error)
	TopUps(ctx context.Context, id int64) ([]promo.TopUp, error)
	DeletePromotion(ctx context.Context, actor string, id int64) (redemption.DeletionView, bool, error)
	DeletionStatus(ctx context.Context, id int64) (redemption.DeletionView, error)
}

func (s *Server) lifecycleRoutes() []route {
	if _, ok := s.redeemer.(Administrator); !ok {
		return nil
	}
	return []route{
		{"POST /v1/codes/{code}/revoke", s.admin(s.deadline(s.revokeCode))},
		{"GET /v1/promotions/{id}/audit", s.admin(s.deadline(s.auditLog))},
		{"PATCH /v1/promotions/{id}", s.admin(s.deadline(s.patchPromotion))},
		{"POST /v1/promotions/{id}/cancel", s.admin(s.deadline(s.cancelPromotion))},
		{"POST /v1/promotions/{id}/topups", s.admin(s.deadline(s.topUpPromotion))},
		{"GET /v1/promotions/{id}/topups", s.admin(s.deadline(s.listTopUps))},
		{"DELETE /v1/promotions/{id}", s.admin(s.deadline(s.deletePromotion))},
	}
}

// deletePromotion requests a promotion's deletion: 202 with where it stands
// (GET /v1/promotions/{id} follows it in "deletion").
func (s *Server) deletePromotion(w http.ResponseWriter, r *http.Request) {
	id, err := promo.ParseID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, replayed, err := s.administrator().DeletePromotion(r.Context(), s.actor(r, "admin"), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/promotions/"+promo.FormatID(id))
	writeJSON(w, http.StatusAccepted, map[string]any{"id": promo.FormatID(id), "deletion": v})
}

// topUpRequest is the body of POST /v1/promotions/{id}/topups.
type topUpRequest struct {
	CodeCount json.Number `json:"codeCount"`
}

// topUpPromotion adds codes to a generated promotion: 202 with the top-up and
// the promotion's status (its codeCount is the new total). An
// Idempotency-Key makes it safe to retry: the same key and codeCount answer
// the recorded top-up (Idempotent-Replayed: true), another codeCount 409.
func (s *Server) topUpPromotion(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdemKeyLen || !printableASCII(key) {
		s.writeError(w, r, promo.FieldErrorf("Idempotency-Key", "must be at most %d printable ASCII characters", maxIdemKeyLen))
		return
	}
	st, err := s.promotion(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req topUpRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	n, err := strconv.ParseInt(req.CodeCount.String(), 10, 64)
	switch {
	case err != nil || n < 1:
		s.writeError(w, r, promo.FieldErrorf("codeCount", "must be a whole number of at least 1"))
		return
	case n > s.cfg.MaxCodeCount:
		s.writeError(w, r, promo.FieldErrorf("codeCount", "must be at most %d", s.cfg.MaxCodeCount))
		return
	case st.Format == nil:
		s.writeError(w, r, promo.Errorf(promo.EConflict, "promotion %d is a vanity code: it cannot be topped up", st.ID))
		return
	}
	layout, err := codes.NewLayout(*st.Format)
	if err != nil {
		s.writeError(w, r, promo.Errorf(promo.EConflict, "the promotion's format is no longer accepted: %v", err))
		return
	}
	topUp := promo.TopUpRequest{PromotionID: st.ID, CodeCount: n, BatchSize: s.cfg.BatchCodeCount,
		SeqLimit: layout.SeqLimit(s.cfg.MaxDensity), Actor: s.actor(r, "admin"), IdempotencyKey: key}
	if key != "" {
		sum := sha256.Sum256([]byte("topup\x00" + strconv.FormatInt(n, 10)))
		topUp.RequestHash = hex.EncodeToString(sum[:])
	}
	t, replayed, err := s.administrator().TopUp(r.Context(), topUp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	} else if s.outbox != nil {
		s.outbox.Notify()
	}
	after, err := s.store.GetPromotion(r.Context(), st.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"topup": t, "promotion": s.withTopUps(r, statusView(after), st.ID)})
}

// withTopUps adds a promotion's top-ups (if any) and its deletion (if
// requested: status deleting, then deleted) to its status view.
func (s *Server) withTopUps(r *http.Request, v map[string]any, id int64) map[string]any {
	a, ok := s.redeemer.(Administrator)
	if !ok {
		return v
	}
	list, err := a.TopUps(r.Context(), id)
	if err != nil {
		s.log.Warn("status without its top-ups", zap.Int64("promotion_id", id), zap.Error(err))
		return v
	}
	if len(list) > 0 {
		v["topups"] = list
	}
	d, err := a.DeletionStatus(r.Context(), id)
	if err != nil {
		s.log.Warn("status without its deletion", zap.Int64("promotion_id", id), zap.Error(err))
		return v
	}
	if d.RequestedAt != nil {
		v["deletion"] = d // the status already says deleting/deleted (PromotionStatus.Status)
	}
	return v
}

// listTopUps answers a promotion's top-ups, oldest first, and its total.
func (s *Server) listTopUps(w http.ResponseWriter, r *http.Request) {
	st, err := s.promotion(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.administrator().TopUps(r.Context(), st.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []promo.TopUp{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"codeCount": st.CodeCount, "generatedCount": st.GeneratedCount,
		"status": st.Status(), "topups": list})
}

// cancelPromotion stops a generating promotion and answers its status
// (status "cancelled", generatedCount the codes that exist).
func (s *Server) cancelPromotion(w http.ResponseWriter, r *http.Request) {
	id, err := promo.ParseID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	replayed, err := s.administrator().CancelPromotion(r.Context(), s.actor(r, "admin"), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.store.GetPromotion(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusOK, statusView(st))
}

func (s *Server) administrator() Administrator { return s.redeemer.(Administrator) }

// actor names who made a request, for the audit log: the token's role and
// the first 8 hex digits of its SHA-256 (tokens have no names in the
// configuration; the fingerprint tells them apart without storing them).
func (s *Server) actor(r *http.Request, role string) string {
	if s.cfg.Open {
		return role + ":open"
	}
	_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	sum := sha256.Sum256([]byte(token))
	return role + ":" + hex.EncodeToString(sum[:4])
}

// revokeRequest is the body of POST /v1/codes/{code}/revoke.
type revokeRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) revokeCode(w http.ResponseWriter, r *http.Request) {
	code, err := typedCode(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req revokeRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkText("reason", req.Reason, maxReasonLen, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	v, replayed, err := s.administrator().Revoke(r.Context(), s.actor(r, "admin"), code, req.Reason)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request) {
	id, err := promo.ParseID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := promo.AuditFilter{PromotionID: id, After: q.Get("after")}
	if err := checkText("after", f.After, 64, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			s.writeError(w, r, promo.FieldErrorf("limit", "must be a whole number from 1 to 1000"))
			return
		}
		f.Limit = n
	}
	page, err := s.administrator().AuditLog(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if page == nil {
		page = []redemption.AuditView{}
	}
	body := map[string]any{"entries": page}
	limit := f.Limit
	if limit == 0 {
		limit = 100
	}
	if len(page) == limit {
		body["next"] = page[len(page)-1].ID
	}
	writeJSON(w, http.StatusOK, body)
}

// patchRequest is the body of PATCH /v1/promotions/{id}: every field is
// optional; startsAt/expiresAt null clears the bound.
type patchRequest struct {
	Name      *string         `json:"name"`
	StartsAt  json.RawMessage `json:"startsAt"`
	ExpiresAt json.RawMessage `json:"expiresAt"`
	Active    *bool           `json:"active"`
}

func (s *Server) patchPromotion(w http.ResponseWriter, r *http.Request) {
	id, err := promo.ParseID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req patchRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	u := promo.PromotionUpdate{ID: id, Name: req.Name, Active: req.Active, Actor: s.actor(r, "admin")}
	var fields []promo.FieldError
	if req.Name != nil {
		if err := checkText("name", *req.Name, maxNameLen, true); err != nil {
			fields = append(fields, err.(*promo.Error).Fields...)
		}
	}
	for _, b := range []struct {
		field string
		raw   json.RawMessage
		set   *bool
		dst   **time.Time
	}{{"startsAt", req.StartsAt, &u.SetStartsAt, &u.StartsAt}, {"expiresAt", req.ExpiresAt, &u.SetExpiresAt, &u.ExpiresAt}} {
		if len(b.raw) == 0 {
			continue
		}
		*b.set = true
		if string(b.raw) == "null" {
			continue
		}
		var t time.Time
		if err := json.Unmarshal(b.raw, &t); err != nil {
			fields = append(fields, promo.FieldError{Field: b.field, Message: "must be an RFC 3339 time or null"})
			continue
		}
		t = t.UTC().Truncate(time.Microsecond)
		*b.dst = &t
	}
	if len(fields) > 0 {
		s.writeError(w, r, &promo.Error{Code: promo.EInvalid, Message: "invalid request", Fields: fields})
		return
	}
	v, err := s.administrator().UpdatePromotion(r.Context(), u)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
