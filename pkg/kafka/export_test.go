package kafka

import (
	"fmt"

	kafkago "github.com/segmentio/kafka-go"
)

// NewConsumerLogged is NewConsumer with the reader's log lines (group
// membership, fetches) passed to log, in the reader's goroutines.
func NewConsumerLogged(cfg Config, group string, topics []string, log func(line string)) (*Consumer, error) {
	return newConsumer(cfg, group, topics, kafkago.LoggerFunc(func(format string, args ...any) {
		log(fmt.Sprintf(format, args...))
	}))
}
