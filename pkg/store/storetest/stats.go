package storetest

import (
	"maps"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// testStats: totals and top users over the promotion's life; the series of
// a window in hour and day buckets (UTC): redemptions where they were made
// (with how many were rolled back since), rollbacks where they happened,
// refusals by reason from the refusal counts, a bucket with refusals only
// included, nothing outside the window; windows that are empty or too long
// refused.
func testStats(t *testing.T, h *harness) {
	code := "V" + h.tag + "STATS"
	np := h.vanity(code, 100)
	np.PerUserLimit = promo.UnlimitedPerUser
	p := h.create(np)
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return day.Add(d) }
	var ids []string
	for _, r := range []struct {
		user string
		at   time.Time
	}{{"alice", at(10*time.Hour + 15*time.Minute)}, {"alice", at(10*time.Hour + 45*time.Minute)},
		{"bob", at(11*time.Hour + 5*time.Minute)}, {"carol", at(33 * time.Hour)}, {"dave", at(-2 * time.Hour)}} {
		req := redeemReq(code, r.user)
		req.Now = r.at
		out := h.redeem(req)
		if out.Redemption.ID == "" {
			t.Fatalf("redeem for %s at %v refused: %+v", r.user, r.at, out)
		}
		ids = append(ids, out.Redemption.ID)
	}
	if _, _, err := h.s.Rollback(h.ctx, promo.RollbackRequest{RedemptionID: ids[2], EventID: newID(), Reason: "order cancelled",
		Now: at(12*time.Hour + 30*time.Minute)}); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if err := h.s.AddRefusals(h.ctx, []promo.RefusalCount{
		{PromotionID: p.ID, Reason: promo.ReasonUserLimitReached, Hour: at(10 * time.Hour), N: 4},
		{PromotionID: p.ID, Reason: promo.ReasonExpired, Hour: at(10 * time.Hour), N: 1},
		{PromotionID: p.ID, Reason: promo.ReasonExpired, Hour: at(14 * time.Hour), N: 2}, // refusals only
		{PromotionID: p.ID, Reason: promo.ReasonExpired, Hour: at(-5 * time.Hour), N: 7}, // before the window
	}); err != nil {
		t.Fatalf("AddRefusals: %v", err)
	}
	refused := func(kv ...any) map[promo.Reason]int64 {
		m := map[promo.Reason]int64{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(promo.Reason)] = int64(kv[i+1].(int))
		}
		return m
	}

	window := promo.StatsQuery{PromotionID: p.ID, Bucket: promo.BucketHour, From: day, To: day.Add(48 * time.Hour)}
	st, err := h.s.Stats(h.ctx, window)
	if err != nil {
		t.Fatalf("Stats(hour): %v", err)
	}
	if st.Redemptions != 4 || st.RolledBack != 1 || st.CodesRedeemed != 1 {
		t.Errorf("totals = %d live, %d rolled back, %d codes; want 4, 1, 1 (the whole life, not the window)",
			st.Redemptions, st.RolledBack, st.CodesRedeemed)
	}
	checkSeries(t, "hour", st.Series, []promo.StatsPoint{
		{At: at(10 * time.Hour), Redemptions: 2, Refusals: refused(promo.ReasonUserLimitReached, 4, promo.ReasonExpired, 1)},
		{At: at(11 * time.Hour), Redemptions: 1, RolledBack: 1, Refusals: refused()},
		{At: at(12 * time.Hour), Rollbacks: 1, Refusals: refused()},
		{At: at(14 * time.Hour), Refusals: refused(promo.ReasonExpired, 2)},
		{At: at(33 * time.Hour), Redemptions: 1, Refusals: refused()}})
	if len(st.TopUsers) != 3 || st.TopUsers[0] != (promo.UserRedemptions{UserID: "alice", Redemptions: 2}) ||
		st.TopUsers[1] != (promo.UserRedemptions{UserID: "carol", Redemptions: 1}) ||
		st.TopUsers[2] != (promo.UserRedemptions{UserID: "dave", Redemptions: 1}) {
		t.Errorf("top users = %+v, want alice 2, carol 1, dave 1 (bob's was rolled back)", st.TopUsers)
	}

	window.Bucket = promo.BucketDay
	st, err = h.s.Stats(h.ctx, window)
	if err != nil {
		t.Fatalf("Stats(day): %v", err)
	}
	checkSeries(t, "day", st.Series, []promo.StatsPoint{
		{At: day, Redemptions: 3, RolledBack: 1, Rollbacks: 1, Refusals: refused(promo.ReasonUserLimitReached, 4, promo.ReasonExpired, 3)},
		{At: at(24 * time.Hour), Redemptions: 1, Refusals: refused()}})
	// A window that starts earlier takes the day before in.
	window.From = day.Add(-24 * time.Hour)
	if st, err = h.s.Stats(h.ctx, window); err != nil {
		t.Fatalf("Stats(day, from the day before): %v", err)
	}
	checkSeries(t, "day from the day before", st.Series, []promo.StatsPoint{
		{At: at(-24 * time.Hour), Redemptions: 1, Refusals: refused(promo.ReasonExpired, 7)},
		{At: day, Redemptions: 3, RolledBack: 1, Rollbacks: 1, Refusals: refused(promo.ReasonUserLimitReached, 4, promo.ReasonExpired, 3)},
		{At: at(24 * time.Hour), Redemptions: 1, Refusals: refused()}})

	empty := h.create(h.vanity("V"+h.tag+"NONE", 1))
	if st, err := h.s.Stats(h.ctx, promo.StatsQuery{PromotionID: empty.ID}); err != nil || st.Redemptions != 0 || len(st.Series) != 0 || len(st.TopUsers) != 0 {
		t.Errorf("Stats of a promotion without redemptions = %+v, %v; want zeros", st, err)
	}
	_, err = h.s.Stats(h.ctx, promo.StatsQuery{PromotionID: p.ID, Bucket: "minute"})
	wantField(t, "Stats(minute)", err, "bucket")
	_, err = h.s.Stats(h.ctx, promo.StatsQuery{PromotionID: p.ID, Bucket: promo.BucketHour, From: day, To: day})
	wantField(t, "Stats(empty window)", err, "from")
	_, err = h.s.Stats(h.ctx, promo.StatsQuery{PromotionID: p.ID, Bucket: promo.BucketHour, From: day,
		To: day.Add((promo.MaxStatsBuckets + 1) * time.Hour)})
	wantField(t, "Stats(window of too many buckets)", err, "from")
}

func checkSeries(t *testing.T, bucket string, got, want []promo.StatsPoint) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s series = %+v, want %+v", bucket, got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.At.Equal(w.At) || g.Redemptions != w.Redemptions || g.RolledBack != w.RolledBack || g.Rollbacks != w.Rollbacks ||
			!maps.Equal(g.Refusals, w.Refusals) || g.Refusals == nil {
			t.Errorf("%s series[%d] = %+v, want %+v", bucket, i, g, w)
		}
	}
}
