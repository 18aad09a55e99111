package api

import (
	"context"
	"encoding/binary"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
	"github.com/promocodes/promocodes/redemption"
)

// The admin's views of codes and users: a code's detail (GET
// /v1/codes/{code} with an admin token), the audit trail by code and over a
// time range, and a user's redemptions across promotions.

// Inspector is what those views need from the redemption service.
type Inspector interface {
	CodeDetail(ctx context.Context, client redemption.Client, raw string) (redemption.CodeDetail, error)
	Canonical(ctx context.Context, client redemption.Client, raw string) (string, error)
}

func (s *Server) inspectRoutes() []route {
	return []route{
		{"GET /v1/users/{userId}/redemptions", s.admin(s.listUserRedemptions)},
	}
}

// isAdmin reports whether r carries an admin token (or the API is open).
func (s *Server) isAdmin(r *http.Request) bool {
	if s.cfg.Open {
		return true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && token != "" && knownToken(s.cfg.AdminTokens, token)
}

// codeDetail answers GET /v1/codes/{code} for an admin: the validation view
// plus the committed uses, the revocation and the live reservations.
func (s *Server) codeDetail(w http.ResponseWriter, r *http.Request, code string) {
	d, err := s.redeemer.CodeDetail(r.Context(), s.client(r), code)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// redemptionQuery reads the audit trail's filters shared by a promotion's
// and a user's trail into f: limit, after, and a time range from (inclusive)
// to (exclusive), RFC 3339. Redemption ids are UUIDv7, ordered by the
// millisecond they were taken, so the range becomes an id range (the
// indexes' order: no scan outside it).
func redemptionQuery(q url.Values, f *promo.RedemptionFilter) []promo.FieldError {
	var fields []promo.FieldError
	bad := func(field, msg string) { fields = append(fields, promo.FieldError{Field: field, Message: msg}) }
	f.After = q.Get("after")
	if err := promo.CheckText("after", f.After, maxUserIDLen, false); err != nil {
		fields = append(fields, err.(*promo.Error).Fields...)
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			bad("limit", "must be a whole number from 1 to 1000")
		}
		f.Limit = n
	}
	var from, to time.Time
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"from", &from}, {"to", &to}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			bad(p.name, "must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z")
			continue
		}
		*p.to = t
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		bad("to", "must be after from")
	}
	if !from.IsZero() {
		f.Since = idAt(from)
	}
	if !to.IsZero() {
		if bound := idAt(to); f.After == "" || bound < f.After {
			f.After = bound
		}
	}
	return fields
}

// idAt is the lowest UUIDv7 of the millisecond t falls in: every id taken
// at t or later sorts at or above it, every earlier one below.
func idAt(t time.Time) string {
	ms := max(t.UnixMilli(), 0)
	ms = min(ms, 1<<48-1)
	var u uuid.UUID
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ms))
	copy(u[:6], b[2:])
	return u.String()
}

// codeFilter reads the code query parameter of a promotion's trail into f
// (its canonical form); a malformed code or a typo is invalid_code.
func (s *Server) codeFilter(r *http.Request, f *promo.RedemptionFilter) error {
	raw := r.URL.Query().Get("code")
	if raw == "" {
		return nil
	}
	if len(raw) > maxCodeInput {
		return promo.Refusal(promo.ReasonInvalidCode, "invalid code: longer than %d bytes", maxCodeInput)
	}
	if f.UserID != "" {
		return promo.FieldErrorf("code", "filter by userId or by code, not both")
	}
	canon, err := s.redeemer.Canonical(r.Context(), s.client(r), raw)
	if err != nil {
		return err
	}
	f.Code = canon
	return nil
}

// listUserRedemptions answers GET /v1/users/{userId}/redemptions: one
// user's redemptions in every promotion, newest first, paged (JSON) or
// whole (CSV with Accept: text/csv).
func (s *Server) listUserRedemptions(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("userId")
	f := promo.RedemptionFilter{UserID: user}
	var fields []promo.FieldError
	if err := promo.CheckText("userId", user, maxUserIDLen, true); err != nil {
		fields = append(fields, err.(*promo.Error).Fields...)
	}
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "after", "limit", "from", "to":
		default:
			fields = append(fields, promo.FieldError{Field: k, Message: "unknown query parameter (after, limit, from, to)"})
		}
	}
	fields = append(fields, redemptionQuery(q, &f)...)
	if len(fields) > 0 {
		s.writeError(w, r, &promo.Error{Code: promo.EInvalid, Message: "invalid query", Fields: fields})
		return
	}
	s.answerRedemptions(w, r, f)
}

// answerRedemptions answers a page of the audit trail that f selects as
// JSON ({"redemptions", "next"}), or the whole of it as CSV.
func (s *Server) answerRedemptions(w http.ResponseWriter, r *http.Request, f promo.RedemptionFilter) {
	if wantsCSV(r) {
		s.exportRedemptions(w, r, f)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.DBTimeout)
	defer cancel()
	page, err := s.redeemer.Redemptions(ctx, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if page == nil {
		page = []wire.Redemption{}
	}
	body := wire.RedemptionPage{Redemptions: page}
	if f.Limit == 0 {
		f.Limit = 100
	}
	if len(page) == f.Limit {
		body.Next = page[len(page)-1].ID
	}
	writeJSON(w, http.StatusOK, body)
}

// redemptionsFile names a CSV export of the audit trail.
func redemptionsFile(f promo.RedemptionFilter) string {
	if f.PromotionID == 0 {
		return "user-redemptions.csv"
	}
	return "promotion-" + promo.FormatID(f.PromotionID) + "-redemptions.csv"
}
