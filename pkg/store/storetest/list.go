package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// testListPromotions: newest first, cursor paging without gaps or repeats,
// case-insensitive name search, the status filter agreeing with
// GetPromotion's status for every lifecycle status (cancelled, deleting and
// deleted included), and the active filter. Other subtests share the
// database, so every list is narrowed to this subtest's tag.
func testListPromotions(t *testing.T, h *harness) {
	name := func(s string) string { return "List " + h.tag + " " + s }
	mk := func(label string, count, size int64) promo.Promotion {
		np := h.generated("list-"+label, count, size)
		np.Name = name(label)
		return h.create(np)
	}
	pending := mk("pending", 10, 4)
	generating := mk("generating", 10, 4)
	completed := mk("completed", 6, 4)
	failed := mk("failed", 10, 4)
	v := h.vanity("LV"+h.tag, 1)
	v.Name = name("vanity")
	vanity := h.create(v)
	cancelled := mk("cancelled", 10, 4)
	deleting := mk("deleting", 10, 4)
	deleted := mk("deleted", 10, 4)
	inactive := mk("inactive", 10, 4)

	bs := h.batches(generating.ID)
	h.commit(h.chunk(bs[0], 0, 2))
	for _, b := range h.batches(completed.ID) {
		h.commit(h.chunk(b, 0, int(b.CodeCount)))
	}
	if err := h.s.SetBatchState(h.ctx, h.batches(failed.ID)[1].Ref(), promo.BatchParked, "boom"); err != nil {
		t.Fatalf("SetBatchState: %v", err)
	}
	h.commit(h.chunk(h.batches(cancelled.ID)[0], 0, 2))
	if _, err := h.s.CancelPromotion(h.ctx, cancelReq(cancelled.ID)); err != nil {
		t.Fatalf("CancelPromotion: %v", err)
	}
	deletion := func(id int64, action string) promo.AuditEntry {
		return promo.AuditEntry{ID: newID(), At: time.Now().UTC().Truncate(time.Microsecond), Actor: "admin:test",
			Action: action, PromotionID: id}
	}
	for _, id := range []int64{deleting.ID, deleted.ID} {
		if _, err := h.s.RequestDeletion(h.ctx, deletion(id, promo.ActionDeleteRequested)); err != nil {
			t.Fatalf("RequestDeletion: %v", err)
		}
	}
	if err := h.s.FinishDeletion(h.ctx, deletion(deleted.ID, promo.ActionPromotionDeleted)); err != nil {
		t.Fatalf("FinishDeletion: %v", err)
	}
	if err := h.s.SetPromotionActive(h.ctx, inactive.ID, false); err != nil {
		t.Fatalf("SetPromotionActive: %v", err)
	}

	list := func(f promo.ListFilter) []promo.PromotionStatus {
		t.Helper()
		got, err := h.s.ListPromotions(h.ctx, f)
		if err != nil {
			t.Fatalf("ListPromotions(%+v): %v", f, err)
		}
		return got
	}
	ids := func(l []promo.PromotionStatus) []int64 {
		var out []int64
		for _, p := range l {
			out = append(out, p.ID)
		}
		return out
	}
	all := []int64{inactive.ID, deleted.ID, deleting.ID, cancelled.ID, vanity.ID, failed.ID, completed.ID,
		generating.ID, pending.ID} // newest first

	// Pages of 2 through the cursor.
	var paged []int64
	f := promo.ListFilter{Name: h.tag, Limit: 2}
	for range 10 {
		page := list(f)
		if len(page) > 2 {
			t.Fatalf("page of %d, limit 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, ids(page)...)
		f.Before = page[len(page)-1].ID
	}
	if !slices.Equal(paged, all) {
		t.Errorf("paged ids = %v, want %v (newest first, each once)", paged, all)
	}

	// The name search ignores ASCII case.
	if got := ids(list(promo.ListFilter{Name: strings.ToLower(h.tag) + " GENERAT"})); !slices.Equal(got, []int64{generating.ID}) {
		t.Errorf("name search %q = %v, want [%d]", strings.ToLower(h.tag)+" GENERAT", got, generating.ID)
	}

	// Every row carries the same progress, switch, deletion, totals and so
	// status as GetPromotion.
	sameTime := func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
	for _, p := range list(promo.ListFilter{Name: h.tag}) {
		want := h.status(p.ID)
		if p.Progress != want.Progress || p.Name != want.Name || p.Kind != want.Kind || p.CodeCount != want.CodeCount ||
			!p.CreatedAt.Equal(want.CreatedAt) || (p.Format == nil) != (want.Format == nil) ||
			p.Active != want.Active || p.Totals != want.Totals || p.Status() != want.Status() ||
			!sameTime(p.Deletion.RequestedAt, want.Deletion.RequestedAt) || !sameTime(p.Deletion.DeletedAt, want.Deletion.DeletedAt) {
			t.Errorf("listed %+v, GetPromotion %+v", p, want)
		}
	}
	if st := h.status(deleted.ID); st.Deletion.RequestedAt == nil || st.Deletion.DeletedAt == nil || st.Active {
		t.Errorf("a deleted promotion's status = %+v, want both deletion times and inactive", st)
	}

	for _, tc := range []struct {
		status promo.Status
		want   []int64
	}{
		{promo.StatusPending, []int64{inactive.ID, pending.ID}},
		{promo.StatusGenerating, []int64{generating.ID}},
		{promo.StatusCompleted, []int64{vanity.ID, completed.ID}},
		{promo.StatusFailed, []int64{failed.ID}},
		{promo.StatusCancelled, []int64{cancelled.ID}},
		{promo.StatusDeleting, []int64{deleting.ID}},
		{promo.StatusDeleted, []int64{deleted.ID}},
	} {
		got := list(promo.ListFilter{Name: h.tag, Status: tc.status})
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("status %s: ids %v, want %v", tc.status, ids(got), tc.want)
		}
		for _, p := range got {
			if p.Status() != tc.status {
				t.Errorf("status %s filter returned %d in status %s", tc.status, p.ID, p.Status())
			}
		}
	}

	if len(promo.Statuses) != 7 {
		t.Errorf("promo.Statuses = %v: add the new status to this table", promo.Statuses)
	}

	// The active filter, alone and with a status (a deletion switches off).
	yes, no := true, false
	for _, tc := range []struct {
		f    promo.ListFilter
		want []int64
	}{
		{promo.ListFilter{Active: &no}, []int64{inactive.ID, deleted.ID, deleting.ID}},
		{promo.ListFilter{Active: &yes}, []int64{cancelled.ID, vanity.ID, failed.ID, completed.ID, generating.ID, pending.ID}},
		{promo.ListFilter{Active: &no, Status: promo.StatusPending}, []int64{inactive.ID}},
		{promo.ListFilter{Active: &yes, Status: promo.StatusPending}, []int64{pending.ID}},
		{promo.ListFilter{Active: &yes, Status: promo.StatusDeleted}, nil},
	} {
		tc.f.Name = h.tag
		got := list(tc.f)
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("active %t, status %q: ids %v, want %v", *tc.f.Active, tc.f.Status, ids(got), tc.want)
		}
		for _, p := range got {
			if p.Active != *tc.f.Active {
				t.Errorf("active %t filter returned %d, active %t", *tc.f.Active, p.ID, p.Active)
			}
		}
	}

	_, err := h.s.ListPromotions(h.ctx, promo.ListFilter{Status: "finished"})
	wantField(t, "ListPromotions(status finished)", err, "status")
}

// testOldestUnpublished: while a promotion's batches are unpublished, the
// outbox lag's reference time is at or before its creation (other subtests
// may hold older ones).
func testOldestUnpublished(t *testing.T, h *harness) {
	p := h.create(h.generated("lag", 10, 4))
	at, ok, err := h.s.OldestUnpublished(h.ctx)
	if err != nil {
		t.Fatalf("OldestUnpublished: %v", err)
	}
	if !ok || at.After(p.CreatedAt) || at.Location() != time.UTC {
		t.Errorf("OldestUnpublished = %v, %v; want a UTC time at or before %v", at, ok, p.CreatedAt)
	}
}
