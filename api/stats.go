package api

import (
	"net/http"

	"github.com/promocodes/promocodes/pkg/promo"
)

// statsView is the GET /v1/promotions/{id}/stats body.
type statsView struct {
	PromotionID     string                  `json:"promotionId"`
	CodeCount       int64                   `json:"codeCount"`
	MaxUsagePerCode int                     `json:"maxUsagePerCode"`
	Redemptions     int64                   `json:"redemptions"`
	RolledBack      int64                   `json:"rolledBack"`
	CodesRedeemed   int64                   `json:"codesRedeemed"`
	RedemptionRate  float64                 `json:"redemptionRate"`
	Bucket          promo.StatsBucket       `json:"bucket"`
	Series          []promo.StatsPoint      `json:"series"`
	TopUsers        []promo.UserRedemptions `json:"topUsers"`
	// Refusals are the refused redemptions by reason, most frequent first
	// (counted by the API replicas, written every few seconds).
	Refusals []promo.ReasonCount `json:"refusals"`
}

// promotionStats answers GET /v1/promotions/{id}/stats?bucket=hour|day: the
// analytics the console's promotion page and API users share.
func (s *Server) promotionStats(w http.ResponseWriter, r *http.Request) {
	for k := range r.URL.Query() {
		if k != "bucket" {
			s.writeError(w, r, promo.FieldErrorf(k, "unknown query parameter (bucket)"))
			return
		}
	}
	bucket := promo.StatsBucket(r.URL.Query().Get("bucket"))
	if bucket == "" {
		bucket = promo.BucketHour
	}
	if bucket != promo.BucketHour && bucket != promo.BucketDay {
		s.writeError(w, r, promo.FieldErrorf("bucket", "must be hour or day"))
		return
	}
	p, err := s.promotion(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.store.Stats(r.Context(), p.ID, bucket)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	refusals, err := s.store.RefusalsByReason(r.Context(), p.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if refusals == nil {
		refusals = []promo.ReasonCount{}
	}
	v := statsView{Refusals: refusals, PromotionID: p.IDString(), CodeCount: p.CodeCount, MaxUsagePerCode: p.MaxUsagePerCode,
		Redemptions: st.Redemptions, RolledBack: st.RolledBack, CodesRedeemed: st.CodesRedeemed, Bucket: bucket,
		Series: st.Series, TopUsers: st.TopUsers}
	if p.CodeCount > 0 {
		v.RedemptionRate = float64(st.CodesRedeemed) / float64(p.CodeCount)
	}
	if v.Series == nil {
		v.Series = []promo.StatsPoint{}
	}
	if v.TopUsers == nil {
		v.TopUsers = []promo.UserRedemptions{}
	}
	writeJSON(w, http.StatusOK, v)
}
