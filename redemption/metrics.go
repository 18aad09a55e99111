package redemption

import "github.com/prometheus/client_golang/prometheus"

// metrics are the service's Prometheus instruments. Labels are results and
// operations only: never a code, a user or a promotion.
type metrics struct {
	redemptions *prometheus.CounterVec
	validations *prometheus.CounterVec
	rollbacks   *prometheus.CounterVec
	reservation *prometheus.CounterVec
	issuances   *prometheus.CounterVec
	seconds     *prometheus.HistogramVec
	limited     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		redemptions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promocodes_redemptions_total",
			Help: "Redemption attempts by result: redeemed, or the refusal reason."}, []string{"result"}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promocodes_validations_total",
			Help: "Code validations by result: the code's status, or the refusal reason."}, []string{"result"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promocodes_rollbacks_total",
			Help: "Redemption rollbacks by result."}, []string{"result"}),
		reservation: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promocodes_reservations_total",
			Help: "Reservation operations (reserve, confirm, release) by result: ok, or the refusal reason."},
			[]string{"operation", "result"}),
		issuances: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promocodes_issuances_total",
			Help: "Issuances of personal codes by result: issued, replayed, or the refusal reason."}, []string{"result"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "promocodes_redemption_duration_seconds",
			Help:    "Time to validate, redeem, roll back, reserve, confirm, release or issue, database included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"operation"}),
		limited: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_rate_limited_total",
			Help: "Requests refused with 429 after too many failed code look-ups from one client."}),
	}
	if reg != nil {
		reg.MustRegister(m.redemptions, m.validations, m.rollbacks, m.reservation, m.issuances, m.seconds, m.limited)
	}
	return m
}
