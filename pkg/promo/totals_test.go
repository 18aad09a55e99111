package promo

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestTallyEvents(t *testing.T) {
	ev := func(stream, typ, pid string, uses *int) OutboxEvent {
		p := fmt.Sprintf(`{"v":1,"type":%q,"eventId":"e","promotionId":%q,"redemption":{"id":"r"}`, typ, pid)
		if uses != nil {
			p += fmt.Sprintf(`,"codeUses":%d`, *uses)
		}
		return OutboxEvent{Stream: stream, Payload: []byte(p + "}")}
	}
	n := func(i int) *int { return &i }
	evs := []OutboxEvent{
		ev(StreamRedemptions, EventRedeemed, "7", n(1)),   // first use of a code: +1 code
		ev(StreamRedemptions, EventRedeemed, "7", n(2)),   // second use of it: no new code
		ev(StreamRedemptions, EventRolledBack, "7", n(1)), // still one live use
		ev(StreamRedemptions, EventRedeemed, "3", n(1)),
		ev(StreamRedemptions, EventRolledBack, "3", n(0)), // back to no use: -1 code
		ev(StreamRedemptions, EventRedeemed, "3", nil),    // an older release's event: redemptions only
		ev(StreamRedemptions, EventRolledBack, "3", nil),  // a purged code's rollback: redemptions only
		ev(StreamRedemptions, ActionPromotionUpdated, "3", nil),
		ev(StreamRedemptions, ActionCodeRevoked, "7", nil),
		ev("other", EventRedeemed, "9", n(1)),
		{Stream: StreamRedemptions, Payload: []byte("{not json")},
		ev(StreamRedemptions, EventRedeemed, "x", n(1)),
	}
	got, bad := TallyEvents(evs)
	want := []TotalsDelta{
		{PromotionID: 3, Totals: Totals{Redemptions: 0, CodesRedeemed: 0, RolledBack: 2}},
		{PromotionID: 7, Totals: Totals{Redemptions: 1, CodesRedeemed: 1, RolledBack: 1}},
	}
	if !slices.Equal(got, want) || bad != 2 {
		t.Errorf("TallyEvents = %+v, %d undecodable; want %+v, 2", got, bad, want)
	}
	if got, bad := TallyEvents(nil); len(got) != 0 || bad != 0 {
		t.Errorf("TallyEvents(nil) = %+v, %d", got, bad)
	}
}

func TestStatusAppliesDeletion(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := PromotionStatus{Promotion: Promotion{CodeCount: 10}}
	st.GeneratedCount = 10
	if st.Status() != StatusCompleted {
		t.Errorf("complete: %s", st.Status())
	}
	st.Deletion.RequestedAt = &at
	if st.Status() != StatusDeleting || st.GenerationStatus() != StatusCompleted {
		t.Errorf("deletion requested: %s (generation %s)", st.Status(), st.GenerationStatus())
	}
	st.Deletion.DeletedAt = &at
	if st.Status() != StatusDeleted {
		t.Errorf("deleted: %s", st.Status())
	}
	for _, s := range Statuses {
		if !ValidStatus(s) {
			t.Errorf("ValidStatus(%s) = false", s)
		}
	}
	if ValidStatus("finished") {
		t.Error(`ValidStatus("finished") = true`)
	}
}
