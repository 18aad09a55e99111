// Package promo holds the domain of promocodes: promotions, their batches and
// code formats, the batch event that travels on Kafka, and the errors every
// layer speaks. It imports only the standard library so that every other
// package (stores, API, generator, shovel) can depend on it without pulling in
// a database driver or a Kafka client.
//
// Everything here is a plain value type; values are safe to share between
// goroutines as long as nobody mutates them.
package promo
