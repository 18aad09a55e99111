package redemption

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// catalog knows every code space that promotions use: the layout of each
// generated format (deduplicated by code space) and every vanity code. With it
// a typo is refused without touching the codes table: a string that has a
// known format's shape but a wrong check character (invalid_code). Anything
// else goes to the database, which alone says whether a code exists (the
// catalog may be seconds behind another replica's creates).
//
// It is filled incrementally (a promotion's format never changes, so
// "id > last" is enough), every refresh interval and, at most once per
// minGap, before refusing a string as a typo.
// Safe for concurrent use.
type catalog struct {
	store  Store
	log    *zap.Logger
	minGap time.Duration

	mu        sync.RWMutex
	lastID    int64
	byLen     map[int][]*codes.Layout
	counters  map[string]bool
	layouts   map[int64]*codes.Layout // by promotion, for the display form
	vanityIDs map[int64]bool          // promotions known to have a vanity code
	vanity    map[string]bool
	loadedAt  time.Time

	refreshMu sync.Mutex // one refresh at a time
}

func newCatalog(store Store, minGap time.Duration, log *zap.Logger) *catalog {
	return &catalog{store: store, log: log, minGap: minGap, byLen: map[int][]*codes.Layout{},
		counters: map[string]bool{}, layouts: map[int64]*codes.Layout{}, vanityIDs: map[int64]bool{}, vanity: map[string]bool{}}
}

// verdict is what the catalog says about a canonical code.
type verdict int

const (
	unknown  verdict = iota // no format or vanity code matches
	known                   // a vanity code, or a format's shape with a valid check character
	mistyped                // a format's shape, but its check character is wrong
)

// classify looks canon up in memory only.
func (c *catalog) classify(canon string) (verdict, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.vanity[canon] {
		return known, nil
	}
	var typo error
	for _, l := range c.byLen[len(canon)] {
		shape, err := l.Check(canon)
		switch {
		case shape && err == nil:
			return known, nil
		case shape:
			typo = err
		}
	}
	if typo != nil {
		return mistyped, typo
	}
	return unknown, nil
}

// lookup classifies canon. A string that looks like a typo is re-checked
// after a refresh when the catalog is older than minGap (a vanity code of
// that shape may have been created on another replica since).
func (c *catalog) lookup(ctx context.Context, canon string) (verdict, error) {
	v, err := c.classify(canon)
	if v != mistyped {
		return v, err
	}
	c.mu.RLock()
	stale := time.Since(c.loadedAt) >= c.minGap
	c.mu.RUnlock()
	if !stale {
		return v, err
	}
	if err := c.refresh(ctx); err != nil {
		return unknown, err
	}
	return c.classify(canon)
}

// catalogPage is how many promotions one refresh query reads.
const catalogPage = 1000

// refresh reads the promotions created since the last refresh.
func (c *catalog) refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	for {
		c.mu.RLock()
		after := c.lastID
		c.mu.RUnlock()
		ps, err := c.store.CodeSpaces(ctx, after, catalogPage)
		if err != nil {
			return fmt.Errorf("refresh code catalog: %w", err)
		}
		c.add(ps)
		if len(ps) < catalogPage {
			return nil
		}
	}
}

func (c *catalog) add(ps []promo.Promotion) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadedAt = time.Now()
	for _, p := range ps {
		c.lastID = max(c.lastID, p.ID)
		switch {
		case p.Kind == promo.KindVanity:
			canon, err := codes.Canonical(p.VanityCode)
			if err != nil {
				c.log.Warn("vanity code has no canonical form; it cannot be redeemed",
					zap.Int64("promotion_id", p.ID), zap.Error(err))
				continue
			}
			c.vanity[canon] = true
			c.vanityIDs[p.ID] = true
		case p.Format != nil:
			l, err := codes.NewLayout(*p.Format)
			if err != nil {
				c.log.Warn("promotion's format is no longer valid; its codes cannot be recognised",
					zap.Int64("promotion_id", p.ID), zap.Error(err))
				continue
			}
			c.layouts[p.ID] = l
			if c.counters[l.CounterName()] {
				continue
			}
			c.counters[l.CounterName()] = true
			c.byLen[l.CodeLen()] = append(c.byLen[l.CodeLen()], l)
		}
	}
}

// run refreshes every interval until ctx ends.
func (c *catalog) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.refresh(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("code catalog refresh failed; will retry", zap.Error(err))
			}
		}
	}
}

// display renders a canonical code of a promotion the way its format shows
// it (separators, the admin's case for the prefix). A promotion the catalog
// does not know yet (created since the last refresh) triggers a refresh, at
// most once per minGap; a vanity code shows as stored.
func (c *catalog) display(ctx context.Context, promotionID int64, canon string) string {
	l, ok := c.layout(promotionID)
	if !ok {
		c.mu.RLock()
		stale := time.Since(c.loadedAt) >= c.minGap || promotionID > c.lastID
		c.mu.RUnlock()
		if stale {
			if err := c.refresh(ctx); err != nil {
				c.log.Warn("code catalog refresh failed", zap.Error(err))
			}
			l, _ = c.layout(promotionID)
		}
	}
	if l == nil {
		return canon
	}
	return l.Display(canon)
}

func (c *catalog) layout(promotionID int64) (*codes.Layout, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	l, ok := c.layouts[promotionID]
	return l, ok || c.vanityIDs[promotionID]
}
