package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/promo"
)

// The lifecycle actions of a promotion, each a POST form (cross-origin
// protection checks where it comes from) that the console turns into one
// call of the API (pkg/client, in-process), so validation, authorisation and
// the audit log are the API's. A success redirects to the promotion's
// page with a flash (POST-redirect-GET: a reload repeats nothing); a refusal
// renders the page again with the API's error beside the form and the API's
// status.

const auditPage = 10 // the entries the page shows

// setFlash leaves a message for the session's next page (keeping the
// session of an open console that was not kept yet).
func (c *Console) setFlash(w http.ResponseWriter, r *http.Request, msg string) {
	s := sessionOf(r)
	c.mu.Lock()
	s.flash = msg
	kept := s.kept
	c.mu.Unlock()
	if !kept {
		c.keep(w, s)
	}
}

// takeFlash returns and clears the session's message.
func (c *Console) takeFlash(s *session) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

// promotionID is the {id} of an action's path, or a 404.
func (c *Console) promotionID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if _, err := promo.ParseID(id); err != nil {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("%q is not a promotion id", id))
		return "", false
	}
	return id, true
}

// refused renders the promotion page again with the action's error beside
// its form, under the API's status.
func (c *Console) refused(w http.ResponseWriter, r *http.Request, status int, action, msg string, form map[string]string) {
	if status < 400 {
		status = http.StatusBadGateway
	}
	c.renderPromotion(w, r, status, map[string]any{"ActionError": map[string]string{action: msg}, "Form": form})
}

func (c *Console) done(w http.ResponseWriter, r *http.Request, id, msg string) {
	c.setFlash(w, r, msg)
	http.Redirect(w, r, "/console/promotions/"+id, http.StatusSeeOther)
}

// setActive switches a promotion's codes off or on: PATCH active.
func (c *Console) setActive(w http.ResponseWriter, r *http.Request) {
	id, ok := c.promotionID(w, r)
	if !ok {
		return
	}
	var active bool
	switch r.PostFormValue("active") {
	case "true":
		active = true
	case "false":
	default:
		c.refused(w, r, http.StatusUnprocessableEntity, "active", "active must be true or false", nil)
		return
	}
	api, ctx := c.apiFor(r)
	v, err := api.UpdatePromotion(ctx, id, client.PromotionUpdate{Active: &active})
	if err != nil {
		c.refused(w, r, apiStatus(err), "active", apiMessage(err), nil)
		return
	}
	if v.Active {
		c.done(w, r, id, "Reactivated: its codes can be redeemed again (within the window and limits).")
	} else {
		c.done(w, r, id, "Deactivated: every redemption and reservation of its codes is refused (410 deactivated) until it is reactivated.")
	}
}

// cancelGeneration stops a pending or generating promotion, once the
// confirmation page's box is ticked.
func (c *Console) cancelGeneration(w http.ResponseWriter, r *http.Request) {
	id, ok := c.promotionID(w, r)
	if !ok {
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		c.renderCancel(w, r, http.StatusUnprocessableEntity, "Tick the box to confirm the cancel; nothing was cancelled.")
		return
	}
	api, ctx := c.apiFor(r)
	p, _, err := api.CancelPromotion(ctx, id)
	if err != nil {
		c.renderCancel(w, r, apiStatus(err), apiMessage(err))
		return
	}
	c.done(w, r, id, fmt.Sprintf("Generation cancelled: %s of %s codes exist and stay redeemable.",
		humanize.Comma(p.GeneratedCount), humanize.Comma(p.CodeCount)))
}

// topUp adds codes to a generated promotion.
func (c *Console) topUp(w http.ResponseWriter, r *http.Request) {
	id, ok := c.promotionID(w, r)
	if !ok {
		return
	}
	raw := strings.TrimSpace(strings.ReplaceAll(r.PostFormValue("codeCount"), ",", ""))
	form := map[string]string{"codeCount": r.PostFormValue("codeCount")}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		c.refused(w, r, http.StatusUnprocessableEntity, "topup", "codeCount: must be a whole number", form)
		return
	}
	key := "" // the form's nonce as the top-up's Idempotency-Key: a double click, or a submit
	// repeated through another replica, adds codes once and shows the first answer again
	if nonce := r.PostFormValue("nonce"); nonce != "" {
		key = "console-topup-" + nonce
	}
	api, ctx := c.apiFor(r)
	t, p, err := api.TopUpPromotion(ctx, id, n, key)
	if err != nil {
		c.refused(w, r, apiStatus(err), "topup", apiMessage(err), form)
		return
	}
	c.done(w, r, id, fmt.Sprintf("Top-up #%d: %s codes added in %d %s; the promotion now has %s codes.",
		t.No, humanize.Comma(t.CodeCount), t.BatchCount, plural(t.BatchCount, "batch", "batches"),
		humanize.Comma(p.CodeCount)))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// revoke makes one code of this promotion unusable. The code is looked up
