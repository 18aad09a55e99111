package console

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/promocodes/promocodes/pkg/client"
)

// Editing a promotion's settings (PATCH /v1/promotions/{id}), and the
// confirmation before a cancel, like the one before a delete.

// editForm is the edit page's form, one input per setting; each becomes one
// part of the PATCH when it differs from the promotion's value. A setting
// the API learns to change (eligibility, say) is one more field here, in
// editFormOf, in update and in edit.html.
type editForm struct {
	Name      string
	StartsAt  string // timeInput, UTC; "" for no start bound
	ExpiresAt string // timeInput, UTC; "" for no expiry
}

func formTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(timeInput)
}

func editFormOf(p client.Status) editForm {
	return editForm{Name: p.Name, StartsAt: formTime(p.StartsAt), ExpiresAt: formTime(p.ExpiresAt)}
}

func readEditForm(r *http.Request) editForm {
	return editForm{Name: r.PostFormValue("name"), StartsAt: strings.TrimSpace(r.PostFormValue("startsAt")),
		ExpiresAt: strings.TrimSpace(r.PostFormValue("expiresAt"))}
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
		if pe, ok := asProblem(err); ok && len(pe.Fields) > 0 {
			for _, fe := range pe.Fields {
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
