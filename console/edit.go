package console

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/promo"
)

// Editing a promotion's settings (PATCH /v1/promotions/{id}), and the
// confirmation before a cancel, like the one before a delete.

// editForm is the edit page's form, one input per setting; each becomes one
// part of the PATCH when it differs from the promotion's value. A setting
// the API learns to change is one more field here, in editFormOf, in update
// and in edit.html.
type editForm struct {
	Name      string
	StartsAt  string // timeInput, UTC; "" for no start bound
	ExpiresAt string // timeInput, UTC; "" for no expiry
	// The eligibility rules; Rules says the form carried them (a form
	// without them leaves the rules as they are).
	Rules          bool
	Segments       string // comma-separated
	Countries      string // comma-separated ISO 3166-1 alpha-2
	MinAmount      string // decimal; "" for no minimum
	MinCurrency    string
	FirstOrderOnly bool
}

func formTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(timeInput)
}

func editFormOf(p client.Status) editForm {
	f := editForm{Name: p.Name, StartsAt: formTime(p.StartsAt), ExpiresAt: formTime(p.ExpiresAt), Rules: true}
	if e := p.Eligibility; e != nil {
		f.Segments, f.Countries = strings.Join(e.Segments, ", "), strings.Join(e.Countries, ", ")
		if m := e.MinOrderAmount; m != nil {
			f.MinAmount, f.MinCurrency = m.Amount.String(), m.Currency
		}
		f.FirstOrderOnly = e.FirstOrderOnly
	}
	return f
}

func readEditForm(r *http.Request) editForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return editForm{Name: r.PostFormValue("name"), StartsAt: v("startsAt"), ExpiresAt: v("expiresAt"),
		Rules: v("rules") == "1", Segments: v("segments"), Countries: v("countries"), MinAmount: v("minAmount"),
		MinCurrency: v("minCurrency"), FirstOrderOnly: v("firstOrderOnly") != ""}
}

// list splits a comma-separated input into its non-empty items.
func list(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// eligibility is the form's rules (the API checks them and names what is
// wrong), or an error for an amount that is not one.
func (f editForm) eligibility(errs map[string]string) promo.Eligibility {
	e := promo.Eligibility{Segments: list(f.Segments), Countries: list(f.Countries), FirstOrderOnly: f.FirstOrderOnly}
	if f.MinAmount != "" || f.MinCurrency != "" {
		a, err := promo.ParseAmount(f.MinAmount)
		if err != nil {
			errs["eligibility.minOrderAmount.amount"] = "must be a decimal amount such as 25 or 19.99"
		}
		e.MinOrderAmount = &promo.Money{Amount: a, Currency: f.MinCurrency}
	}
	return e.Normalize()
}

// update is the PATCH that turns p's settings into f's, and the fields
// that do not parse.
func (f editForm) update(p client.Status) (client.PromotionUpdate, bool, map[string]string) {
	var u client.PromotionUpdate
	errs := map[string]string{}
	changed := false
	if f.Name != p.Name {
		u.Name, changed = new(f.Name), true
	}
	for _, t := range []struct {
		field, v, was string
		set           **time.Time
		clear         *bool
	}{{"startsAt", f.StartsAt, formTime(p.StartsAt), &u.StartsAt, &u.ClearStartsAt},
		{"expiresAt", f.ExpiresAt, formTime(p.ExpiresAt), &u.ExpiresAt, &u.ClearExpiresAt}} {
		if t.v != t.was {
			changed = true
			*t.set, *t.clear = formTimeField(errs, t.field, t.v), t.v == ""
		}
	}
	if f.Rules {
		now, was := f.eligibility(errs), promo.Eligibility{}
		if p.Eligibility != nil {
			was = p.Eligibility.Normalize()
		}
		if !reflect.DeepEqual(now, was) {
			u.SetEligibility, u.Eligibility, changed = true, &now, true
		}
	}
	return u, changed, errs
}

func (c *Console) editPage(w http.ResponseWriter, r *http.Request) {
	p, err := c.loadPromotion(r)
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	c.render(w, r, "edit", map[string]any{"P": p, "F": editFormOf(p), "Errors": map[string]string{}})
}

// editPromotion sends the changed settings; a refusal shows the form again
// with the API's words beside the fields.
func (c *Console) editPromotion(w http.ResponseWriter, r *http.Request) {
	p, err := c.loadPromotion(r)
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	f := readEditForm(r)
	u, changed, errs := f.update(p)
	if len(errs) == 0 && !changed {
		c.done(w, r, p.ID, "Nothing to change.")
		return
	}
	status := http.StatusUnprocessableEntity
	if len(errs) == 0 {
		api, ctx := c.apiFor(r)
		s, err := api.UpdatePromotion(ctx, p.ID, u)
		if err == nil {
			c.done(w, r, p.ID, fmt.Sprintf("Saved: “%s”, %s → %s.", s.Name, windowEnd(s.StartsAt, "now"),
				windowEnd(s.ExpiresAt, "no expiry")))
			return
		}
		status = apiStatus(err)
		if pe, ok := asProblem(err); ok && len(pe.Errors) > 0 {
			for _, fe := range pe.Errors {
				errs[fe.Field] = fe.Message
			}
		} else {
			errs["form"] = apiMessage(err)
		}
	}
	w.WriteHeader(status)
	c.render(w, r, "edit", map[string]any{"P": p, "F": f, "Errors": errs})
}

func windowEnd(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// cancelPage is the first step of a cancel: what it does, and a form that
// needs its box ticked.
func (c *Console) cancelPage(w http.ResponseWriter, r *http.Request) {
	c.renderCancel(w, r, http.StatusOK, "")
}

func (c *Console) renderCancel(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	c.renderConfirm(w, r, "cancel", status, errMsg)
}

// renderConfirm renders a confirmation page (cancel, delete) of the
// request's promotion under status, with errMsg beside its form.
func (c *Console) renderConfirm(w http.ResponseWriter, r *http.Request, page string, status int, errMsg string) {
	p, err := c.loadPromotion(r)
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	c.render(w, r, page, map[string]any{"P": p, "Error": errMsg, "Missing": humanize.Comma(max(p.CodeCount-p.GeneratedCount, 0))})
}
