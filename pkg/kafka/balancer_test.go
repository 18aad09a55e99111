package kafka

import (
	"strconv"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
)

// Consecutive batches of a promotion go round the partitions, so each
// partition gets the same count give or take one; a key always lands on the
// same partition; other keys are hashed.
func TestBatchBalancerSpreadsBatchesEvenly(t *testing.T) {
	var b batchBalancer
	parts := []int{0, 1, 2, 3}
	for _, batches := range []int{1, 3, 200, 2001} {
		count := make([]int, len(parts))
		for no := 0; no < batches; no++ {
			key := []byte("17/" + strconv.Itoa(no))
			p := b.Balance(kafkago.Message{Key: key}, parts...)
			if again := b.Balance(kafkago.Message{Key: key}, parts...); again != p {
				t.Fatalf("key %s: partition %d then %d", key, p, again)
			}
			count[p]++
		}
		lo, hi := count[0], count[0]
		for _, c := range count {
			lo, hi = min(lo, c), max(hi, c)
		}
		if hi-lo > 1 {
			t.Errorf("%d batches over 4 partitions: %v (want counts within one of each other)", batches, count)
		}
	}
	for _, key := range []string{"", "x", "17", "17/x", "a/1", "-1/2", "1/99999999999"} {
		m := kafkago.Message{Key: []byte(key)}
		if got, want := b.Balance(m, parts...), (&kafkago.Hash{}).Balance(m, parts...); got != want {
			t.Errorf("key %q: partition %d, want the hash's %d", key, got, want)
		}
	}
}
