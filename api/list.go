package api

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
	"github.com/promocodes/promocodes/promotion"
)

// listPromotions answers GET /v1/promotions?status=&active=&name=&limit=&cursor=:
// newest first, one page at a time. Each item is the promotion's status view
// (statusView), as GET /v1/promotions/{id} has it.
func (s *Server) listPromotions(w http.ResponseWriter, r *http.Request) {
	f, err := parseListFilter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit := f.Limit
	f.Limit++ // one more row tells whether there is a next page
	list, err := s.store.ListPromotions(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page := wire.PromotionPage{Items: make([]wire.Promotion, 0, len(list))}
	if len(list) > limit {
		list = list[:limit]
		page.NextCursor = encodeCursor(list[limit-1].ID)
	}
	for _, st := range list {
		page.Items = append(page.Items, statusView(st))
	}
	writeJSON(w, http.StatusOK, page)
}

// parseListFilter reads the list's query parameters; unknown ones are
// refused, so that a misspelt filter does not silently list everything.
func parseListFilter(r *http.Request) (promo.ListFilter, error) {
	f := promo.ListFilter{Limit: promo.DefaultListLimit}
	q := r.URL.Query()
	var fields []promo.FieldError
	bad := func(field, msg string) { fields = append(fields, promo.FieldError{Field: field, Message: msg}) }
	for k := range q {
		switch k {
		case "status", "active", "name", "limit", "cursor":
		default:
			bad(k, "unknown query parameter (status, active, name, limit, cursor)")
		}
	}
	if v := q.Get("status"); v != "" {
		f.Status = promo.Status(v)
		if !promo.ValidStatus(f.Status) {
			bad("status", "must be one of "+promo.StatusList()+", got "+strconv.Quote(truncate(v, 40)))
		}
	}
	if v := q.Get("active"); v != "" {
		switch v {
		case "true":
			f.Active = new(true)
		case "false":
			f.Active = new(false)
		default:
			bad("active", "must be true or false, got "+strconv.Quote(truncate(v, 40)))
		}
	}
	if err := promo.CheckText("name", q.Get("name"), promotion.MaxNameLen, false); err != nil { // before trimming: U+2028 is a space too
		fields = append(fields, err.(*promo.Error).Fields...)
	}
	f.Name = strings.TrimSpace(q.Get("name"))
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > promo.MaxListLimit {
			bad("limit", "must be an integer from 1 to "+strconv.Itoa(promo.MaxListLimit))
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		id, ok := decodeCursor(v)
		if !ok {
			bad("cursor", "is not a cursor of this list (use nextCursor as given)")
		}
		f.Before = id
	}
	if len(fields) > 0 {
		return f, &promo.Error{Code: promo.EInvalid, Message: "invalid list query", Fields: fields}
	}
	return f, nil
}

const cursorPrefix = "p1:"

func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(id, 10)))
}

func decodeCursor(s string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) {
		return 0, false
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(string(b), cursorPrefix), 10, 64)
	return id, err == nil && id > 0
}
