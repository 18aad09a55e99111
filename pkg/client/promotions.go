package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/promocodes/promocodes/pkg/promo"
)

// CreateRequest is the body of POST /v1/promotions. Set Code for a single
// vanity code; otherwise CodeCount and Format for generated codes. Zero
// values are left out, so the server applies its defaults.
type CreateRequest struct {
	Name            string        `json:"name"`
	CodeCount       int64         `json:"codeCount,omitempty"`
	Format          *promo.Format `json:"format,omitempty"`
	Code            string        `json:"code,omitempty"`
	MaxUsagePerCode int           `json:"maxUsagePerCode,omitempty"`
	PerUserLimit    int           `json:"perUserLimit,omitempty"`
	StartsAt        *time.Time    `json:"startsAt,omitempty"`
	ExpiresAt       *time.Time    `json:"expiresAt,omitempty"`
}

// Created is the answer to a create.
type Created struct {
	ID     string       `json:"id"`
	Status promo.Status `json:"status"`
	// Location is the status URL the server named (absolute, or as sent).
	Location string `json:"-"`
	// Replayed is true when the server answered 200: a repeat of an earlier
	// create with the same Idempotency-Key, nothing new was created.
	Replayed bool `json:"-"`
}

// Batches counts a promotion's batches by state.
type Batches struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Retrying  int `json:"retrying"`
	Parked    int `json:"parked"`
}

// Status is GET /v1/promotions/{id}.
type Status struct {
	ID              string        `json:"id"`
	Name            string        `json:"name"`
	Kind            promo.Kind    `json:"kind"`
	Status          promo.Status  `json:"status"`
	CodeCount       int64         `json:"codeCount"`
	GeneratedCount  int64         `json:"generatedCount"`
	Batches         Batches       `json:"batches"`
	Format          *promo.Format `json:"format,omitempty"`
	Code            string        `json:"code,omitempty"`
	MaxUsagePerCode int           `json:"maxUsagePerCode"`
	PerUserLimit    int           `json:"perUserLimit,omitempty"`
	StartsAt        *time.Time    `json:"startsAt,omitempty"`
	ExpiresAt       *time.Time    `json:"expiresAt,omitempty"`
	CreatedAt       time.Time     `json:"createdAt"`
	// Raw is the body exactly as the server sent it, fields this client does
	// not know included (for `status --json`).
	Raw json.RawMessage `json:"-"`
}

// Done reports whether generation has ended: completed, failed (batches
// parked; a replay can resume it), cancelled, or deleting/deleted. Nothing
// more happens to such a promotion's progress by itself.
func (s Status) Done() bool {
	switch s.Status {
	case promo.StatusCompleted, promo.StatusFailed, promo.StatusCancelled, promo.StatusDeleting, promo.StatusDeleted:
		return true
	}
	return false
}

// CreatePromotion asks for a new promotion. A non-empty idempotencyKey makes
// the call safe to repeat: the server answers a repeat with the promotion the
// first call created (Created.Replayed).
func (c *Client) CreatePromotion(ctx context.Context, req CreateRequest, idempotencyKey string) (Created, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Created{}, fmt.Errorf("create promotion: %w", err)
	}
	hr, err := c.newRequest(ctx, http.MethodPost, "/v1/promotions", body)
	if err != nil {
		return Created{}, fmt.Errorf("create promotion: %w", err)
	}
	if idempotencyKey != "" {
		hr.Header.Set("Idempotency-Key", idempotencyKey)
	}
	var out Created
	resp, _, err := c.doJSON(ctx, hr, &out)
	if err != nil {
		return Created{}, fmt.Errorf("create promotion %q: %w", req.Name, err)
	}
	if out.ID == "" {
		return Created{}, fmt.Errorf("create promotion %q: %d answer without an id", req.Name, resp.StatusCode)
	}
	out.Replayed = resp.StatusCode == http.StatusOK
	out.Location = resp.Header.Get("Location")
	if out.Location != "" {
		if loc, err := resp.Request.URL.Parse(out.Location); err == nil {
			out.Location = loc.String()
		}
	}
	return out, nil
}

// GetPromotion reads a promotion's status and progress.
func (c *Client) GetPromotion(ctx context.Context, id string) (Status, error) {
	hr, err := c.newRequest(ctx, http.MethodGet, "/v1/promotions/"+url.PathEscape(id), nil)
	if err != nil {
		return Status{}, fmt.Errorf("get promotion %s: %w", id, err)
	}
	var out Status
	_, raw, err := c.doJSON(ctx, hr, &out)
	if err != nil {
		return Status{}, fmt.Errorf("get promotion %s: %w", id, err)
	}
	out.Raw = raw
	return out, nil
}

// WaitPromotion polls the promotion every interval until it is completed or
// failed and returns that final status (a failed promotion is not an error:
// look at Status). onProgress, if not nil, sees every status read, the final
// one included. Transient errors (see IsTransient) are retried with backoff
// for up to the retry max time per poll; a 4xx answer ends the wait at once,
// as does ctx.
func (c *Client) WaitPromotion(ctx context.Context, id string, interval time.Duration, onProgress func(Status)) (Status, error) {
	if interval <= 0 {
		interval = time.Second
	}
	poll := func() (Status, error) {
		st, err := c.GetPromotion(ctx, id)
		if err != nil && (ctx.Err() != nil || !IsTransient(err)) {
			return st, backoff.Permanent(err)
		}
		return st, err
	}
	opts := []backoff.RetryOption{
		backoff.WithBackOff(c.newBackOff()),
		backoff.WithMaxElapsedTime(c.retryMaxTime),
	}
	if c.retryNotify != nil {
		opts = append(opts, backoff.WithNotify(c.retryNotify))
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return Status{}, fmt.Errorf("wait promotion %s: %w", id, context.Cause(ctx))
		case <-t.C:
		}
		st, err := backoff.Retry(ctx, poll, opts...)
		if err != nil {
			if ctx.Err() != nil {
				return Status{}, fmt.Errorf("wait promotion %s: %w", id, context.Cause(ctx))
			}
			return Status{}, fmt.Errorf("wait: %w", err)
		}
		if onProgress != nil {
			onProgress(st)
		}
		if st.Done() {
			return st, nil
		}
		t.Reset(interval)
	}
}
