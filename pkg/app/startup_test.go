package app

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
)

// At start, a topic that already exists with other settings (here the
// dead-letter topic with the broker's 7-day retention) is left alone and
// reported with the command that fixes it; topics the service creates get
// the settings.
func TestEnsureTopicsWarnsAboutExistingTopicSettings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Defaults()
	cfg.Kafka.Brokers = kafkatest.Broker(t)
	cfg.Kafka.Partitions = 2
	p := kafkatest.Name(t, "")
	cfg.Kafka.Topics = TopicConfig{Batches: p + "batches", Retry: p + "retry", Error: p + "error", Dead: p + "dead",
		Redemptions: p + "redemptions"}
	if err := kafka.EnsureTopics(ctx, kafka.Config{Brokers: cfg.Kafka.Brokers}, cfg.Kafka.Topics.Dead); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	var waiting atomic.Value
	if err := ensureTopics(ctx, cfg, &waiting, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	warned := logs.FilterMessageSnippet("existing topic setting differs").All()
	if len(warned) != 1 {
		t.Fatalf("%d warnings about topic settings, want 1 (the pre-existing dead topic): %v", len(warned), logs.All())
	}
	f := warned[0].ContextMap()
	if f["topic"] != cfg.Kafka.Topics.Dead || f["config"] != "retention.ms" || f["want"] != "-1" ||
		!strings.Contains(f["fix"].(string), "--add-config retention.ms=-1") {
		t.Fatalf("warning fields %v", f)
	}
	t.Logf("warning: %s %v", warned[0].Message, f)
}
