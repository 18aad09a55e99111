package app

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/promo"
)

// poolSource is a store that reports its connection pool.
type poolSource interface{ PoolStats() sql.DBStats }

// poolCollector exports a store's connection pool at each scrape, for the
// pool saturation alert: connections allowed, open, in use, and the
// requests that had to wait for one.
type poolCollector struct {
	src                     poolSource
	max, open, inUse        *prometheus.Desc
	waits, waitSecondsTotal *prometheus.Desc
}

// NewPoolCollector exports src's connection pool as promocodes_db_pool_*.
func NewPoolCollector(src poolSource) prometheus.Collector {
	return &poolCollector{src: src,
		max: prometheus.NewDesc("promocodes_db_pool_max_connections",
			"Connections the database pool may open (db.maxConns; SQLite: its writer and readers together).", nil, nil),
		open: prometheus.NewDesc("promocodes_db_pool_open_connections",
			"Connections the database pool has open, in use or idle.", nil, nil),
		inUse: prometheus.NewDesc("promocodes_db_pool_in_use_connections",
			"Connections of the database pool in use by a statement or transaction.", nil, nil),
		waits: prometheus.NewDesc("promocodes_db_pool_waits_total",
			"Requests for a connection that found none free and waited.", nil, nil),
		waitSecondsTotal: prometheus.NewDesc("promocodes_db_pool_wait_seconds_total",
			"Time requests spent waiting for a free connection.", nil, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.max
	ch <- c.open
	ch <- c.inUse
	ch <- c.waits
	ch <- c.waitSecondsTotal
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.PoolStats()
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(st.MaxOpenConnections))
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(st.OpenConnections))
	ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(st.InUse))
	ch <- prometheus.MustNewConstMetric(c.waits, prometheus.CounterValue, float64(st.WaitCount))
	ch <- prometheus.MustNewConstMetric(c.waitSecondsTotal, prometheus.CounterValue, st.WaitDuration.Seconds())
}

// backlogSource is a store that counts the open generation work.
type backlogSource interface {
	Backlog(ctx context.Context) (promo.Backlog, error)
}

// backlogCollector exports the database's open generation work, for the
// parked-batches and generation-stalled alerts. Every API replica reports
// the same database-wide figures (alert on max, not sum). A scrape reuses
// an answer younger than backlogMaxAge, so several scrapers cost one query;
// a failed query exports nothing (the series go stale) and is logged once
// until a query succeeds again.
type backlogCollector struct {
	src                       backlogSource
	log                       *zap.Logger
	incomplete, parked, codes *prometheus.Desc
	mu                        sync.Mutex
	last                      promo.Backlog
	at                        time.Time
	failing                   bool
}

const (
	backlogMaxAge  = 10 * time.Second
	backlogTimeout = 5 * time.Second
)

// NewBacklogCollector exports src's open generation work as
// promocodes_batches_incomplete, promocodes_batches_parked and
// promocodes_codes_pending.
func NewBacklogCollector(src backlogSource, log *zap.Logger) prometheus.Collector {
	return &backlogCollector{src: src, log: log,
		incomplete: prometheus.NewDesc("promocodes_batches_incomplete",
			"Batches with codes still to write that are neither parked nor cancelled (whole database).", nil, nil),
		parked: prometheus.NewDesc("promocodes_batches_parked",
			"Batches whose remainder is parked in the dead-letter topic, waiting for a replay (whole database).", nil, nil),
		codes: prometheus.NewDesc("promocodes_codes_pending",
			"Codes still to write in the incomplete batches (whole database).", nil, nil),
	}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.incomplete
	ch <- c.parked
	ch <- c.codes
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > backlogMaxAge {
		ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
		b, err := c.src.Backlog(ctx)
		cancel()
		if err != nil {
			if !c.failing {
				c.log.Warn("counting the generation backlog for /metrics failed; its gauges are left out until it works",
					zap.Error(err))
			}
			c.failing = true
			return
		}
		if c.failing {
			c.log.Info("counting the generation backlog for /metrics works again")
		}
		c.last, c.at, c.failing = b, time.Now(), false
	}
	ch <- prometheus.MustNewConstMetric(c.incomplete, prometheus.GaugeValue, float64(c.last.Incomplete))
	ch <- prometheus.MustNewConstMetric(c.parked, prometheus.GaugeValue, float64(c.last.Parked))
	ch <- prometheus.MustNewConstMetric(c.codes, prometheus.GaugeValue, float64(c.last.PendingCodes))
}
