package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/app"
)

// serviceCmd builds a command that loads the configuration, builds the
// logger and runs start until the process is signalled.
//
// Only the configuration the command uses is validated (app.Sections), so
// a generator is not asked for admin tokens nor a shovel for the code secret.
// A failure is logged once, without a stack trace, and ends the process with
// status 1; main prints nothing more.
func serviceCmd(use, short string, defaults func() app.Config,
	start func(ctx commandContext, cfg app.Config, log *zap.Logger) error) *cobra.Command {
	return newServiceCmd(use, short, defaults, start, configFlags)
}

// newServiceCmd is serviceCmd with the flags it takes: configFlags for a
// service, toolFlags for a command that serves no HTTP (migrate).
func newServiceCmd(use, short string, defaults func() app.Config,
	start func(ctx commandContext, cfg app.Config, log *zap.Logger) error, flags func(*cobra.Command)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, defaults())
			if err != nil {
				return err
			}
			if err := cfg.ValidateFor(app.Sections(use, cfg)...); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			log, err := newLogger(cfg.Log)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			if err := start(cmd, cfg, log); err != nil {
				log.Error(use+" stopped with an error", zap.Error(err))
				return &exitError{code: 1} // logged just above: not twice
			}
			log.Info(use + " stopped")
			return nil
		},
	}
	flags(cmd)
	return cmd
}

// commandContext is the cobra command (for its ctx and flags).
type commandContext = *cobra.Command

func newDevCmd() *cobra.Command {
	cmd := serviceCmd("dev", "Everything in one process: embedded broker, SQLite, API, generators, shovel", devDefaults,
		func(cmd commandContext, cfg app.Config, log *zap.Logger) error {
			app.TuneGC()
			return app.Run(cmd.Context(), cfg, log, app.StartDev)
		})
	return cmd
}

func newAPICmd() *cobra.Command {
	return serviceCmd("api", "Serve the Promotion API and publish batch events", app.Defaults,
		func(cmd commandContext, cfg app.Config, log *zap.Logger) error {
			app.TuneGC()
			return app.Run(cmd.Context(), cfg, log, app.StartAPI)
		})
}

func newGeneratorCmd() *cobra.Command {
	return serviceCmd("generator", "Run generator workers: batch events in, codes into SQL", app.Defaults,
		func(cmd commandContext, cfg app.Config, log *zap.Logger) error {
			return app.Run(cmd.Context(), cfg, log, app.StartGenerator)
		})
}

func newMigrateCmd() *cobra.Command {
	return newServiceCmd("migrate", "Apply the database schema migrations and exit; prints what it applied", app.Defaults,
		func(cmd commandContext, cfg app.Config, log *zap.Logger) error {
			res, err := app.Migrate(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), migrateSummary(cfg.DB.Driver, res))
			return nil
		}, toolFlags)
}

// migrateSummary says what a migration run did: "applied 8 migrations
// (00001_init.sql, ...): the sqlite schema is at version 8", or that there was
// nothing to apply.
func migrateSummary(driver string, res app.MigrateResult) string {
	if len(res.Applied) == 0 {
		return fmt.Sprintf("nothing to apply: the %s schema is up to date at version %d", driver, res.Version)
	}
	return fmt.Sprintf("applied %s (%s): the %s schema is at version %d",
		promotionsPlural(len(res.Applied), "migration", "migrations"), strings.Join(res.Applied, ", "), driver, res.Version)
}
