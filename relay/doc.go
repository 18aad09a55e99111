// Package relay moves the transactional outboxes to Kafka. Rows are written
// in the same transaction as the change they announce (a promotion's batch
// rows, a redemption's event); a Relay then claims a page of them with a
// lease on the database's clock, publishes it with acks=all and marks it
// published only after the broker acknowledged it. Each outbox is a Source
// (its claim, encode and mark); Batches and RedemptionEvents are the two the
// API runs, one Relay each.
//
// A Relay is safe across replicas (leases), across crashes (at-least-once:
// a page published but not marked is sent again after its lease) and across
// outages (a failed publish keeps the claimed page, a failed mark retries
// only the mark, and the loop, package poll's, backs off up to
// poll.MaxBackoff).
//
// Concurrency: Run is called once by the goroutine that owns the relay and
// returns when its context ends, after a last drain; Notify may be called
// from any goroutine; Drain may be called without Run, and steps are
// serialised.
package relay
