package kafka_test

import (
	"testing"

	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
)

// TestApacheKafka runs the tests whose behaviour matters most against
// Apache Kafka in Docker (testcontainers), where a Docker engine exists, so
// the embedded broker cannot hide a protocol difference. Skipped without
// Docker. (PROMOCODES_TEST_KAFKA=docker runs every test against Docker.)
func TestApacheKafka(t *testing.T) {
	brokers := kafkatest.Docker(t)
	t.Run("CommitAndResume", func(t *testing.T) { t.Parallel(); testCommitAndResume(t, brokers) })
	t.Run("SimpleCommit", func(t *testing.T) { t.Parallel(); testSimpleCommit(t, brokers) })
	t.Run("ReadRangeBounded", func(t *testing.T) { t.Parallel(); testReadRangeBounded(t, brokers) })
	t.Run("HeadersRoundTrip", func(t *testing.T) { t.Parallel(); testHeadersRoundTrip(t, brokers) })
}
