package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
	"github.com/promocodes/promocodes/promotion"
)

// Promotions is what the promotion endpoints need: the promotion service.
type Promotions interface {
	Create(ctx context.Context, req promotion.Request) (promotion.Created, error)
	TopUp(ctx context.Context, req promotion.TopUpRequest) (promo.TopUp, promo.PromotionStatus, bool, error)
	TopUps(ctx context.Context, id int64) ([]promo.TopUp, error)
	Update(ctx context.Context, p promotion.Patch) (promo.PromotionSettings, error)
	Cancel(ctx context.Context, actor string, id int64) (promo.PromotionStatus, bool, error)
	Delete(ctx context.Context, actor string, id int64) (promotion.Deletion, bool, error)
	DeletionStatus(ctx context.Context, id int64) (promotion.Deletion, error)
	Revoke(ctx context.Context, actor, raw, reason string) (promotion.RevocationView, bool, error)
	AuditLog(ctx context.Context, f promo.AuditFilter) ([]promotion.AuditView, error)
}

// The promotion service is Promotions (checked when this compiles).
var _ Promotions = (*promotion.Service)(nil)

// lifecycleRoutes are the changes of a promotion after its creation, the
// revocation of one of its codes and its audit log.
func (s *Server) lifecycleRoutes() []route {
	return []route{
		{"PATCH /v1/promotions/{id}", s.admin(s.deadline(s.patchPromotion))},
		{"POST /v1/promotions/{id}/cancel", s.admin(s.deadline(s.cancelPromotion))},
		{"POST /v1/promotions/{id}/topups", s.admin(s.deadline(s.topUpPromotion))},
		{"GET /v1/promotions/{id}/topups", s.admin(s.deadline(s.listTopUps))},
		{"DELETE /v1/promotions/{id}", s.admin(s.deadline(s.deletePromotion))},
		{"POST /v1/codes/{code}/revoke", s.admin(s.deadline(s.revokeCode))},
		{"GET /v1/promotions/{id}/audit", s.admin(s.deadline(s.auditLog))},
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
	v, replayed, err := s.promotions.Delete(r.Context(), s.actor(r, "admin"), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/promotions/"+promo.FormatID(id))
	writeJSON(w, http.StatusAccepted, wire.Deleted{Deletion: v, ID: promo.FormatID(id)})
}

// topUpPromotion adds codes to a generated promotion: 202 with the top-up and
// the promotion's status (its codeCount is the new total). An
// Idempotency-Key makes it safe to retry: the same key and codeCount answer
// the recorded top-up (Idempotent-Replayed: true), another codeCount 409.
func (s *Server) topUpPromotion(w http.ResponseWriter, r *http.Request) {
	key, err := idempotencyKey(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := promo.ParseID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req wire.TopUpRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	n, ok := promotion.ParseCount(req.CodeCount)
	if !ok {
		n = 0 // not an integer literal ("12" included): refused as a count below 1
	}
	t, after, replayed, err := s.promotions.TopUp(r.Context(), promotion.TopUpRequest{PromotionID: id, CodeCount: n,
		Actor: s.actor(r, "admin"), IdempotencyKey: key})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusAccepted, wire.ToppedUp{Promotion: s.withTopUps(r, statusView(after), id), TopUp: t})
}

// withTopUps adds a promotion's top-ups (if any) and its deletion (if
// requested: status deleting, then deleted) to its status view.
func (s *Server) withTopUps(r *http.Request, v wire.Promotion, id int64) wire.Promotion {
	list, err := s.promotions.TopUps(r.Context(), id)
	if err != nil {
		s.log.Warn("status without its top-ups", zap.Int64("promotion_id", id), zap.Error(err))
		return v
	}
	v.TopUps = list
	d, err := s.promotions.DeletionStatus(r.Context(), id)
	if err != nil {
		s.log.Warn("status without its deletion", zap.Int64("promotion_id", id), zap.Error(err))
		return v
	}
	if d.RequestedAt != nil {
		v.Deletion = &d // the status already says deleting/deleted (PromotionStatus.Status)
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
	list, err := s.promotions.TopUps(r.Context(), st.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []promo.TopUp{}
	}
	writeJSON(w, http.StatusOK, wire.TopUps{CodeCount: st.CodeCount, GeneratedCount: st.GeneratedCount,
		Status: st.Status(), TopUps: list})
}

// cancelPromotion stops a generating promotion and answers its status
// (status "cancelled", generatedCount the codes that exist).
func (s *Server) cancelPromotion(w http.ResponseWriter, r *http.Request) {
	id, err := promo.ParseID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, replayed, err := s.promotions.Cancel(r.Context(), s.actor(r, "admin"), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusOK, statusView(st))
}

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

func (s *Server) revokeCode(w http.ResponseWriter, r *http.Request) {
	code, err := typedCode(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req wire.Reason
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := promo.CheckText("reason", req.Reason, maxReasonLen, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	v, replayed, err := s.promotions.Revoke(r.Context(), s.actor(r, "admin"), code, req.Reason)
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
	if err := promo.CheckText("after", f.After, 64, false); err != nil {
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
	page, err := s.promotions.AuditLog(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if page == nil {
		page = []promotion.AuditView{}
	}
	body := wire.AuditPage{Entries: page}
	limit := f.Limit
	if limit == 0 {
		limit = 100
	}
	if len(page) == limit {
		body.Next = page[len(page)-1].ID
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) patchPromotion(w http.ResponseWriter, r *http.Request) {
	id, err := promo.ParseID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req wire.PatchPromotion
	// null clears a bound or the rules; elsewhere it is refused.
	if err := s.readJSON(w, r, &req, "/startsAt", "/expiresAt", "/eligibility"); err != nil {
		s.writeError(w, r, err)
		return
	}
	patch := promotion.Patch{ID: id, Actor: s.actor(r, "admin"), Name: req.Name,
		Active: req.Active, StartsAt: req.StartsAt, ExpiresAt: req.ExpiresAt, SetEligibility: len(req.Eligibility) > 0}
	if patch.Eligibility, err = decodeEligibility(req.Eligibility); err != nil {
		s.writeError(w, r, err)
		return
	}
	ps, err := s.promotions.Update(r.Context(), patch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Settings{PromotionSettings: ps, ID: promo.FormatID(ps.ID)})
}
