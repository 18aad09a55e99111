package promo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// EventVersion is the version of the batch event schema this build writes.
const EventVersion = 1

// Kafka header names (docs/kafka.md, "Topics and event shapes"). Values are ASCII.
const (
	HeaderRetryCount      = "x-retry-count"
	HeaderError           = "x-error"
	HeaderFailedAt        = "x-failed-at"
	HeaderOriginTopic     = "x-origin-topic"
	HeaderOriginPartition = "x-origin-partition"
	HeaderOriginOffset    = "x-origin-offset"
	HeaderDeadReason      = "x-dead-reason"
)

// MaxErrorHeader bounds the x-error header.
const MaxErrorHeader = 1024

// Event is the batch event on the batches, retry, error and dead topics. It
// only says which batch to work on; the database's batch progress is the
// source of truth. A remainder event narrows SeqStart/CodeCount to what was
// not committed when it was published.
type Event struct {
	V           int    `json:"v"`
	PromotionID string `json:"promotionId"`
	BatchNo     int    `json:"batchNo"`
	SeqStart    uint64 `json:"seqStart"`
	CodeCount   int64  `json:"codeCount"`
}

// EventFor builds the event for the not-yet-committed part of a batch.
func EventFor(b Batch) Event {
	return Event{V: EventVersion, PromotionID: FormatID(b.PromotionID), BatchNo: b.BatchNo,
		SeqStart: b.SeqStart + uint64(b.Done), CodeCount: b.CodeCount - b.Done}
}

// Key is the Kafka message key, "<promotionId>/<batchNo>", kept on every move.
func (e Event) Key() string { return e.PromotionID + "/" + strconv.Itoa(e.BatchNo) }

// End is one past the event's last sequence number (SeqStart+CodeCount; it
// cannot wrap around for a validated event).
func (e Event) End() uint64 { return e.SeqStart + uint64(e.CodeCount) }

// Ref returns the batch the event names. Call it on a validated event.
func (e Event) Ref() BatchRef {
	id, _ := strconv.ParseInt(e.PromotionID, 10, 64)
	return BatchRef{PromotionID: id, BatchNo: e.BatchNo}
}

// Marshal encodes the event as JSON.
func (e Event) Marshal() []byte {
	b, _ := json.Marshal(e) // cannot fail: plain fields
	return b
}

// DecodeEvent parses and validates an event. Every error it returns is an
// EInvalid *Error: such an event can never succeed and goes to the dead-letter
// topic at once.
func DecodeEvent(value []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, Errorf(EInvalid, "undecodable event: %v", err)
	}
	if dec.More() {
		return Event{}, Errorf(EInvalid, "undecodable event: trailing data")
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// Validate checks the event's fields.
func (e Event) Validate() error {
	var problems []string
	if e.V != EventVersion {
		problems = append(problems, fmt.Sprintf("unsupported version %d (want %d)", e.V, EventVersion))
	}
	if id, err := strconv.ParseInt(e.PromotionID, 10, 64); err != nil || id <= 0 {
		problems = append(problems, fmt.Sprintf("invalid promotionId %q", e.PromotionID))
	}
	if e.BatchNo < 0 || e.BatchNo > math.MaxInt32 {
		problems = append(problems, fmt.Sprintf("batchNo %d is outside 0..%d", e.BatchNo, math.MaxInt32))
	}
	if e.CodeCount < 0 {
		problems = append(problems, fmt.Sprintf("negative codeCount %d", e.CodeCount))
	} else if e.SeqStart > math.MaxUint64-uint64(e.CodeCount) {
		// seqStart+codeCount would wrap around 2^64 and pass any range check
		// done in uint64 arithmetic.
		problems = append(problems, fmt.Sprintf("seqStart %d + codeCount %d overflows 2^64", e.SeqStart, e.CodeCount))
	}
	if len(problems) > 0 {
		return Errorf(EInvalid, "invalid event: %s", strings.Join(problems, "; "))
	}
	return nil
}

// HeaderValue makes s a header value as the contract wants it: printable
// ASCII (anything else becomes '?'), at most MaxErrorHeader bytes.
func HeaderValue(s string) string {
	b := []byte(s[:min(len(s), MaxErrorHeader)])
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}
