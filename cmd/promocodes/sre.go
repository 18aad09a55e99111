package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/shovel"
)

func newShovelCmd() *cobra.Command {
	var once bool
	cmd := serviceCmd("shovel", "Move failed batch events: error → retry (x-retry-count+1), or dead after shovel.maxRetries",
		app.Defaults, func(cmd commandContext, cfg app.Config, log *zap.Logger) error {
			if !once {
				return app.Run(cmd.Context(), cfg, log, app.StartShovel)
			}
			st, err := app.ShovelOnce(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			if st.Failed > 0 {
				return fmt.Errorf("%d events could not be moved this cycle; they stay in %s", st.Failed, cfg.Kafka.Topics.Error)
			}
			return nil
		})
	cmd.Flags().BoolVar(&once, "once", false, "run one cycle and exit (for a Kubernetes CronJob)")
	return cmd
}

// toolConfig loads the configuration for an SRE command, validating only
// the sections it uses.
func toolConfig(cmd *cobra.Command, sections ...string) (app.Config, *zap.Logger, error) {
	defaults := app.Defaults()
	defaults.Log = app.LogConfig{Level: "warn", Format: "console"}
	cfg, err := loadConfig(cmd, defaults)
	if err != nil {
		return cfg, nil, err
	}
	if err := cfg.ValidateFor(sections...); err != nil {
		return cfg, nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	log, err := newLogger(cfg.Log)
	return cfg, log, err
}

func newTopicsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "topics", Short: "Inspect and replay the batch, retry, error and dead-letter topics"}
	cmd.AddCommand(newInspectCmd(), newReplayCmd())
	return cmd
}

func newInspectCmd() *cobra.Command {
	var f shovel.Filter
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect TOPIC",
		Short: "List a topic's events with decoded headers (commits nothing)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, log, err := toolConfig(cmd, "kafka")
			if err != nil {
				return err
			}
			t, err := app.OpenTools(cmd.Context(), cfg, false, log)
			if err != nil {
				return err
			}
			defer t.Close()
			entries, err := shovel.Inspect(cmd.Context(), t.Client, args[0], f)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				for _, e := range entries {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			}
			printEntries(entries)
			fmt.Fprintf(os.Stderr, "%d events\n", len(entries))
			return nil
		},
	}
	toolFlags(cmd)
	cmd.Flags().StringVar(&f.PromotionID, "promotion", "", "only events of this promotion id")
	cmd.Flags().IntVar(&f.Limit, "limit", 100, "at most this many events (0 = all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

func printEntries(entries []shovel.Entry) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PARTITION\tOFFSET\tKEY\tSEQ START\tCODES\tRETRIES\tFAILED AT\tORIGIN\tERROR / DEAD REASON")
	for _, e := range entries {
		seq, count := "-", "-"
		if e.Event != nil {
			seq, count = fmt.Sprint(e.Event.SeqStart), fmt.Sprint(e.Event.CodeCount)
		}
		why := e.Error
		if e.DeadReason != "" {
			why = e.DeadReason
		}
		if e.DecodeErr != "" {
			why = e.DecodeErr
		}
		fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Partition, e.Offset, e.Key, seq, count,
			e.RetryCount, dash(e.FailedAt), dash(e.Origin), dash(truncate(why, 120)))
	}
	_ = w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func newReplayCmd() *cobra.Command {
	var o shovel.ReplayOptions
	cmd := &cobra.Command{
		Use:   "replay --from TOPIC --to TOPIC",
		Short: "Copy events from one topic to another (e.g. dead-letter → batches after a fix)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := toolConfig(cmd, "kafka")
			if err != nil {
				return err
			}
			t, err := app.OpenTools(cmd.Context(), cfg, false, log)
			if err != nil {
				return err
			}
			defer t.Close()
			if o.DryRun {
				log = zap.NewNop()
			}
			moved, err := shovel.Replay(cmd.Context(), t.Client, t.Producer, o, log)
			printEntries(moved)
			verb := "replayed"
			if o.DryRun {
				verb = "would replay (dry run)"
			}
			fmt.Fprintf(os.Stderr, "%s %d events from %s to %s\n", verb, len(moved), o.From, o.To)
			return err
		},
	}
	toolFlags(cmd)
	cmd.Flags().StringVar(&o.From, "from", "", "source topic (required)")
	cmd.Flags().StringVar(&o.To, "to", "", "destination topic (required)")
	cmd.Flags().StringVar(&o.Filter.PromotionID, "promotion", "", "only events of this promotion id")
	cmd.Flags().BoolVar(&o.ResetRetries, "reset-retries", false, "drop x-retry-count so the events get the full retry budget")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "list what would be replayed; publish nothing")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func newReconcileCmd() *cobra.Command {
	var promotion string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Re-enqueue incomplete batches that have no event in flight",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := toolConfig(cmd, "kafka", "db", "generator", "shovel")
			if err != nil {
				return err
			}
			var id int64
			if promotion != "" {
				if id, err = promo.ParseID(promotion); err != nil {
					return err
				}
			}
			t, err := app.OpenTools(cmd.Context(), cfg, true, log)
			if err != nil {
				return err
			}
			defer t.Close()
			tp := cfg.Kafka.Topics
			rep, err := shovel.Reconcile(cmd.Context(), t.Store, t.Client, t.Producer, shovel.ReconcileOptions{
				PromotionID: id, BatchesTopic: tp.Batches, RetryTopic: tp.Retry, ErrorTopic: tp.Error, DeadTopic: tp.Dead,
				GeneratorGroup: cfg.Generator.GroupID, ShovelGroup: cfg.Shovel.GroupID, DryRun: dryRun}, log)
			if err != nil {
				return err
			}
			verb := "re-enqueued"
			if dryRun {
				verb = "would re-enqueue (dry run)"
			}
			fmt.Printf("%d incomplete batches: %d with an event in flight, %d parked in %s (use topics replay), %s %d\n",
				rep.Incomplete, rep.InFlight, rep.Parked, tp.Dead, verb, len(rep.Enqueued))
			for _, b := range rep.Enqueued {
				fmt.Printf("  %d/%d: %d of %d codes missing\n", b.PromotionID, b.BatchNo, b.Remaining(), b.CodeCount)
			}
			return nil
		},
	}
	toolFlags(cmd)
	cmd.Flags().StringVar(&promotion, "promotion", "", "only this promotion id")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report; publish nothing")
	return cmd
}
