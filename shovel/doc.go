// Package shovel moves failed batch events on: from the error topic to the
// retry topic (x-retry-count + 1) or, after Config.MaxRetries moves, to the
// dead-letter topic, where SREs inspect and replay them. It also holds the
// SRE tools that work on the same topics: Inspect, Replay and Reconcile.
//
// A cycle reads the error topic only up to the high-water marks captured at
// its start, so it never chases its own output, and commits an offset only
// after the message it covers has been published to its destination with
// acks=all. A shovel killed between the two leaves a duplicate on the retry
// topic, which the generator processes idempotently: nothing is lost or
// dropped, ever; the worst case is a harmless repeat.
//
// The shovel commits with its own consumer group id and without joining it,
// so only one shovel (a Deployment of one, or a CronJob with
// concurrencyPolicy Forbid) should run at a time; two would repeat work, not
// lose it.
//
// Concurrency: a Shovel runs one cycle at a time (Run or Cycle from one
// goroutine); Healthy may be called from any goroutine.
package shovel
