package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

// CreateRequest is a create (POST /v1/promotions, wire.CreatePromotion):
// Code for a single vanity code; otherwise CodeCount and Format for
// generated codes. Zero values are left out, so the server applies its
// defaults.
type CreateRequest struct {
	Name      string
	CodeCount int64
	Format    *promo.Format
	Code      string
	// MaxUsagePerCode and PerUserLimit: nil leaves the server's default
	// (1 each); a PerUserLimit of 0 is no per-user limit.
	MaxUsagePerCode *int
	PerUserLimit    *int
	StartsAt        *time.Time
	ExpiresAt       *time.Time
	// Eligibility is who may use the codes (nil: anyone).
	Eligibility *promo.Eligibility
}

// body is the request as the API takes it.
func (r CreateRequest) body() wire.CreatePromotion {
	b := wire.CreatePromotion{Name: r.Name, Format: wire.RawOf(r.Format), MaxUsagePerCode: r.MaxUsagePerCode,
		PerUserLimit: r.PerUserLimit, StartsAt: wire.RawOf(r.StartsAt), ExpiresAt: wire.RawOf(r.ExpiresAt),
		Eligibility: wire.RawOf(r.Eligibility)}
	if r.CodeCount != 0 {
		b.CodeCount = wire.RawOf(&r.CodeCount)
	}
	if r.Code != "" {
		b.Code = &r.Code
	}
	return b
}

// Created is the answer to a create.
type Created struct {
	wire.Created
	// Location is the status URL the server named (absolute, or as sent).
	Location string `json:"-"`
	// Replayed is true when the server answered 200: a repeat of an earlier
	// create with the same Idempotency-Key, nothing new was created.
	Replayed bool `json:"-"`
}

// Status is GET /v1/promotions/{id}.
type Status struct {
	wire.Promotion
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
	body, err := json.Marshal(req.body())
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

// ListQuery selects a page of GET /v1/promotions, newest first. Zero
// values are left out (Limit 0: the API's default).
type ListQuery struct {
	Status promo.Status
	Name   string
	Active *bool
	Cursor string
	Limit  int
}

// PromotionPage is one page of the list (wire.PromotionPage); NextCursor
// is "" on the last.
type PromotionPage struct {
	Items      []Status
	NextCursor string
}

// ListPromotions reads one page of the promotions (admin).
func (c *Client) ListPromotions(ctx context.Context, q ListQuery) (PromotionPage, error) {
	v := url.Values{}
	if q.Status != "" {
		v.Set("status", string(q.Status))
	}
	if q.Name != "" {
		v.Set("name", q.Name)
	}
	if q.Active != nil {
		v.Set("active", strconv.FormatBool(*q.Active))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/v1/promotions"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	hr, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return PromotionPage{}, fmt.Errorf("list promotions: %w", err)
	}
	var page wire.PromotionPage
	if _, _, err := c.doJSON(ctx, hr, &page); err != nil {
		return PromotionPage{}, fmt.Errorf("list promotions: %w", err)
	}
	out := PromotionPage{Items: make([]Status, len(page.Items)), NextCursor: page.NextCursor}
	for i, p := range page.Items {
		out.Items[i].Promotion = p
	}
	return out, nil
}

// Stats is GET /v1/promotions/{id}/stats: the promotion's analytics, its
// totals over its life and its series over the window [From, To).
type Stats = promo.StatsReport

// PromotionStats reads a promotion's analytics in buckets of bucket (hour
// or day; "" is the API's default, hour) over the API's default window.
func (c *Client) PromotionStats(ctx context.Context, id string, bucket promo.StatsBucket) (Stats, error) {
	return c.PromotionStatsWindow(ctx, id, bucket, time.Time{}, time.Time{})
}

// PromotionStatsWindow is PromotionStats with the series over [from, to)
// (a zero end: the API's default; at most promo.MaxStatsBuckets buckets).
func (c *Client) PromotionStatsWindow(ctx context.Context, id string, bucket promo.StatsBucket, from, to time.Time) (Stats, error) {
	v := url.Values{}
	if bucket != "" {
		v.Set("bucket", string(bucket))
	}
	if !from.IsZero() {
		v.Set("from", from.UTC().Format(time.RFC3339))
	}
	if !to.IsZero() {
		v.Set("to", to.UTC().Format(time.RFC3339))
	}
	path := "/v1/promotions/" + url.PathEscape(id) + "/stats"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	hr, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return Stats{}, fmt.Errorf("stats of promotion %s: %w", id, err)
	}
	var st Stats
	if _, _, err := c.doJSON(ctx, hr, &st); err != nil {
		return Stats{}, fmt.Errorf("stats of promotion %s: %w", id, err)
	}
	return st, nil
}
