package redemption_test

import (
	"fmt"
	"testing"
	"time"
)

// GET /v1/promotions/{id}/stats over HTTP: totals, rate, the hourly and
// daily series (with the rollback in the bucket it was made) and top users
// follow redemptions and rollbacks; the window defaults to the newest 1,000
// buckets, is answered as used, and can be moved; a redeem token may not
// read them; a bad bucket or window is 422. Every answer is checked against
// the OpenAPI document by the harness.
func TestStatsFollowRedemptions(t *testing.T) {
	h := newHarness(t, "sqlite", noGuessLimit)
	id := h.vanity("STATS2026", 100, 0)
	var ids []string
	for i := range 5 {
		r, _ := h.try("POST", "/v1/codes/STATS2026/redemptions", redeemToken,
			fmt.Sprintf(`{"userId":"user-%d"}`, i%2), nil)
		var rc receipt
		decode(t, r.body, &rc)
		ids = append(ids, rc.ID)
	}
	h.do("POST", "/v1/redemptions/"+ids[0]+"/rollback", redeemToken, `{"reason":"cancelled"}`, nil)

	var st struct {
		CodeCount      int64     `json:"codeCount"`
		Redemptions    int64     `json:"redemptions"`
		RolledBack     int64     `json:"rolledBack"`
		CodesRedeemed  int64     `json:"codesRedeemed"`
		RedemptionRate float64   `json:"redemptionRate"`
		Bucket         string    `json:"bucket"`
		From           time.Time `json:"from"`
		To             time.Time `json:"to"`
		Series         []struct {
			At          time.Time `json:"at"`
			Redemptions int64     `json:"redemptions"`
			RolledBack  int64     `json:"rolledBack"`
			Rollbacks   int64     `json:"rollbacks"`
		} `json:"series"`
		TopUsers []struct {
			UserID      string `json:"userId"`
			Redemptions int64  `json:"redemptions"`
		} `json:"topUsers"`
	}
	r := h.do("GET", "/v1/promotions/"+id+"/stats", adminToken, "", nil)
	decode(t, r.body, &st)
	now := time.Now().UTC()
	if r.status != 200 || st.Redemptions != 4 || st.RolledBack != 1 || st.CodesRedeemed != 1 || st.RedemptionRate != 1 ||
		st.Bucket != "hour" {
		t.Fatalf("stats = %d %s; want 4 live, 1 rolled back, 1 code of 1 (rate 1), hourly", r.status, r.body)
	}
	if len(st.Series) == 0 || st.Series[len(st.Series)-1].At.After(now) || now.Sub(st.Series[len(st.Series)-1].At) > 2*time.Hour {
		t.Errorf("series = %+v, want this hour's bucket last", st.Series)
	}
	var total, rollbacks int64
	for _, p := range st.Series {
		total += p.Redemptions
		rollbacks += p.Rollbacks
	}
	if total != 5 || rollbacks != 1 {
		t.Errorf("series holds %d redemptions and %d rollbacks, want 5 (the rolled-back one included, counted in rolledBack) and 1",
			total, rollbacks)
	}
	if hour := now.Truncate(time.Hour); !st.To.After(now) || !st.To.Equal(hour.Add(time.Hour)) ||
		!st.From.Equal(st.To.Add(-1000*time.Hour)) {
		t.Errorf("window [%v, %v), want the 1,000 hours up to the end of this one", st.From, st.To)
	}
	// A window that ends before today's redemptions holds none of them.
	r = h.do("GET", "/v1/promotions/"+id+"/stats?from=2026-01-01T00:30:00Z&to=2026-01-02T00:00:00Z", adminToken, "", nil)
	decode(t, r.body, &st)
	if r.status != 200 || len(st.Series) != 0 || st.Redemptions != 4 ||
		!st.From.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("an old window = %d %s; want no points, the totals, from rounded down to 00:00", r.status, r.body)
	}
	for _, q := range []string{"from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
		"from=yesterday", "bucket=day&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "window=7d",
		"from=9999-12-30T00:00:00Z&to=9999-12-31T23:30:00Z", "from=1969-12-31T00:00:00Z&to=1970-01-01T01:00:00Z"} {
		if r := h.do("GET", "/v1/promotions/"+id+"/stats?"+q, adminToken, "", nil); r.status != 422 {
			t.Errorf("stats?%s = %d %s, want 422", q, r.status, r.body)
		}
	}
	// user-0 made 3 (one rolled back), user-1 made 2.
	if len(st.TopUsers) != 2 || st.TopUsers[0].Redemptions != 2 || st.TopUsers[1].Redemptions != 2 {
		t.Errorf("top users = %+v, want two users with 2 live redemptions each", st.TopUsers)
	}
	r = h.do("GET", "/v1/promotions/"+id+"/stats?bucket=day", adminToken, "", nil)
	decode(t, r.body, &st)
	if r.status != 200 || st.Bucket != "day" || len(st.Series) != 1 || !st.Series[0].At.Equal(now.Truncate(24*time.Hour)) {
		t.Errorf("daily stats = %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/v1/promotions/"+id+"/stats?bucket=minute", adminToken, "", nil); r.status != 422 {
		t.Errorf("bucket=minute = %d %s, want 422", r.status, r.body)
	}
	if r := h.do("GET", "/v1/promotions/"+id+"/stats", redeemToken, "", nil); r.status != 403 {
		t.Errorf("stats with a redeem token = %d, want 403", r.status)
	}
	if r := h.do("GET", "/v1/promotions/999999/stats", adminToken, "", nil); r.status != 404 {
		t.Errorf("stats of an unknown promotion = %d, want 404", r.status)
	}
}