// first (GET /v1/codes/{code}) so that a code of another promotion is not
// revoked from this page.
func (c *Console) revoke(w http.ResponseWriter, r *http.Request) {
	id, ok := c.promotionID(w, r)
	if !ok {
		return
	}
	code := strings.TrimSpace(r.PostFormValue("code"))
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	form := map[string]string{"code": code, "reason": reason}
	if code == "" {
		c.refused(w, r, http.StatusUnprocessableEntity, "revoke", "code: type the code to revoke", form)
		return
	}
	api, ctx := c.apiFor(r)
	v, err := api.LookupCode(ctx, code, "")
	if err != nil {
		c.refused(w, r, apiStatus(err), "revoke", apiMessage(err), form)
		return
	}
	if v.Promotion.ID != id {
		c.refused(w, r, http.StatusConflict, "revoke", fmt.Sprintf("%s is a code of promotion %s (%s), not of this one: revoke it from its page",
			code, v.Promotion.ID, v.Promotion.Name), form)
		return
	}
	rv, err := api.RevokeCode(ctx, code, reason)
	if err != nil {
		c.refused(w, r, apiStatus(err), "revoke", apiMessage(err), form)
		return
	}
	msg := fmt.Sprintf("Revoked %s: it is refused from now on (410 revoked).", rv.Code)
	if rv.Replayed {
		msg = fmt.Sprintf("%s was already revoked (reason: %s).", rv.Code, rv.Reason)
	}
	c.done(w, r, id, msg)
}

// deletePage is the first step of a deletion: what it does, and a form that
// needs its confirmation box ticked.
func (c *Console) deletePage(w http.ResponseWriter, r *http.Request) {
	c.renderDelete(w, r, http.StatusOK, "")
}

func (c *Console) renderDelete(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	c.renderConfirm(w, r, "delete", status, errMsg)
}

// deletePromotion is the second step: the confirmed request.
func (c *Console) deletePromotion(w http.ResponseWriter, r *http.Request) {
	id, ok := c.promotionID(w, r)
	if !ok {
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		c.renderDelete(w, r, http.StatusUnprocessableEntity, "Tick the box to confirm the deletion; nothing was deleted.")
		return
	}
	api, ctx := c.apiFor(r)
	d, _, err := api.DeletePromotion(ctx, id)
	if err != nil {
		c.renderDelete(w, r, apiStatus(err), apiMessage(err))
		return
	}
	c.done(w, r, id, fmt.Sprintf("Deletion requested: the promotion is switched off and its %s remaining codes are being deleted in the background. Redemptions and the audit log are kept.",
		humanize.Comma(d.CodesLeft)))
}

// lifecycle is what the promotion page offers for p's status.
type lifecycle struct {
	Gone      bool // deleting or deleted: nothing more to do
	CanCancel bool
	CanTopUp  bool
}

func lifecycleOf(p client.Status) lifecycle {
	gone := p.Status == promo.StatusDeleting || p.Status == promo.StatusDeleted
	pendingOrGenerating := p.Status == promo.StatusPending || p.Status == promo.StatusGenerating
	return lifecycle{Gone: gone, CanCancel: !gone && p.Kind == promo.KindGenerated && pendingOrGenerating,
		CanTopUp: !gone && p.Kind == promo.KindGenerated}
}

// issue hands out codes of a generated promotion to a customer (POST
// /v1/promotions/{id}/issuances) and names them in the flash.
func (c *Console) issue(w http.ResponseWriter, r *http.Request) {
	id, ok := c.promotionID(w, r)
	if !ok {
		return
	}
	user := strings.TrimSpace(r.PostFormValue("userId"))
	form := map[string]string{"userId": user, "count": r.PostFormValue("count")}
	count := 1
	if v := strings.TrimSpace(r.PostFormValue("count")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > promo.MaxIssueCount {
			c.refused(w, r, http.StatusUnprocessableEntity, "issue", fmt.Sprintf("count: a number from 1 to %d", promo.MaxIssueCount), form)
			return
		}
		count = n
	}
	if user == "" {
		c.refused(w, r, http.StatusUnprocessableEntity, "issue", "user: type the customer's id", form)
		return
	}
	api, ctx := c.apiFor(r)
	iss, _, err := api.IssueCodes(ctx, id, user, count, r.PostFormValue("nonce"))
	if err != nil {
		c.refused(w, r, apiStatus(err), "issue", apiMessage(err), form)
		return
	}
	c.done(w, r, id, fmt.Sprintf("Issued to %s: %s (bound to them: anyone else is refused not_your_code).",
		iss.UserID, strings.Join(iss.Codes, ", ")))
}
