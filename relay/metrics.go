package relay

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the relays' Prometheus instruments, one series per outbox
// (label outbox). Create them once per process and give them to every
// relay.
type Metrics struct {
	published *prometheus.CounterVec
	lag       *prometheus.GaugeVec
}

// NewMetrics creates the instruments and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promocodes_outbox_published_total",
			Help: "Events the outbox relay published (acknowledged by the broker), by outbox."}, []string{"outbox"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "promocodes_outbox_lag_seconds",
			Help: "Age of the oldest outbox row whose event is not yet on Kafka (0: none pending), by outbox."}, []string{"outbox"}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.lag)
	}
	return m
}

// sourceMetrics are one outbox's series; the zero value records nothing.
type sourceMetrics struct {
	count prometheus.Counter
	lag   prometheus.Gauge
}

// forSource returns the series of outbox name (the lag only when the source
// can tell it: a series that never moves would read as "no lag").
func (m *Metrics) forSource(name string, withLag bool) sourceMetrics {
	if m == nil {
		return sourceMetrics{}
	}
	s := sourceMetrics{count: m.published.WithLabelValues(name)}
	if withLag {
		s.lag = m.lag.WithLabelValues(name)
	}
	return s
}

func (s sourceMetrics) published(n int) {
	if s.count != nil {
		s.count.Add(float64(n))
	}
}

func (s sourceMetrics) hasLag() bool { return s.lag != nil }

func (s sourceMetrics) setLag(v float64) { s.lag.Set(v) }
