package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// DefaultRetention is how long the batches, retry and error topics keep an
// event when Config.Retention is zero: far longer than any outage the
// pipeline is expected to ride out, so that "never dropped" holds for an
// event that waits in them. The dead-letter topic keeps events forever.
const DefaultRetention = 30 * 24 * time.Hour

// TopicSpec is a topic with the settings EnsureTopicSpecs creates it with
// and checks on an existing one.
type TopicSpec struct {
	Name    string
	Configs map[string]string // Kafka topic config names (retention.ms, ...)
}

// PipelineTopics returns the specs of the four pipeline topics for this
// cluster config:
//   - dead: retention.ms=-1 (a parked event is never deleted);
//   - batches, retry, error: retention.ms = Retention (DefaultRetention when
//     zero; negative means unlimited);
//   - with a replication factor above 1, every topic also gets
//     min.insync.replicas=2 (with the producer's acks=all, an acknowledged
//     event is on two brokers) and unclean.leader.election.enable=false (an
//     out-of-sync replica never becomes leader and truncates the log). On a
//     single broker these cannot apply and are left out.
func (c Config) PipelineTopics(t Topics) []TopicSpec {
	retention := c.Retention
	if retention == 0 {
		retention = DefaultRetention
	}
	ms := "-1"
	if retention > 0 {
		ms = strconv.FormatInt(retention.Milliseconds(), 10)
	}
	spec := func(name, retentionMs string) TopicSpec {
		cfg := map[string]string{"retention.ms": retentionMs}
		if rf := c.replicationFactor(); rf > 1 {
			cfg["min.insync.replicas"] = strconv.Itoa(min(2, rf))
			cfg["unclean.leader.election.enable"] = "false"
		}
		return TopicSpec{Name: name, Configs: cfg}
	}
	return []TopicSpec{spec(t.Batches, ms), spec(t.Retry, ms), spec(t.Error, ms), spec(t.Dead, "-1")}
}

// ConfigMismatch is a setting of an existing topic that differs from its spec.
type ConfigMismatch struct {
	Topic, Key, Want, Have string
}

func (m ConfigMismatch) String() string {
	return fmt.Sprintf("%s: %s is %q, want %q", m.Topic, m.Key, m.Have, m.Want)
}

// EnsureTopicSpecs creates the missing topics with their settings (and
// cfg.Partitions, cfg.ReplicationFactor) and waits until metadata shows
// them. Topics that existed before (created by hand, by an older version,
// or with broker defaults) are not altered: CheckTopicConfigs reports how
// they differ. Idempotent; safe to race with other processes.
func (c *Client) EnsureTopicSpecs(ctx context.Context, specs ...TopicSpec) error {
	if len(specs) == 0 {
		return nil
	}
	names := make([]string, len(specs))
	req := &kafkago.CreateTopicsRequest{}
	for i, s := range specs {
		if err := validTopicName(s.Name); err != nil {
			return fmt.Errorf("ensure topics: %w", err)
		}
		names[i] = s.Name
		tc := kafkago.TopicConfig{Topic: s.Name, NumPartitions: c.cfg.partitions(), ReplicationFactor: c.cfg.replicationFactor()}
		for _, k := range sortedKeys(s.Configs) {
			tc.ConfigEntries = append(tc.ConfigEntries, kafkago.ConfigEntry{ConfigName: k, ConfigValue: s.Configs[k]})
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := c.c.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("ensure topics %v: %w", names, err)
	}
	var errs []error
	for t, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", t, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	return c.waitTopics(ctx, names)
}

// CheckTopicConfigs reads the settings of existing topics and returns those
// that differ from the specs. It needs the DescribeConfigs permission on the
// topics.
func (c *Client) CheckTopicConfigs(ctx context.Context, specs ...TopicSpec) ([]ConfigMismatch, error) {
	req := &kafkago.DescribeConfigsRequest{}
	want := map[string]map[string]string{}
	for _, s := range specs {
		if len(s.Configs) == 0 {
			continue
		}
		want[s.Name] = s.Configs
		req.Resources = append(req.Resources, kafkago.DescribeConfigRequestResource{
			ResourceType: kafkago.ResourceTypeTopic, ResourceName: s.Name, ConfigNames: sortedKeys(s.Configs)})
	}
	if len(req.Resources) == 0 {
		return nil, nil
	}
	resp, err := c.c.DescribeConfigs(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	var out []ConfigMismatch
	for _, r := range resp.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("describe configs of topic %s: %w", r.ResourceName, r.Error)
		}
		have := map[string]string{}
		for _, e := range r.ConfigEntries {
			have[e.ConfigName] = e.ConfigValue
		}
		for _, k := range sortedKeys(want[r.ResourceName]) {
			w := want[r.ResourceName][k]
			h, ok := have[k]
			if !ok {
				h = "(not reported)"
			}
			if h != w {
				out = append(out, ConfigMismatch{Topic: r.ResourceName, Key: k, Want: w, Have: h})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
