// Package api is the Promotion API: admins create promotions and follow their
// progress, export their codes as CSV, and operators probe health.
//
// A create request is validated completely (format, capacity, counts, dates)
// before anything is written; the store then writes the promotion, its
// reserved sequence range and its batch rows in one transaction, so a request
// is either fully accepted or leaves nothing behind. The batch events are
// published from those rows afterwards by the batch outbox's relay (package
// relay), which the Server only notifies; the api package knows nothing of
// Kafka.
//
// Concurrency: a Server is an http.Handler and safe for concurrent use.
package api
