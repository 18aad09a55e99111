package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

// Revocation is a revoked code as POST /v1/codes/{code}/revoke answers it.
type Revocation struct {
	wire.Revocation
	// Replayed: the code had been revoked before (the first reason stays).
	Replayed bool `json:"-"`
}

// RevokeCode makes one code unusable (admin).
func (c *Client) RevokeCode(ctx context.Context, code, reason string) (Revocation, error) {
	body, err := json.Marshal(wire.Reason{Reason: reason})
	if err != nil {
		return Revocation{}, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/codes/"+url.PathEscape(code)+"/revoke", body)
	if err != nil {
		return Revocation{}, fmt.Errorf("revoke code: %w", err)
	}
	var r Revocation
	resp, _, err := c.doJSON(ctx, req, &r)
	if err != nil {
		return Revocation{}, fmt.Errorf("revoke code: %w", err)
	}
	r.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	return r, nil
}

// PromotionUpdate is a PATCH /v1/promotions/{id}: nil fields are left as they
// are; ClearStartsAt/ClearExpiresAt remove a bound.
type PromotionUpdate struct {
	Name           *string
	StartsAt       *time.Time
	ClearStartsAt  bool
	ExpiresAt      *time.Time
	ClearExpiresAt bool
	Active         *bool
	// SetEligibility replaces the eligibility rules with Eligibility (nil
	// or empty: no rules).
	SetEligibility bool
	Eligibility    *promo.Eligibility
}

// PromotionSettings is what PATCH answers.
type PromotionSettings = wire.Settings

// UpdatePromotion changes a promotion's name, window, active flag or
// eligibility rules (admin).
func (c *Client) UpdatePromotion(ctx context.Context, id string, u PromotionUpdate) (PromotionSettings, error) {
	m := wire.PatchPromotion{Name: u.Name, Active: u.Active}
	switch {
	case u.ClearStartsAt:
		m.StartsAt = wire.Null
	case u.StartsAt != nil:
		m.StartsAt = wire.RawOf(new(u.StartsAt.UTC()))
	}
	switch {
	case u.ClearExpiresAt:
		m.ExpiresAt = wire.Null
	case u.ExpiresAt != nil:
		m.ExpiresAt = wire.RawOf(new(u.ExpiresAt.UTC()))
	}
	if u.SetEligibility {
		m.Eligibility = wire.Null
		if u.Eligibility != nil && !u.Eligibility.IsZero() {
			m.Eligibility = wire.RawOf(u.Eligibility)
		}
	}
	body, err := json.Marshal(m)
	if err != nil {
		return PromotionSettings{}, err
	}
	req, err := c.newRequest(ctx, http.MethodPatch, "/v1/promotions/"+url.PathEscape(id), body)
	if err != nil {
		return PromotionSettings{}, fmt.Errorf("update promotion %s: %w", id, err)
	}
	var s PromotionSettings
	if _, _, err := c.doJSON(ctx, req, &s); err != nil {
		return PromotionSettings{}, fmt.Errorf("update promotion %s: %w", id, err)
	}
	return s, nil
}

// AuditEntry is one admin change of a promotion; AuditPage a page of a
// promotion's audit log (Next is the cursor of the following page, "" on
// the last).
type (
	AuditEntry = wire.AuditEntry
	AuditPage  = wire.AuditPage
)

// AuditLog reads a page of a promotion's audit log, newest first.
func (c *Client) AuditLog(ctx context.Context, id, after string, limit int) (AuditPage, error) {
	v := url.Values{}
	if after != "" {
		v.Set("after", after)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/promotions/" + url.PathEscape(id) + "/audit"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	req, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return AuditPage{}, fmt.Errorf("read audit log: %w", err)
	}
	var page AuditPage
	if _, _, err := c.doJSON(ctx, req, &page); err != nil {
		return AuditPage{}, fmt.Errorf("read audit log of promotion %s: %w", id, err)
	}
	return page, nil
}

// CancelPromotion stops a generating promotion (admin) and returns its
// status: cancelled, with the number of codes that exist. replayed is true
// when it had been cancelled before.
func (c *Client) CancelPromotion(ctx context.Context, id string) (st Status, replayed bool, err error) {
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/promotions/"+url.PathEscape(id)+"/cancel", nil)
	if err != nil {
		return Status{}, false, fmt.Errorf("cancel promotion %s: %w", id, err)
	}
	resp, _, err := c.doJSON(ctx, req, &st)
	if err != nil {
		return Status{}, false, fmt.Errorf("cancel promotion %s: %w", id, err)
	}
	return st, resp.Header.Get("Idempotent-Replayed") == "true", nil
}

// TopUp is one top-up as the API answers it.
type TopUp struct {
	promo.TopUp
	// Replayed: the answer to an earlier call with the same Idempotency-Key.
	Replayed bool `json:"-"`
}

// TopUpPromotion adds n codes to a generated promotion (admin); it returns
// the top-up and the promotion's status (codeCount is the new total). A
// non-empty idempotencyKey makes the call safe to repeat: a repeat with the
// same key and count answers the first top-up (Replayed) and adds nothing.
func (c *Client) TopUpPromotion(ctx context.Context, id string, n int64, idempotencyKey string) (TopUp, Status, error) {
	body, err := json.Marshal(wire.TopUpRequest{CodeCount: json.RawMessage(strconv.FormatInt(n, 10))})
	if err != nil {
		return TopUp{}, Status{}, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/promotions/"+url.PathEscape(id)+"/topups", body)
	if err != nil {
		return TopUp{}, Status{}, fmt.Errorf("top up promotion %s: %w", id, err)
	}
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	var out wire.ToppedUp
	resp, _, err := c.doJSON(ctx, req, &out)
	if err != nil {
		return TopUp{}, Status{}, fmt.Errorf("top up promotion %s: %w", id, err)
	}
	return TopUp{TopUp: out.TopUp, Replayed: resp.Header.Get("Idempotent-Replayed") == "true"},
		Status{Promotion: out.Promotion}, nil
}

// Deletion is where a promotion's deletion stands.
type Deletion = wire.Deletion

// DeletePromotion requests a promotion's deletion (admin): it is switched off
// at once and its codes are deleted in the background; follow it with
// GetPromotion (status deleting, then deleted).
func (c *Client) DeletePromotion(ctx context.Context, id string) (Deletion, bool, error) {
	req, err := c.newRequest(ctx, http.MethodDelete, "/v1/promotions/"+url.PathEscape(id), nil)
	if err != nil {
		return Deletion{}, false, fmt.Errorf("delete promotion %s: %w", id, err)
	}
	var out wire.Deleted
	resp, _, err := c.doJSON(ctx, req, &out)
	if err != nil {
		return Deletion{}, false, fmt.Errorf("delete promotion %s: %w", id, err)
	}
	return out.Deletion, resp.Header.Get("Idempotent-Replayed") == "true", nil
}
