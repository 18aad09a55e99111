package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

// Issuance is codes handed out to a customer (POST
// /v1/promotions/{id}/issuances), in display form; UserCode is one code
// issued to a customer, with its state now.
type (
	Issuance = wire.Issuance
	UserCode = promo.UserCode
)

// IssueCodes hands out count (0: one) unassigned codes of a generated
// promotion to userID, bound to them; key, when set, is the
// Idempotency-Key (replayed: the same codes answered again). A promotion
// without enough codes left is a *ProblemError with reason pool_exhausted.
func (c *Client) IssueCodes(ctx context.Context, promotionID, userID string, count int, key string) (Issuance, bool, error) {
	in := wire.Issue{UserID: userID}
	if count > 0 {
		in.Count = wire.RawOf(&count)
	}
	body, err := json.Marshal(in)
	if err != nil {
		return Issuance{}, false, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/promotions/"+url.PathEscape(promotionID)+"/issuances", body)
	if err != nil {
		return Issuance{}, false, fmt.Errorf("issue codes of promotion %s: %w", promotionID, err)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	var out Issuance
	resp, _, err := c.doJSON(ctx, req, &out)
	if err != nil {
		return Issuance{}, false, fmt.Errorf("issue codes of promotion %s: %w", promotionID, err)
	}
	return out, resp.Header.Get("Idempotent-Replayed") == "true", nil
}

// UserCodes lists the codes issued to userID, newest first.
func (c *Client) UserCodes(ctx context.Context, userID string) ([]UserCode, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(userID)+"/codes", nil)
	if err != nil {
		return nil, fmt.Errorf("codes of user %s: %w", userID, err)
	}
	var out wire.UserCodes
	if _, _, err := c.doJSON(ctx, req, &out); err != nil {
		return nil, fmt.Errorf("codes of user %s: %w", userID, err)
	}
	return out.Codes, nil
}
