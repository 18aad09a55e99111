package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/codes"
)

// The records an admin follows from one to the next: a code (its state,
// uses, live reservations, owner, redemptions; revoke and rollback), a
// promotion's redemption log (by user, code and time; CSV), a user (their
// redemptions and codes across promotions; rollback), and the search that
// leads to a code or a user. Every read and action is one call of the API
// (pkg/client), so its validation, authorisation and audit log apply.

// recordsPage is how many redemptions a page shows.
const recordsPage = 50

func (c *Console) recordRoutes() {
	c.mux.Handle("GET /console/find", c.auth(c.find))
	c.mux.Handle("GET /console/codes/{code}", c.auth(c.codePage))
	c.mux.Handle("POST /console/codes/{code}/revoke", c.auth(c.revokeFromCode))
	c.mux.Handle("GET /console/users/{user}", c.auth(c.userPage))
	c.mux.Handle("GET /console/users/{user}/redemptions.csv", c.auth(c.userCSV))
	c.mux.Handle("GET /console/promotions/{id}/redemptions", c.auth(c.redemptionLog))
	c.mux.Handle("GET /console/promotions/{id}/redemptions.csv", c.auth(c.redemptionLogCSV))
	c.mux.Handle("POST /console/redemptions/{rid}/rollback", c.auth(c.rollback))
}

// find leads a typed text to the user of that id when they have
// redemptions, else to its code's page. Users are tried first: a look-up of
// a code that does not exist counts against the admin's address as a failed
// guess, and an admin searching for users should not spend those.
func (c *Console) find(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	api, ctx := c.apiFor(r)
	if page, err := api.ListRedemptions(ctx, client.RedemptionQuery{UserID: q, Limit: 1}); err == nil && len(page.Redemptions) > 0 {
		http.Redirect(w, r, "/console/users/"+url.PathEscape(q), http.StatusSeeOther)
		return
	}
	if _, err := codes.Canonical(q); err != nil {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("%q is no user with redemptions, and no code (%v)", q, err))
		return
	}
	v, err := api.LookupCode(ctx, q, "")
	if err == nil {
		http.Redirect(w, r, "/console/codes/"+url.PathEscape(v.Code), http.StatusSeeOther)
		return
	}
	if p, ok := asProblem(err); ok && (p.Status == http.StatusNotFound || p.Status == http.StatusUnprocessableEntity) {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("%q is no user with redemptions, and no code (%s)", q, apiMessage(err)))
		return
	}
	c.failAPI(w, r, err)
}

// codePage shows one code, typed in any spelling.
func (c *Console) codePage(w http.ResponseWriter, r *http.Request) {
	api, ctx := c.apiFor(r)
	v, err := api.LookupCode(ctx, r.PathValue("code"), "")
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	if v.Code != r.PathValue("code") { // one address per code: its display form
		http.Redirect(w, r, "/console/codes/"+url.PathEscape(v.Code), http.StatusSeeOther)
		return
	}
	q := client.RedemptionQuery{PromotionID: v.Promotion.ID, Code: v.Code, After: r.URL.Query().Get("after"),
		Limit: recordsPage}
	data := map[string]any{"V": v, "Back": r.URL.RequestURI()}
	if page, err := api.ListRedemptions(ctx, q); err != nil {
		data["RedemptionsError"] = apiMessage(err)
	} else {
		data["Redemptions"], data["NextURL"] = page.Redemptions, nextURL(r.URL.EscapedPath(), nil, page.Next)
	}
	c.render(w, r, "code", data)
}

// revokeFromCode revokes the code of the page.
func (c *Console) revokeFromCode(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	api, ctx := c.apiFor(r)
	rv, err := api.RevokeCode(ctx, code, reason)
	if err != nil {
		c.failBack(w, r, err, "/console/codes/"+url.PathEscape(code))
		return
	}
	msg := fmt.Sprintf("Revoked %s: it is refused from now on (410 revoked).", rv.Code)
	if rv.Replayed {
		msg = fmt.Sprintf("%s was already revoked (reason: %s).", rv.Code, rv.Reason)
	}
	c.setFlash(w, r, msg)
	http.Redirect(w, r, "/console/codes/"+url.PathEscape(rv.Code), http.StatusSeeOther)
}

