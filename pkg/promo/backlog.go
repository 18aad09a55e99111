package promo

// Backlog is the generation work still open in the whole database, for the
// pipeline's gauges and alerts. Batches of promotions whose deletion was
// requested, cancelled batches and complete ones do not count.
type Backlog struct {
	// Incomplete is the number of batches with codes still to write that are
	// neither parked nor cancelled: waiting for their event, in a worker, or
	// retrying.
	Incomplete int64
	// Parked is the number of batches whose remainder is in the dead-letter
	// topic (they complete only after a replay).
	Parked int64
	// PendingCodes is the number of codes still to write in the Incomplete
	// batches.
	PendingCodes int64
}
