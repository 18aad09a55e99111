package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// testListPromotions: newest first, cursor paging without gaps or repeats,
// case-insensitive name search, and the status filter agreeing with
// GetPromotion's progress for every lifecycle status. Other subtests share
// the database, so every list is narrowed to this subtest's tag.
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

	bs := h.batches(generating.ID)
	h.commit(h.chunk(bs[0], 0, 2))
	for _, b := range h.batches(completed.ID) {
		h.commit(h.chunk(b, 0, int(b.CodeCount)))
	}
	if err := h.s.SetBatchState(h.ctx, h.batches(failed.ID)[1].Ref(), promo.BatchParked, "boom"); err != nil {
		t.Fatalf("SetBatchState: %v", err)
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
	all := []int64{vanity.ID, failed.ID, completed.ID, generating.ID, pending.ID} // newest first

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

	// Every row carries the same progress as GetPromotion.
	for _, p := range list(promo.ListFilter{Name: h.tag}) {
		want := h.status(p.ID)
		if p.Progress != want.Progress || p.Name != want.Name || p.Kind != want.Kind || p.CodeCount != want.CodeCount ||
			!p.CreatedAt.Equal(want.CreatedAt) || (p.Format == nil) != (want.Format == nil) {
			t.Errorf("listed %+v, GetPromotion %+v", p, want)
		}
	}

	for _, tc := range []struct {
		status promo.Status
		want   []int64
	}{
		{promo.StatusPending, []int64{pending.ID}},
		{promo.StatusGenerating, []int64{generating.ID}},
		{promo.StatusCompleted, []int64{vanity.ID, completed.ID}},
		{promo.StatusFailed, []int64{failed.ID}},
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
