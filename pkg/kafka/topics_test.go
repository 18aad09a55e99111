package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
)

func TestPipelineTopicsSettings(t *testing.T) {
	topics := kafka.DefaultTopics()
	single := kafka.Config{Brokers: []string{"b:9092"}}.PipelineTopics(topics)
	want := map[string]string{topics.Batches: "2592000000", topics.Retry: "2592000000", topics.Error: "2592000000", topics.Dead: "-1"}
	for _, s := range single {
		if s.Configs["retention.ms"] != want[s.Name] || len(s.Configs) != 1 {
			t.Errorf("single broker, %s: %v; want only retention.ms=%s", s.Name, s.Configs, want[s.Name])
		}
	}
	replicated := kafka.Config{Brokers: []string{"b:9092"}, ReplicationFactor: 3, Retention: -1}.PipelineTopics(topics)
	for _, s := range replicated {
		if s.Configs["retention.ms"] != "-1" || s.Configs["min.insync.replicas"] != "2" ||
			s.Configs["unclean.leader.election.enable"] != "false" {
			t.Errorf("3 replicas, unlimited retention, %s: %v", s.Name, s.Configs)
		}
	}
}

// New topics get their settings; a topic that existed with broker defaults
// is left alone and reported.
func TestEnsureTopicSpecsCreatesAndReportsDifferences(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := kafka.Config{Brokers: kafkatest.Brokers(t), Partitions: 2, Retention: 48 * time.Hour}
	topics := kafka.DefaultTopics().WithPrefix(kafkatest.Name(t, ""))
	// The error topic exists already, made with the broker's defaults
	// (7-day retention): as an older version or a hand-made topic would be.
	if err := kafka.EnsureTopics(ctx, cfg, topics.Error); err != nil {
		t.Fatal(err)
	}
	c := kafka.NewClient(cfg)
	defer c.Close()
	specs := cfg.PipelineTopics(topics)
	if err := c.EnsureTopicSpecs(ctx, specs...); err != nil {
		t.Fatal(err)
	}
	mismatches, err := c.CheckTopicConfigs(ctx, specs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(mismatches) != 1 || mismatches[0].Topic != topics.Error || mismatches[0].Key != "retention.ms" ||
		mismatches[0].Want != "172800000" {
		t.Fatalf("mismatches %v; want only the pre-existing error topic's retention.ms", mismatches)
	}
	t.Logf("reported: %s", mismatches[0])
	if err := c.EnsureTopicSpecs(ctx, specs...); err != nil {
		t.Fatal(err)
	}
	again, err := c.CheckTopicConfigs(ctx, specs...)
	if err != nil || len(again) != 1 {
		t.Fatalf("second run: %v, %v; want the same single difference (nothing altered)", again, err)
	}
	for _, s := range specs {
		if s.Name == topics.Error {
			continue
		}
		got, err := c.CheckTopicConfigs(ctx, s)
		if err != nil || len(got) != 0 {
			t.Errorf("%s created with %v: differences %v, %v", s.Name, s.Configs, got, err)
		}
	}
}
