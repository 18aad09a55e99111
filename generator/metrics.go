package generator

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the generator's Prometheus instruments.
type Metrics struct {
	Codes            prometheus.Counter
	Chunks           prometheus.Counter
	ChunkSeconds     prometheus.Histogram
	BatchesCompleted prometheus.Counter
	Duplicates       prometheus.Counter
	Retries          prometheus.Counter
	LockWaits        prometheus.Counter
	Remainders       prometheus.Counter
	Parked           prometheus.Counter
	ConsumerRestarts prometheus.Counter
	DatabaseDown     prometheus.Gauge
}

// NewMetrics creates the instruments and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Codes: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_generator_codes_total",
			Help: "Codes committed to the database."}),
		Chunks: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_generator_chunks_total",
			Help: "Chunk transactions committed."}),
		ChunkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "promocodes_generator_chunk_seconds",
			Help: "Time to commit one chunk (render + transaction).", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		BatchesCompleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_generator_batches_completed_total",
			Help: "Batches this process brought to completion."}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_generator_duplicate_events_total",
			Help: "Events for batches already complete or advanced by another worker."}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_generator_retries_total",
			Help: "In-process retries of database operations."}),
		LockWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_generator_lock_waits_total",
			Help: "Database attempts that ran out of the lock timeout behind another session (retried without spending an attempt)."}),
		Remainders: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_generator_remainders_total",
			Help: "Remainder events published to the error topic."}),
		Parked: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_generator_parked_total",
			Help: "Events parked in the dead-letter topic by the generator."}),
		ConsumerRestarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "promocodes_generator_consumer_restarts_total",
			Help: "Consumers dropped and replaced after an error that could not be made durable."}),
		DatabaseDown: prometheus.NewGauge(prometheus.GaugeOpts{Name: "promocodes_generator_database_unreachable",
			Help: "1 while the circuit breaker holds the workers because the database does not answer."}),
	}
	if reg != nil {
		reg.MustRegister(m.Codes, m.Chunks, m.ChunkSeconds, m.BatchesCompleted, m.Duplicates, m.Retries, m.LockWaits,
			m.Remainders, m.Parked, m.ConsumerRestarts, m.DatabaseDown)
	}
	return m
}

func (m *Metrics) observeChunk(n int, d time.Duration) {
	m.Codes.Add(float64(n))
	m.Chunks.Inc()
	m.ChunkSeconds.Observe(d.Seconds())
}
