package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/broker"
)

// newBrokerCmd: `promocodes broker`, the embedded Kafka-protocol broker for
// development and tests.
func newBrokerCmd() *cobra.Command {
	var cfg broker.Config
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded Kafka-protocol broker (development and tests)",
		Long: `Run an embedded single-node Kafka-protocol broker (franz-go kfake).
With --data-dir, topics, messages and committed group offsets survive a restart.
It is for development and tests: production uses Apache Kafka.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return err
			}
			// TODO(lead): take the configured logger from the root command.
			log, err := zap.NewDevelopment()
			if err != nil {
				return fmt.Errorf("build logger: %w", err)
			}
			defer func() { _ = log.Sync() }()
			ctx := cmd.Context()
			b, err := broker.Start(ctx, cfg, log)
			if err != nil {
				return err
			}
			if cfg.DataDir == "" {
				log.Info("no --data-dir: the broker keeps everything in memory and loses it on exit")
			}
			<-ctx.Done()
			log.Info("stopping kafka broker")
			b.Close()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for topics, messages and group offsets (empty: in memory)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:9092", "host:port to accept Kafka clients on (port 0: any free port)")
	f.StringVar(&cfg.Advertise, "advertise", "", "host clients are told to connect to (required with a wildcard --listen host)")
	f.IntVar(&cfg.Partitions, "partitions", broker.DefaultPartitions, "partitions of seeded and auto-created topics")
	f.StringSliceVar(&cfg.Topics, "topics", nil, "topics to create at start if missing (comma-separated)")
	f.BoolVar(&cfg.SyncWrites, "sync-writes", false, "fsync every produced batch and commit (survives host crashes; slower)")
	return cmd
}
