package app

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// The migration's log line says what it did: the migrations it applied on a
// new database (it said "schema is up to date" beside the list), and "up to
// date" only when there was nothing to apply.
func TestMigrateLogSaysWhatItApplied(t *testing.T) {
	cfg := Defaults()
	cfg.DB = DBConfig{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "m.db"), MaxConns: 1}
	for i, want := range []func(MigrateResult) string{
		func(r MigrateResult) string { return fmt.Sprintf("applied %d migrations", len(r.Applied)) },
		func(MigrateResult) string { return "schema is up to date" },
	} {
		core, logs := observer.New(zap.InfoLevel)
		res, err := Migrate(context.Background(), cfg, zap.New(core))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && len(res.Applied) == 0 {
			t.Fatal("a new database: nothing applied")
		}
		var msgs []string
		for _, e := range logs.All() {
			msgs = append(msgs, e.Message)
		}
		if len(msgs) != 1 || msgs[0] != want(res) {
			t.Errorf("run %d (%d applied) logged %q, want one line %q", i+1, len(res.Applied), msgs, want(res))
		}
	}
}
