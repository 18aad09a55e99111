package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/pkg/config"
)

// devSecret is the code key of `promocodes dev` when none is configured. It
// is public, so codes made with it are guessable: dev only.
const devSecret = "promocodes-dev-secret-do-not-use-in-production"

// devDefaults are the defaults of `promocodes dev`: everything embedded.
func devDefaults() app.Config {
	c := app.Defaults()
	c.Env = "dev"
	c.Log = app.LogConfig{Level: "info", Format: "console"}
	c.HTTP.Addr = "127.0.0.1:8080"
	c.DB = app.DBConfig{Driver: "sqlite", MaxConns: 4}
	c.Codes.Secret = devSecret
	c.Shovel.Interval = 30 * time.Second
	return c
}

// configFlags adds the flags every service command shares: toolFlags and
// the address it serves HTTP on (the API, /healthz, /readyz, /metrics).
func configFlags(cmd *cobra.Command) {
	toolFlags(cmd)
	cmd.Flags().String("http-addr", "", "listen address for HTTP (http.addr)")
}

// toolFlags adds the flags of the commands that read the configuration but
// serve nothing (migrate, the SRE tools, purge): the config file and dev's
// data dir, so that they find what `promocodes dev` uses.
func toolFlags(cmd *cobra.Command) {
	cmd.Flags().String("config", "", "config file (YAML); env PROMOCODES_CONFIG")
	cmd.Flags().String("data-dir", "", "dev data dir: broker log and SQLite database (dev.dataDir, default ./data)")
}

// loadConfig reads defaults, then the config file (--config or
// PROMOCODES_CONFIG), then PROMOCODES_* env, then the flags that were set.
func loadConfig(cmd *cobra.Command, defaults app.Config) (app.Config, error) {
	file, _ := cmd.Flags().GetString("config")
	if file == "" {
		file = os.Getenv("PROMOCODES_CONFIG")
	}
	overrides := map[string]string{}
	for flag, key := range map[string]string{"http-addr": "http.addr", "data-dir": "dev.dataDir"} {
		if f := cmd.Flags().Lookup(flag); f != nil && f.Changed {
			overrides[key] = f.Value.String()
		}
	}
	cfg, err := config.Load(defaults, file, overrides)
	if err != nil {
		return cfg, err
	}
	return cfg.Resolve(), nil
}

// newLogger builds the process logger: JSON in production, console in dev
// (coloured levels only when stderr is a terminal and NO_COLOR is unset, so
// piped or collected logs carry no escape codes).
func newLogger(c app.LogConfig) (*zap.Logger, error) {
	var zc zap.Config
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
		if colours(os.Stderr) {
			zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		zc.DisableStacktrace = true
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "time"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	}
	// An error log line says what failed; a Go stack trace of the logging
	// call only buries it.
	zc.DisableStacktrace = true
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	return zc.Build()
}

// colours reports whether log lines to f may carry ANSI colours.
func colours(f *os.File) bool {
	if _, off := os.LookupEnv("NO_COLOR"); off {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}
