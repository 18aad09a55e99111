// Package generator turns batch events into codes in SQL.
//
// A Generator runs Config.Workers workers. Each worker owns one Kafka consumer
// (a member of the generator consumer group over the batch and retry topics)
// and processes its messages strictly one after another: fetch, process,
// commit — never commit first. Processing a batch event means finishing the
// batch the event names, from the progress stored in the database, in chunks:
// each chunk is one SQL transaction that advances the batch's progress and
// inserts the chunk's codes together (Store.CommitChunk). That is what makes
// the count exact: a duplicated or replayed event finds the progress already
// advanced and adds nothing; a crash loses at most an uncommitted chunk, which
// the next delivery redoes.
//
// On a transient fault (database or broker trouble) a chunk is retried in
// process with a ctx-aware exponential backoff, Config.MaxAttempts times; then
// the remainder of the batch is published to the error topic (same key,
// x-retry-count carried over, provenance headers) and only after that publish
// is acknowledged is the input offset committed. If that publish fails too,
// nothing is committed: the worker drops its consumer (leaving the group, so
// the partition is redelivered) and starts a new one after a pause.
// Events that can never succeed (undecodable, unknown promotion, invalid
// range) go straight to the dead-letter topic with x-dead-reason.
//
// Concurrency: a Generator is started once with Run; workers share the Store
// and the Publisher (both must be safe for concurrent use) and nothing else.
package generator
