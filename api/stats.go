package api

import (
	"net/http"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// promotionStats answers GET /v1/promotions/{id}/stats?bucket=hour|day
// [&from=&to=]: the analytics the console's pages and API users share.
func (s *Server) promotionStats(w http.ResponseWriter, r *http.Request) {
	q := promo.StatsQuery{Bucket: promo.BucketHour}
	for k, v := range r.URL.Query() {
		switch k {
		case "bucket":
			q.Bucket = promo.StatsBucket(v[0])
			if q.Bucket != promo.BucketHour && q.Bucket != promo.BucketDay {
				s.writeError(w, r, promo.FieldErrorf("bucket", "must be hour or day"))
				return
			}
		case "from", "to":
			t, err := time.Parse(time.RFC3339, v[0])
			if err != nil {
				s.writeError(w, r, promo.FieldErrorf(k, "must be an RFC 3339 time, like 2026-03-01T00:00:00Z"))
				return
			}
			if k == "from" {
				q.From = t
			} else {
				q.To = t
			}
		default:
			s.writeError(w, r, promo.FieldErrorf(k, "unknown query parameter (bucket, from, to)"))
			return
		}
	}
	var err error
	if q.From, q.To, err = promo.StatsWindow(q.Bucket, q.From, q.To, s.now()); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.promotion(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q.PromotionID = p.ID
	st, err := s.store.Stats(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	refusals, err := s.store.RefusalsByReason(r.Context(), p.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v := promo.StatsReport{Refusals: refusals, PromotionID: p.IDString(), CodeCount: p.CodeCount, MaxUsagePerCode: p.MaxUsagePerCode,
		Redemptions: st.Redemptions, RolledBack: st.RolledBack, CodesRedeemed: st.CodesRedeemed, Bucket: q.Bucket,
		From: q.From, To: q.To, Series: st.Series, TopUsers: st.TopUsers, Orders: st.Orders, Segments: st.Segments}
	if p.CodeCount > 0 {
		v.RedemptionRate = float64(st.CodesRedeemed) / float64(p.CodeCount)
	}
	if v.Refusals == nil {
		v.Refusals = []promo.ReasonCount{}
	}
	if v.Series == nil {
		v.Series = []promo.StatsPoint{}
	}
	if v.TopUsers == nil {
		v.TopUsers = []promo.UserRedemptions{}
	}
	writeJSON(w, http.StatusOK, v)
}
