// Package api is the Promotion API: admins create promotions, change them
// and follow their progress, export their codes as CSV, shoppers validate
// and redeem codes, and operators probe health.
//
// The api package decodes requests (bounded bodies, strict JSON, text
// fields) and turns answers and errors into JSON and problem+json. The rules
// are the services': a promotion's (package promotion: a create request is
// checked completely before the store writes the promotion, its reserved
// sequence range and its batch rows in one transaction) and a code's
// (package redemption). The api package knows nothing of Kafka: the
// services wake the outbox relays (package relay).
//
// Concurrency: a Server is an http.Handler and safe for concurrent use.
package api
