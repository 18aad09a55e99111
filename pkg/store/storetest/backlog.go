package storetest

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// BacklogStore is a Store that reports its open generation work and its
// connection pool (the pipeline's gauges and the pool metrics).
type BacklogStore interface {
	Store
	Backlog(ctx context.Context) (promo.Backlog, error)
	PoolStats() sql.DBStats
}

// RunBacklog checks Backlog against each kind of batch: waiting, partly
// written, complete, parked, cancelled, of a promotion being deleted, and a
// vanity promotion's (none). Backlog counts the whole database, so open
// returns a store on a database of its own, not shared with other tests.
func RunBacklog(t *testing.T, open func(t *testing.T) BacklogStore) {
	s := open(t)
	h := newHarness(t, s)
	want := func(what string, w promo.Backlog) {
		t.Helper()
		got, err := s.Backlog(h.ctx)
		if err != nil {
			t.Fatalf("%s: Backlog: %v", what, err)
		}
		if got != w {
			t.Errorf("%s: Backlog = %+v, want %+v", what, got, w)
		}
	}
	want("empty database", promo.Backlog{})

	p := h.create(h.generated("a", 250, 100)) // batches of 100, 100, 50
	h.create(h.vanity("V"+h.tag+"BACKLOG", 1))
	want("a new promotion", promo.Backlog{Incomplete: 3, PendingCodes: 250})

	bs := h.batches(p.ID)
	h.commit(h.chunk(bs[0], 0, 100))
	h.commit(h.chunk(bs[1], 0, 30))
	want("one batch complete, one partly written", promo.Backlog{Incomplete: 2, PendingCodes: 70 + 50})

	if err := s.SetBatchState(h.ctx, bs[2].Ref(), promo.BatchParked, "boom"); err != nil {
		t.Fatalf("SetBatchState: %v", err)
	}
	want("one batch parked", promo.Backlog{Incomplete: 1, Parked: 1, PendingCodes: 70})

	c := h.create(h.generated("c", 100, 50))
	if _, err := s.CancelPromotion(h.ctx, cancelReq(c.ID)); err != nil {
		t.Fatalf("CancelPromotion: %v", err)
	}
	d := h.create(h.generated("d", 100, 50))
	if _, err := s.RequestDeletion(h.ctx, promo.AuditEntry{ID: newID(), At: time.Now().UTC().Truncate(time.Microsecond),
		Actor: "admin:test", Action: promo.ActionDeleteRequested, PromotionID: d.ID}); err != nil {
		t.Fatalf("RequestDeletion: %v", err)
	}
	want("a cancelled promotion and one being deleted", promo.Backlog{Incomplete: 1, Parked: 1, PendingCodes: 70})

	if st := s.PoolStats(); st.MaxOpenConnections < 1 || st.InUse < 0 || st.InUse > st.OpenConnections ||
		(st.MaxOpenConnections > 0 && st.OpenConnections > st.MaxOpenConnections) {
		t.Errorf("PoolStats = %+v: want at least one connection allowed, in use ≤ open ≤ max", st)
	}
}
