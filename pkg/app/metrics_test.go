package app

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/promocodes/promocodes/pkg/promo"
)

type fakePool sql.DBStats

func (f fakePool) PoolStats() sql.DBStats { return sql.DBStats(f) }

func TestPoolCollector(t *testing.T) {
	c := NewPoolCollector(fakePool{MaxOpenConnections: 8, OpenConnections: 6, InUse: 5, WaitCount: 12,
		WaitDuration: 1500 * time.Millisecond})
	want := `
# HELP promocodes_db_pool_in_use_connections Connections of the database pool in use by a statement or transaction.
# TYPE promocodes_db_pool_in_use_connections gauge
promocodes_db_pool_in_use_connections 5
# HELP promocodes_db_pool_max_connections Connections the database pool may open (db.maxConns; SQLite: its writer and readers together).
# TYPE promocodes_db_pool_max_connections gauge
promocodes_db_pool_max_connections 8
# HELP promocodes_db_pool_open_connections Connections the database pool has open, in use or idle.
# TYPE promocodes_db_pool_open_connections gauge
promocodes_db_pool_open_connections 6
# HELP promocodes_db_pool_wait_seconds_total Time requests spent waiting for a free connection.
# TYPE promocodes_db_pool_wait_seconds_total counter
promocodes_db_pool_wait_seconds_total 1.5
# HELP promocodes_db_pool_waits_total Requests for a connection that found none free and waited.
# TYPE promocodes_db_pool_waits_total counter
promocodes_db_pool_waits_total 12
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// fakeBacklog answers b, or err, and counts the queries.
type fakeBacklog struct {
	mu      sync.Mutex
	b       promo.Backlog
	err     error
	queries int
}

func (f *fakeBacklog) Backlog(context.Context) (promo.Backlog, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	return f.b, f.err
}

func (f *fakeBacklog) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// TestBacklogCollector: the gauges carry the store's figures; scrapes close
// together cost one query; a failing query exports no series (rather than a
// stale or zero figure) and is logged once, not per scrape.
func TestBacklogCollector(t *testing.T) {
	src := &fakeBacklog{b: promo.Backlog{Incomplete: 3, Parked: 2, PendingCodes: 120_000}}
	core, logs := observer.New(zap.InfoLevel)
	c := NewBacklogCollector(src, zap.New(core)).(*backlogCollector)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	want := `
# HELP promocodes_batches_incomplete Batches with codes still to write that are neither parked nor cancelled (whole database).
# TYPE promocodes_batches_incomplete gauge
promocodes_batches_incomplete 3
# HELP promocodes_batches_parked Batches whose remainder is parked in the dead-letter topic, waiting for a replay (whole database).
# TYPE promocodes_batches_parked gauge
promocodes_batches_parked 2
# HELP promocodes_codes_pending Codes still to write in the incomplete batches (whole database).
# TYPE promocodes_codes_pending gauge
promocodes_codes_pending 120000
`
	for range 3 {
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
			t.Fatal(err)
		}
	}
	if n := src.queries; n != 1 {
		t.Errorf("3 scrapes within %v made %d queries, want 1", backlogMaxAge, n)
	}

	src.fail(errors.New("database down"))
	for range 3 {
		c.mu.Lock()
		c.at = time.Time{} // the cached answer is old
		c.mu.Unlock()
		if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
			t.Errorf("scrape while the query fails: %d series, %v; want none", n, err)
		}
	}
	if n := logs.FilterMessageSnippet("failed").Len(); n != 1 {
		t.Errorf("3 failing scrapes logged %d warnings, want 1", n)
	}
	src.fail(nil)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Errorf("after recovery: %v", err)
	}
	if n := logs.FilterMessageSnippet("works again").Len(); n != 1 {
		t.Errorf("recovery logged %d times, want 1", n)
	}
}
