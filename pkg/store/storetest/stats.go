package storetest

import (
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// testStats: totals, hourly and daily series (UTC buckets, rolled-back
// redemptions counted where they were made) and top users by live
// redemptions, from the audit trail.
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
		{"bob", at(11*time.Hour + 5*time.Minute)}, {"carol", at(33 * time.Hour)}} {
		req := redeemReq(code, r.user)
		req.Now = r.at
		out := h.redeem(req)
		if out.Redemption.ID == "" {
			t.Fatalf("redeem for %s at %v refused: %+v", r.user, r.at, out)
		}
		ids = append(ids, out.Redemption.ID)
	}
	if _, _, err := h.s.Rollback(h.ctx, promo.RollbackRequest{RedemptionID: ids[2], EventID: newID(), Reason: "order cancelled",
		Now: at(12 * time.Hour)}); err != nil {
		t.Fatalf("Rollback: %v", err)
	}

	st, err := h.s.Stats(h.ctx, p.ID, promo.BucketHour)
	if err != nil {
		t.Fatalf("Stats(hour): %v", err)
	}
	if st.Redemptions != 3 || st.RolledBack != 1 || st.CodesRedeemed != 1 {
		t.Errorf("totals = %d live, %d rolled back, %d codes; want 3, 1, 1", st.Redemptions, st.RolledBack, st.CodesRedeemed)
	}
	want := []promo.StatsPoint{{At: at(10 * time.Hour), Redemptions: 2}, {At: at(11 * time.Hour), Redemptions: 1, RolledBack: 1},
		{At: at(33 * time.Hour), Redemptions: 1}}
	checkSeries(t, "hour", st.Series, want)
	if len(st.TopUsers) != 2 || st.TopUsers[0] != (promo.UserRedemptions{UserID: "alice", Redemptions: 2}) ||
		st.TopUsers[1] != (promo.UserRedemptions{UserID: "carol", Redemptions: 1}) {
		t.Errorf("top users = %+v, want alice 2, carol 1 (bob's was rolled back)", st.TopUsers)
	}

	st, err = h.s.Stats(h.ctx, p.ID, promo.BucketDay)
	if err != nil {
		t.Fatalf("Stats(day): %v", err)
	}
	checkSeries(t, "day", st.Series, []promo.StatsPoint{{At: day, Redemptions: 3, RolledBack: 1}, {At: at(24 * time.Hour), Redemptions: 1}})

	empty := h.create(h.vanity("V"+h.tag+"NONE", 1))
	if st, err := h.s.Stats(h.ctx, empty.ID, ""); err != nil || st.Redemptions != 0 || len(st.Series) != 0 || len(st.TopUsers) != 0 {
		t.Errorf("Stats of a promotion without redemptions = %+v, %v; want zeros", st, err)
	}
	_, err = h.s.Stats(h.ctx, p.ID, "minute")
	wantField(t, "Stats(minute)", err, "bucket")
}

func checkSeries(t *testing.T, bucket string, got, want []promo.StatsPoint) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s series = %+v, want %+v", bucket, got, want)
	}
	for i := range want {
		if !got[i].At.Equal(want[i].At) || got[i].Redemptions != want[i].Redemptions || got[i].RolledBack != want[i].RolledBack {
			t.Errorf("%s series[%d] = %+v, want %+v", bucket, i, got[i], want[i])
		}
	}
}
