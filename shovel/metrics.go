package shovel

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the shovel's Prometheus instruments, updated after every
// cycle (Run and Once).
type Metrics struct {
	Moved        prometheus.Counter
	Parked       prometheus.Counter
	Failed       prometheus.Counter
	CycleSeconds prometheus.Histogram
	CycleErrors  prometheus.Counter
	LastCycle    prometheus.Gauge
}

// NewMetrics creates the instruments and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Moved: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_shovel_moved_total",
			Help: "Events moved from the error topic to the retry topic."}),
		Parked: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_shovel_parked_total",
			Help: "Events parked in the dead-letter topic (max retries, undecodable, ...)."}),
		Failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_shovel_failed_total",
			Help: "Events that could not be moved in a cycle (left in place for the next one)."}),
		CycleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "promocodes_shovel_cycle_duration_seconds",
			Help: "Duration of one shovel cycle.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		CycleErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_shovel_cycle_errors_total",
			Help: "Shovel cycles that ended with an error."}),
		LastCycle: prometheus.NewGauge(prometheus.GaugeOpts{Name: "promocodes_shovel_last_cycle_timestamp_seconds",
			Help: "Unix time at which the last shovel cycle ended."}),
	}
	if reg != nil {
		reg.MustRegister(m.Moved, m.Parked, m.Failed, m.CycleSeconds, m.CycleErrors, m.LastCycle)
	}
	return m
}

// Cycle is one finished cycle, as the console's operations page lists it.
type Cycle struct {
	At    time.Time
	Stats Stats
	Err   string
}

// History keeps the last cycles in memory. Safe for concurrent use.
type History struct {
	mu     sync.Mutex
	n      int
	cycles []Cycle // newest last
}

// NewHistory keeps the last n cycles.
func NewHistory(n int) *History { return &History{n: n} }

// Add records a cycle.
func (h *History) Add(c Cycle) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cycles = append(h.cycles, c)
	if len(h.cycles) > h.n {
		h.cycles = h.cycles[len(h.cycles)-h.n:]
	}
}

// Last returns the recorded cycles, newest first.
func (h *History) Last() []Cycle {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Cycle, len(h.cycles))
	for i, c := range h.cycles {
		out[len(out)-1-i] = c
	}
	return out
}

// Observe makes the shovel report every finished cycle to m and h (either
// may be nil). Call before Run.
func (s *Shovel) Observe(m *Metrics, h *History) {
	s.observe = func(st Stats, err error) {
		if m != nil {
			m.Moved.Add(float64(st.Moved))
			m.Parked.Add(float64(st.Parked))
			m.Failed.Add(float64(st.Failed))
			m.CycleSeconds.Observe(st.Duration.Seconds())
			m.LastCycle.Set(float64(time.Now().Unix()))
			if err != nil {
				m.CycleErrors.Inc()
			}
		}
		if h != nil {
			c := Cycle{At: time.Now().UTC(), Stats: st}
			if err != nil {
				c.Err = err.Error()
			}
			h.Add(c)
		}
	}
}
