package kafka

import (
	"strconv"
	"strings"

	kafkago "github.com/segmentio/kafka-go"
)

// batchBalancer places a batch event ("<promotionId>/<batchNo>" key) on
// partition (promotionId + batchNo) mod partitions: consecutive batches of a
// promotion go round the partitions, so every partition — and so every
// generator worker, when partitions are a multiple of workers — gets the
// same share of a promotion, give or take one batch. A key hash spreads them
// only statistically (200 batches over 4 partitions: about ±7 per partition),
// and the worker with the most batches is still working long after the
// others are idle: the tail of the promotion. The partition is a function of
// the key alone, as with a hash, so every move of a batch keeps its key's
// ordering. Other keys are hashed.
type batchBalancer struct{ hash kafkago.Hash }

func (b *batchBalancer) Balance(msg kafkago.Message, partitions ...int) int {
	if p, ok := batchPartition(string(msg.Key), len(partitions)); ok {
		return partitions[p]
	}
	return b.hash.Balance(msg, partitions...)
}

// batchPartition is the index (into the sorted partition list) of a batch
// key, if key is one.
func batchPartition(key string, n int) (int, bool) {
	promotion, batch, ok := strings.Cut(key, "/")
	if !ok || n <= 0 {
		return 0, false
	}
	p, err1 := strconv.ParseUint(promotion, 10, 63)
	b, err2 := strconv.ParseUint(batch, 10, 31)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return int((p%uint64(n) + b%uint64(n)) % uint64(n)), true
}