// rollback gives a redemption's use back, then returns to the page the form
// was on.
func (c *Console) rollback(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("rid")
	back := safeNext(r.PostFormValue("back"))
	api, ctx := c.apiFor(r)
	rd, replayed, err := api.RollbackRedemption(ctx, id, strings.TrimSpace(r.PostFormValue("reason")))
	if err != nil {
		c.failBack(w, r, err, back)
		return
	}
	if replayed {
		c.setFlash(w, r, fmt.Sprintf("Redemption %s of %s had been rolled back already (%s).", rd.ID, rd.Code, rd.RollbackReason))
	} else {
		c.setFlash(w, r, fmt.Sprintf("Rolled back redemption %s: %s has a use back, and %s's allowance in promotion %s too.",
			rd.ID, rd.Code, rd.UserID, rd.PromotionID))
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// failBack is the error page of a refused action, with a way back.
func (c *Console) failBack(w http.ResponseWriter, r *http.Request, err error, back string) {
	w.WriteHeader(apiStatus(err))
	c.render(w, r, "error", map[string]any{"Status": apiStatus(err), "Error": apiMessage(err), "Back": back})
}

// logFilter is the redemption log's filter form, as submitted.
type logFilter struct {
	User, Code, From, To string
}

func readLogFilter(v url.Values) logFilter {
	return logFilter{User: strings.TrimSpace(v.Get("user")), Code: strings.TrimSpace(v.Get("code")),
		From: strings.TrimSpace(v.Get("from")), To: strings.TrimSpace(v.Get("to"))}
}

// timeInput is the layout of the console's time fields (datetime-local,
// UTC).
const timeInput = "2006-01-02T15:04"

// formTimeField reads a time field: nil when empty; a value that does not
// parse is nil with its message in errs.
func formTimeField(errs map[string]string, field, v string) *time.Time {
	if v == "" {
		return nil
	}
	t, err := time.Parse(timeInput, v)
	if err != nil {
		errs[field] = "must be a date and time"
		return nil
	}
	return new(t.UTC())
}

// query turns the form into the API's query; a time that does not parse is
// a field error.
func (f logFilter) query(promotionID, after string) (client.RedemptionQuery, map[string]string) {
	q := client.RedemptionQuery{PromotionID: promotionID, UserID: f.User, Code: f.Code, After: after, Limit: recordsPage}
	errs := map[string]string{}
	q.From, q.To = formTimeField(errs, "from", f.From), formTimeField(errs, "to", f.To)
	return q, errs
}

// withQuery is path with the query v.
func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// nextURL links to the next page (cursor after) of path with the query v;
// "" when there is none.
func nextURL(path string, v url.Values, after string) string {
	if after == "" {
		return ""
	}
	q := url.Values{"after": {after}}
	for k, vs := range v {
		q[k] = vs
	}
	return withQuery(path, q)
}

// values is the form as a query string (for the next page and the CSV).
func (f logFilter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"user": f.User, "code": f.Code, "from": f.From, "to": f.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// redemptionLog is a promotion's redemptions, filtered, newest first.
func (c *Console) redemptionLog(w http.ResponseWriter, r *http.Request) {
	p, err := c.loadPromotion(r)
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	f := readLogFilter(r.URL.Query())
	q, errs := f.query(p.ID, r.URL.Query().Get("after"))
	data := map[string]any{"P": p, "F": f, "Errors": errs, "Back": r.URL.RequestURI(),
		"CSVURL": withQuery("/console/promotions/"+p.ID+"/redemptions.csv", f.values())}
	status := http.StatusOK
	if len(errs) == 0 {
		api, ctx := c.apiFor(r)
		page, err := api.ListRedemptions(ctx, q)
		if err != nil {
			status = apiStatus(err)
			errs["form"] = apiMessage(err)
		} else {
			data["Redemptions"], data["NextURL"] = page.Redemptions, nextURL(r.URL.EscapedPath(), f.values(), page.Next)
		}
	} else {
		status = http.StatusUnprocessableEntity
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	c.render(w, r, "redemptions", data)
}

// redemptionLogCSV streams the API's CSV of the filtered log.
func (c *Console) redemptionLogCSV(w http.ResponseWriter, r *http.Request) {
	id, ok := c.promotionID(w, r)
	if !ok {
		return
	}
	q, errs := readLogFilter(r.URL.Query()).query(id, "")
	if len(errs) > 0 {
		c.fail(w, r, http.StatusUnprocessableEntity, errors.New("from and to must be dates and times"))
		return
	}
	api, ctx := c.apiFor(r)
	out := &download{w: w, name: "promotion-" + id + "-redemptions.csv"}
	_, err := api.ExportRedemptions(ctx, q, out)
	out.end(w, r, c, err)
}

// userPage is one user's redemptions across promotions, and the codes they
// used.
func (c *Console) userPage(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	api, ctx := c.apiFor(r)
	page, err := api.ListRedemptions(ctx, client.RedemptionQuery{UserID: user, After: r.URL.Query().Get("after"),
		Limit: recordsPage})
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	names := map[string]string{}
	for _, rd := range page.Redemptions {
		if _, ok := names[rd.PromotionID]; !ok {
			names[rd.PromotionID] = "" // a promotion that cannot be read is shown by its id
			if p, err := api.GetPromotion(ctx, rd.PromotionID); err == nil {
				names[rd.PromotionID] = p.Name
			}
		}
	}
	data := map[string]any{"User": user, "Redemptions": page.Redemptions, "Names": names,
		"NextURL": nextURL(r.URL.EscapedPath(), nil, page.Next), "Codes": codesOf(page.Redemptions), "Back": r.URL.RequestURI()}
	if issued, err := api.UserCodes(ctx, user); err != nil {
		data["IssuedError"] = apiMessage(err)
	} else {
		data["Issued"] = issued
	}
	c.render(w, r, "user", data)
}

// usedCode is a code a user redeemed, with how often (live, rolled back).
type usedCode struct {
	Code, PromotionID string
	Live, RolledBack  int
}

// codesOf lists the codes of rs, in order of first appearance.
func codesOf(rs []client.Redemption) []usedCode {
	var out []usedCode
	idx := map[[2]string]int{}
	for _, rd := range rs {
		k := [2]string{rd.PromotionID, rd.Code}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, usedCode{Code: rd.Code, PromotionID: rd.PromotionID})
		}
		if rd.RolledBackAt != nil {
			out[i].RolledBack++
		} else {
			out[i].Live++
		}
	}
	return out
}

// userCSV streams the API's CSV of a user's redemptions.
func (c *Console) userCSV(w http.ResponseWriter, r *http.Request) {
	api, ctx := c.apiFor(r)
	out := &download{w: w, name: "user-redemptions.csv"}
	_, err := api.ExportRedemptions(ctx, client.RedemptionQuery{UserID: r.PathValue("user")}, out)
	out.end(w, r, c, err)
}
