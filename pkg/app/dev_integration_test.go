//go:build integration

package app

import (
	"testing"
	"time"
)

// Acceptance: the whole pipeline in one process on SQLite and the
// embedded broker; 1,000,000 codes, exactly, all distinct.
func TestDevInProcessOnSQLiteOneMillion(t *testing.T) {
	url, _ := devSystem(t)
	const n = 1_000_000
	start := time.Now()
	id := createAndWait(t, url, n, 10*time.Minute)
	took := time.Since(start)
	if got := exportDistinct(t, url, id); got != n {
		t.Fatalf("export has %d distinct codes, want %d", got, n)
	}
	t.Logf("1,000,000 codes on SQLite in-process in %s (%.0f codes/s); export: 1,000,000 distinct + header", took.Round(time.Millisecond), n/took.Seconds())
}
