package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/promocodes/promocodes/pkg/wire"
)

// CodeView is a code as GET /v1/codes/{code} shows it: with an admin
// token and no user, the admin's detail (committed uses, the live
// reservations, the revocation, the owner; Detail says it came).
type CodeView struct {
	wire.CodeDetail
	// Raw is the answer as the API sent it.
	Raw    json.RawMessage `json:"-"`
	detail bool
}

// Detail reports whether the answer is the admin's detail.
func (v CodeView) Detail() bool { return v.detail }

// Reservation is one use of a code held for a checkout.
type Reservation = wire.Reservation

// LookupCode validates a code without using it; userID (optional) adds the
// user's remaining uses. With an admin token and no userID the answer is
// the code's detail (CodeView.Detail). A refusal (code_not_found,
// invalid_code, ...) is a *ProblemError with its Reason.
func (c *Client) LookupCode(ctx context.Context, code, userID string) (CodeView, error) {
	path := "/v1/codes/" + url.PathEscape(code)
	if userID != "" {
		path += "?userId=" + url.QueryEscape(userID)
	}
	req, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return CodeView{}, fmt.Errorf("look up code: %w", err)
	}
	var v CodeView
	_, raw, err := c.doJSON(ctx, req, &v)
	if err != nil {
		return CodeView{}, fmt.Errorf("look up code: %w", err)
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(raw, &fields) // decoded above
	_, v.detail = fields["used"]
	v.Raw = raw
	return v, nil
}

// Redemption is one row of a promotion's audit trail; RedemptionPage one
// page of it, newest first (Next is the cursor of the following page, ""
// at the end).
type (
	Redemption     = wire.Redemption
	RedemptionPage = wire.RedemptionPage
)

// RedemptionQuery selects a page: a promotion's redemptions (PromotionID),
// narrowed to a user or a code (any spelling), or with PromotionID empty one
// user's across every promotion; From (inclusive) and To (exclusive) bound
// the time.
type RedemptionQuery struct {
	PromotionID string
	UserID      string
	Code        string
	From, To    *time.Time
	After       string
	Limit       int
}

func (q RedemptionQuery) path() string {
	v := url.Values{}
	p := "/v1/users/" + url.PathEscape(q.UserID) + "/redemptions"
	if q.PromotionID != "" {
		p = "/v1/promotions/" + url.PathEscape(q.PromotionID) + "/redemptions"
		if q.UserID != "" {
			v.Set("userId", q.UserID)
		}
		if q.Code != "" {
			v.Set("code", q.Code)
		}
	}
	if q.From != nil {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if q.To != nil {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	return p
}

// of names what q reads, for errors.
func (q RedemptionQuery) of() string {
	if q.PromotionID == "" {
		return "user " + strconv.Quote(q.UserID)
	}
	return "promotion " + q.PromotionID
}

// ListRedemptions reads one page of a promotion's audit trail.
func (c *Client) ListRedemptions(ctx context.Context, q RedemptionQuery) (RedemptionPage, error) {
	req, err := c.newRequest(ctx, http.MethodGet, q.path(), nil)
	if err != nil {
		return RedemptionPage{}, fmt.Errorf("list redemptions: %w", err)
	}
	var page RedemptionPage
	if _, _, err := c.doJSON(ctx, req, &page); err != nil {
		return RedemptionPage{}, fmt.Errorf("list redemptions of %s: %w", q.of(), err)
	}
	return page, nil
}

// ExportRedemptions streams the whole audit trail q selects (q.After and
// q.Limit are ignored) as CSV to w and returns the number of data rows.
func (c *Client) ExportRedemptions(ctx context.Context, q RedemptionQuery, w io.Writer) (int64, error) {
	q.After, q.Limit = "", 0
	req, err := c.newRequest(ctx, http.MethodGet, q.path(), nil)
	if err != nil {
		return 0, fmt.Errorf("export redemptions: %w", err)
	}
	req.Header.Set("Accept", "text/csv")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("export redemptions of %s: %w", q.of(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("export redemptions of %s: %w", q.of(), decodeProblem(resp))
	}
	rc := &rowCounter{w: w}
	_, err = io.Copy(rc, resp.Body)
	rows := max(0, rc.lines-1) // the header row
	if err != nil {
		return rows, fmt.Errorf("export redemptions of %s: %w", q.of(), err)
	}
	return rows, nil
}

// RollbackRedemption gives a redemption's use back (once); replayed is true
// when it had been rolled back before (the first reason stays).
func (c *Client) RollbackRedemption(ctx context.Context, id, reason string) (Redemption, bool, error) {
	body, err := json.Marshal(wire.Reason{Reason: reason})
	if err != nil {
		return Redemption{}, false, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/redemptions/"+url.PathEscape(id)+"/rollback", body)
	if err != nil {
		return Redemption{}, false, fmt.Errorf("roll back redemption %s: %w", id, err)
	}
	var r Redemption
	resp, _, err := c.doJSON(ctx, req, &r)
	if err != nil {
		return Redemption{}, false, fmt.Errorf("roll back redemption %s: %w", id, err)
	}
	return r, resp.Header.Get("Idempotent-Replayed") == "true", nil
}
