// Package api is the Promotion API: admins create promotions and follow their
// progress, export their codes as CSV, and operators probe health. It also
// owns the outbox publisher that turns the batch rows written with a
// promotion into batch events on Kafka.
//
// A create request is validated completely (format, capacity, counts, dates)
// before anything is written; the store then writes the promotion, its
// reserved sequence range and its batch rows in one transaction, so a request
// is either fully accepted or leaves nothing behind. Events are published
// from those rows afterwards (Outbox), which re-sends whatever a crash left
// unpublished; a duplicate event is harmless because generation is
// idempotent.
//
// Concurrency: a Server is an http.Handler and safe for concurrent use. An
// Outbox is started once with Run; Notify may be called from any goroutine.
package api
