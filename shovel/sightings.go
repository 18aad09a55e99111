package shovel

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
)

// A failed event's age decides when it may be retried, and nothing the
// event carries can be trusted to date it: x-failed-at is the generator's
// clock, and so is the record's timestamp (segmentio/kafka-go writes its
// producer's time as CreateTime and reads a LogAppendTime batch's records
// with their CreateTime as well). A generator two hours fast would hold its
// batches (and every event behind them in their partitions) for two hours;
// two hours slow, it would skip the backoff and park healthy batches within
// a few cycles.
//
// So the shovel dates events by its own clock too. At each cycle it notes,
// per error-topic partition, the high-water mark it saw and when (a
// sighting): an event below that mark was in the topic by the first time the
// shovel saw the mark, and an event at or above it was not yet there the
// last time the shovel saw the mark unchanged. The sightings travel with the shovel's
// committed offset as its metadata, so a CronJob's next run knows them. An
// event's failure time is its x-failed-at (else the record's timestamp),
// bounded by the record's timestamp and the shovel's now, and then by the
// sightings: no later than the first cycle that saw the event, no earlier
// than the last cycle that had not. The bound is as tight as the time between
// two cycles (shovel.interval).

// sighting says that the partition's high-water mark was hw from shovel
// time first (every offset below hw was in the partition by then) to shovel
// time last (no offset at or above hw was there yet).
type sighting struct {
	hw          int64
	first, last time.Time
}

// sightings of one partition, in increasing hw and time.
type sightings []sighting

// maxSightings bounds what a partition keeps (Kafka bounds commit metadata
// by offset.metadata.max.bytes, 4 KiB by default; 32 sightings take about
// 1.4 KiB).
const maxSightings = 32

// sightingsVersion prefixes the metadata so that a later format can tell.
const sightingsVersion = "s1"

// parseSightings reads the commit metadata; anything unreadable counts as no
// sightings (the bounds are then looser, never wrong).
func parseSightings(meta string) sightings {
	fields := strings.Fields(meta)
	if len(fields) == 0 || fields[0] != sightingsVersion {
		return nil
	}
	var out sightings
	for _, f := range fields[1:] {
		parts := strings.Split(f, ":")
		if len(parts) != 3 {
			return nil
		}
		var v [3]int64
		for i, p := range parts {
			n, err := strconv.ParseInt(p, 10, 64)
			if err != nil || n < 0 {
				return nil
			}
			v[i] = n
		}
		x := sighting{hw: v[0], first: time.UnixMilli(v[1]), last: time.UnixMilli(v[2])}
		if x.last.Before(x.first) {
			return nil
		}
		if n := len(out); n > 0 && (x.hw <= out[n-1].hw || x.first.Before(out[n-1].last)) {
			return nil
		}
		out = append(out, x)
	}
	return out
}

// String is the commit metadata form: "s1 hw:firstms:lastms ..." (Unix
// milliseconds).
func (s sightings) String() string {
	if len(s) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(sightingsVersion)
	for _, x := range s {
		fmt.Fprintf(&b, " %d:%d:%d", x.hw, x.first.UnixMilli(), x.last.UnixMilli())
	}
	return b.String()
}

// add records that hw was the high-water mark at at: a new sighting when it
// grew, else a later last time for the current one. Earlier sightings later
// than at (the shovel's clock stepped back, say after running fast) are
// brought back to at: a failure is never dated after the shovel's now.
func (s sightings) add(hw int64, at time.Time) sightings {
	at = at.Truncate(time.Millisecond)
	out := make(sightings, len(s), len(s)+1)
	for i, x := range s {
		x.first, x.last = earliest(x.first, at), earliest(x.last, at)
		out[i] = x
	}
	if n := len(out); n > 0 && hw <= out[n-1].hw {
		out[n-1].last = at
		return out
	}
	return append(out, sighting{hw: hw, first: at, last: at})
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// bounds returns when the event at offset was not yet in the partition
// (notBefore: the last time a mark at or below it was seen) and when it was
// (seenBy: the first time a mark above it was seen); zero where no sighting
// says.
func (s sightings) bounds(offset int64) (notBefore, seenBy time.Time) {
	for _, x := range s {
		if x.hw <= offset {
			notBefore = x.last
			continue
		}
		return notBefore, x.first
	}
	return notBefore, time.Time{}
}

// keep drops what no event at or after position needs: sightings up to
// position except the last of them (the notBefore of the events right
// after it), and the oldest ones beyond maxSightings (after the first: a
// dropped sighting only loosens its neighbours' bounds).
func (s sightings) keep(position int64) sightings {
	first := 0
	for i, x := range s {
		if x.hw <= position {
			first = i
		}
	}
	out := append(sightings(nil), s[first:]...)
	for len(out) > maxSightings {
		out = append(out[:1], out[2:]...)
	}
	return out
}

// failedAt is when m's batch failed as far as the shovel can tell (see the
// comment at the top of this file), and how far x-failed-at lies outside
// what the shovel saw (0 when within: a generator's clock error, for the
// log).
func failedAt(m kafka.Message, seen sightings, now time.Time) (at time.Time, off time.Duration) {
	at = m.Time
	var header time.Time
	if v, ok := m.Header(promo.HeaderFailedAt); ok {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			at, header = t, t
		}
	}
	// It cannot have failed after its record was written, nor in the future.
	if !m.Time.IsZero() && at.After(m.Time) {
		at = m.Time
	}
	if at.IsZero() || at.After(now) {
		at = now
	}
	// The shovel's own sightings win over both producer-side times.
	notBefore, seenBy := seen.bounds(m.Offset)
	if !seenBy.IsZero() && at.After(seenBy) {
		at = seenBy
	}
	if !notBefore.IsZero() && at.Before(notBefore) {
		at = notBefore
	}
	if !header.IsZero() {
		off = header.Sub(at)
	}
	return at, off
}
