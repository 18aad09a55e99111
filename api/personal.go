package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
	"github.com/promocodes/promocodes/redemption"
)

// Issuer is what the personal code endpoints need: the redemption service.
type Issuer interface {
	Issue(ctx context.Context, in redemption.IssueInput) (redemption.IssuanceView, bool, error)
	UserCodes(ctx context.Context, userID string, limit int) ([]promo.UserCode, error)
}

// ShopperValidator is the validation of a code for a shopper and order.
type ShopperValidator interface {
	ValidateFor(ctx context.Context, client redemption.Client, raw, userID string, shopper *promo.Shopper) (redemption.CodeView, error)
}

func (s *Server) personalRoutes() []route {
	return []route{
		{"POST /v1/promotions/{id}/issuances", s.redeemRole(s.queued(s.shopperIdentity(s.issueCodes)))},
		{"GET /v1/users/{userId}/codes", s.redeemRole(s.deadline(s.shopperIdentity(s.listUserCodes)))},
	}
}

// shopperOf is what a redemption or reservation body (or a validation's
// query) says about the shopper as a promo.Shopper (nil when nothing is
// set), or the field errors.
func shopperOf(f wire.Shopper) (*promo.Shopper, []promo.FieldError) {
	if f.Segments == nil && f.Order == nil && f.FirstOrder == nil && f.Country == nil {
		return nil, nil
	}
	sh := promo.Shopper{Segments: f.Segments, FirstOrder: f.FirstOrder}
	var errs []promo.FieldError
	if f.Country != nil {
		if sh.Country = *f.Country; sh.Country == "" {
			errs = append(errs, promo.FieldError{Field: "country", Message: "must be an ISO 3166-1 alpha-2 country code, not empty"})
		}
	}
	if o := f.Order; o != nil {
		sh.Order = &promo.Order{Currency: o.Currency, Discount: o.Discount, FirstOrder: o.FirstOrder}
		if o.Amount == nil {
			errs = append(errs, promo.FieldError{Field: "order.amount", Message: "must be set"})
		} else {
			sh.Order.Amount = *o.Amount
		}
	}
	errs = append(errs, sh.Validate()...)
	if o := f.Order; o != nil && o.FirstOrder != nil && f.FirstOrder != nil && *o.FirstOrder != *f.FirstOrder {
		errs = append(errs, promo.FieldError{Field: "firstOrder", Message: "differs from order.firstOrder"})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	n := sh.Normalize()
	return &n, nil
}

// countSegments counts the segments of the query values vs as
// shopperQuery reads them (comma-separated, blanks skipped), allocating
// nothing.
func countSegments(vs []string) int {
	n := 0
	for _, v := range vs {
		for seg := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(seg) != "" {
				if n++; n > promo.MaxSegments {
					return n
				}
			}
		}
	}
	return n
}

// shopperQuery reads the same from a validation's query string: segments
// (comma-separated or repeated), orderAmount with currency, firstOrder,
// country.
func shopperQuery(r *http.Request) (*promo.Shopper, error) {
	q := r.URL.Query()
	var f wire.Shopper
	// Counted before they are kept: a query string of 400,000 one-letter
	// segments cost 59 times its size to split and keep.
	if countSegments(q["segments"]) > promo.MaxSegments {
		return nil, promo.FieldErrorf("segments", "at most %d segments", promo.MaxSegments)
	}
	for _, v := range q["segments"] {
		for _, seg := range strings.Split(v, ",") {
			if seg = strings.TrimSpace(seg); seg != "" {
				f.Segments = append(f.Segments, seg)
			}
		}
	}
	if c := q.Get("country"); c != "" {
		f.Country = &c
	}
	var fields []promo.FieldError
	if v := q.Get("firstOrder"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fields = append(fields, promo.FieldError{Field: "firstOrder", Message: "must be true or false"})
		}
		f.FirstOrder = &b
	}
	if v := q.Get("orderAmount"); v != "" || q.Get("currency") != "" {
		a, err := promo.ParseAmount(v)
		if err != nil {
			fields = append(fields, promo.FieldError{Field: "orderAmount", Message: err.Error()})
		}
		f.Order = &wire.Order{Amount: &a, Currency: q.Get("currency")}
	}
	sh, errs := shopperOf(f)
	if fields = append(fields, errs...); len(fields) > 0 {
		return nil, &promo.Error{Code: promo.EInvalid, Message: "invalid request", Fields: fields}
	}
	return sh, nil
}

func (s *Server) issueCodes(w http.ResponseWriter, r *http.Request) {
	id, err := promo.ParseID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req wire.Issue
	key, fields, ok := s.readShopper(w, r, &req, &req.UserID)
	if !ok {
		return
	}
	if err := promo.CheckText("userId", req.UserID, maxUserIDLen, true); err != nil {
		fields = append(fields, err.(*promo.Error).Fields...)
	}
	count := 1
	if len(req.Count) > 0 && string(req.Count) != "null" {
		n, err := strconv.Atoi(string(req.Count))
		if err != nil || n < 1 || n > promo.MaxIssueCount {
			fields = append(fields, promo.FieldError{Field: "count",
				Message: "must be an integer from 1 to " + strconv.Itoa(promo.MaxIssueCount)})
		}
		count = n
	}
	if len(fields) > 0 {
		s.writeError(w, r, &promo.Error{Code: promo.EInvalid, Message: "invalid request", Fields: fields})
		return
	}
	v, replayed, err := s.redeemer.Issue(r.Context(), redemption.IssueInput{PromotionID: id, UserID: req.UserID,
		Count: count, IdempotencyKey: key, Actor: s.actor(r, "token")})
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/users/"+v.UserID+"/codes")
	writeJSON(w, http.StatusCreated, v)
}

// listUserCodes answers GET /v1/users/{userId}/codes: the codes issued to
// the user, newest first, with their state; with a shopper token only the
// token's own.
func (s *Server) listUserCodes(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("userId")
	if err := promo.CheckText("userId", user, maxUserIDLen, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := shopperUser(r, "userId", user); err != nil {
		s.writeError(w, r, err)
		return
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > promo.MaxUserCodes {
			s.writeError(w, r, promo.FieldErrorf("limit", "must be from 1 to %d", promo.MaxUserCodes))
			return
		}
		limit = n
	}
	cs, err := s.redeemer.UserCodes(r.Context(), user, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if cs == nil {
		cs = []promo.UserCode{}
	}
	writeJSON(w, http.StatusOK, wire.UserCodes{Codes: cs, UserID: user})
}
