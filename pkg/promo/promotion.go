package promo

import (
	"math"
	"strconv"
	"time"
)

// Format says what a generated code looks like. Charset is a preset name
// ("alnum", "numeric", "alpha") or, for anything else, the literal characters
// of a custom charset. Length counts body characters only: prefix, suffix,
// separators and the check character come on top. pkg/codes validates a Format
// and compiles it into an engine.
//
// Style selects how the body is made. The default (empty, or StyleRandom)
// is Length characters of Charset, a keyed permutation of the sequence
// number. StyleSerial shows the sequence number itself as SerialDigits
// zero-padded decimal digits followed by a keyed check tail of TailLength
// characters of Charset (SPRING-000123-K7QXM); Length and GroupSize are not
// used by it.
type Format struct {
	Style     string `json:"style,omitempty"`
	Charset   string `json:"charset"`
	Length    int    `json:"length,omitempty"`
	Prefix    string `json:"prefix,omitempty"`
	Suffix    string `json:"suffix,omitempty"`
	Separator string `json:"separator,omitempty"`
	GroupSize int    `json:"groupSize,omitempty"`
	// CheckChar appends a check character; nil means the default, true.
	CheckChar *bool `json:"checkChar,omitempty"`
	// SerialDigits and TailLength are the serial style's: the number of
	// decimal digits of the serial and of characters of the keyed tail.
	SerialDigits int `json:"serialDigits,omitempty"`
	TailLength   int `json:"tailLength,omitempty"`
}

// Format styles.
const (
	StyleRandom = "random" // the default: a keyed permutation rendered in the charset
	StyleSerial = "serial" // a visible serial number and a keyed check tail
)

// IsSerial reports whether the format is of the serial style.
func (f Format) IsSerial() bool { return f.Style == StyleSerial }

// HasCheckChar resolves the CheckChar default.
func (f Format) HasCheckChar() bool { return f.CheckChar == nil || *f.CheckChar }

// Kind tells generated promotions from single vanity-code promotions.
type Kind string

const (
	KindGenerated Kind = "generated"
	KindVanity    Kind = "vanity"
)

// Status is a promotion's lifecycle as admins see it.
type Status string

const (
	StatusPending    Status = "pending"    // created, no code written yet
	StatusGenerating Status = "generating" // some codes written
	StatusCompleted  Status = "completed"  // exactly CodeCount codes written
	StatusFailed     Status = "failed"     // at least one batch parked in the dead-letter topic
	StatusCancelled  Status = "cancelled"  // an admin stopped the generation; GeneratedCount codes exist
)

// Promotion is what an admin asked for, as stored.
type Promotion struct {
	ID              int64      `json:"-"`
	Name            string     `json:"name"`
	Kind            Kind       `json:"kind"`
	CodeCount       int64      `json:"codeCount"`
	Format          *Format    `json:"format,omitempty"` // generated only
	VanityCode      string     `json:"code,omitempty"`   // vanity only (canonical form)
	MaxUsagePerCode int        `json:"maxUsagePerCode"`
	PerUserLimit    int        `json:"perUserLimit"`
	StartsAt        *time.Time `json:"startsAt,omitempty"`
	ExpiresAt       *time.Time `json:"expiresAt,omitempty"`
	// Active is the admin's switch (PATCH active): a promotion that is not
	// active answers "deactivated" to every redemption. New promotions are
	// active; a deletion switches a promotion off.
	Active bool `json:"active"`
	// CounterName identifies the sequence counter (one per canonical code
	// space) that SeqStart was reserved from; replacement sequence numbers for
	// rare collisions are reserved from the same counter.
	CounterName string    `json:"-"`
	SeqStart    uint64    `json:"-"`
	CreatedAt   time.Time `json:"createdAt"`
	// KeyFingerprint names the code key the promotion was created under
	// (codes.KeyFingerprint; never the key): a generator derives its codes
	// only with that key. Empty for promotions older than the fingerprint,
	// which any key generates.
	KeyFingerprint string `json:"-"`
	// Eligibility is who may use the promotion's codes (nil: anyone).
	Eligibility *Eligibility `json:"eligibility,omitempty"`
}

// IDString is the promotion id as it appears in URLs, events and CSV names.
func (p Promotion) IDString() string { return FormatID(p.ID) }

// FormatID renders a promotion id for the outside world.
func FormatID(id int64) string { return strconv.FormatInt(id, 10) }

// ParseID parses an id from a URL or an event.
func ParseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, Errorf(ENotFound, "no promotion %q", s)
	}
	return id, nil
}

// NewPromotion is a validated create request as the store receives it: the
// store writes the promotion, reserves [SeqStart, SeqStart+CodeCount) from
// CounterName, and writes one batch row per BatchSize codes, all in one
// transaction.
type NewPromotion struct {
	Promotion
	BatchSize int64
	// SeqLimit bounds the counter: a reservation that would move the counter
	// past SeqLimit fails with ECapacity (the density limit of the format's
	// space, space × maxDensity).
	SeqLimit uint64
	// IdempotencyKey, when set, makes the create idempotent: the same key with
	// the same RequestHash returns the stored promotion; with another hash it
	// is an EConflict.
	IdempotencyKey string
	RequestHash    string
}

// Normalize checks the fields a store relies on (the promotion service
// checks a create request in depth) and fills a vanity promotion's code
// count.
func (np NewPromotion) Normalize() (NewPromotion, error) {
	switch np.Kind {
	case KindGenerated:
		switch {
		case np.CodeCount <= 0:
			return np, FieldErrorf("codeCount", "must be positive, got %d", np.CodeCount)
		case np.BatchSize <= 0:
			return np, FieldErrorf("batchSize", "must be positive, got %d", np.BatchSize)
		case np.CounterName == "":
			return np, FieldErrorf("counterName", "is required for generated codes")
		case np.VanityCode != "":
			return np, FieldErrorf("code", "a generated promotion has no vanity code")
		case np.CodeCount/np.BatchSize >= math.MaxInt32:
			return np, FieldErrorf("batchSize", "%d codes in batches of %d is too many batches", np.CodeCount, np.BatchSize)
		}
	case KindVanity:
		if np.VanityCode == "" {
			return np, FieldErrorf("code", "is required for a vanity promotion")
		}
		if np.CodeCount == 0 {
			np.CodeCount = 1
		}
		if np.CodeCount != 1 {
			return np, FieldErrorf("codeCount", "a vanity promotion has exactly 1 code, got %d", np.CodeCount)
		}
	default:
		return np, FieldErrorf("kind", "unknown kind %q", np.Kind)
	}
	return np, nil
}

// BatchCount is the number of batches for codeCount codes in batches of
// batchSize, the last one smaller: the batch rows a store writes.
func BatchCount(codeCount, batchSize int64) int {
	return int((codeCount + batchSize - 1) / batchSize)
}

// BatchRef names one batch.
type BatchRef struct {
	PromotionID int64
	BatchNo     int
}

// BatchState is what the pipeline last knew about a batch.
type BatchState string

const (
	BatchPending  BatchState = "pending"  // waiting for (or in) a worker
	BatchRetrying BatchState = "retrying" // a remainder is in the error/retry topics
	BatchParked   BatchState = "parked"   // a remainder is in the dead-letter topic
	BatchDone     BatchState = "done"     // Done == CodeCount
	// BatchCancelled: the promotion was cancelled before the batch finished;
	// the progress compare-and-set refuses its further chunks.
	BatchCancelled BatchState = "cancelled"
)

// Batch is one slice of a promotion's reserved range: sequence numbers
// [SeqStart, SeqStart+CodeCount). Done counts how many of them (from the
// start) are committed; it only ever grows, and only together with the codes
// it stands for.
type Batch struct {
	PromotionID int64
	BatchNo     int
	SeqStart    uint64
	CodeCount   int64
	Done        int64
	State       BatchState
	LastError   string
}

// Ref returns the batch's reference.
func (b Batch) Ref() BatchRef { return BatchRef{PromotionID: b.PromotionID, BatchNo: b.BatchNo} }

// Remaining is the number of codes this batch still has to write.
func (b Batch) Remaining() int64 { return b.CodeCount - b.Done }

// BatchWork is what a generator needs to work on a batch: the batch with its
// progress and the promotion it belongs to (for the format and counter).
type BatchWork struct {
	Batch     Batch
	Promotion Promotion
}

// Chunk is one transaction's worth of a batch: the codes for sequence numbers
// [batch.SeqStart+From, batch.SeqStart+From+Count). The store commits it
// atomically with the progress advance From → From+Count, and only if the
// batch's Done is still From (else EMoved).
type Chunk struct {
	Batch BatchRef
	From  int64
	Count int
	// Codes holds Count canonical codes of CodeLen bytes each, back to back.
	Codes   []byte
	CodeLen int
	// CounterName and Replace handle the rare collision with a code already
	// in the table (a vanity code, another format): the store skips the
	// colliding code, reserves a further sequence number from CounterName in
	// the same transaction and inserts Replace(seq) instead, until exactly
	// Count codes have been added. Replace appends the code to dst.
	CounterName string
	Replace     func(dst []byte, seq uint64) []byte
	// ReplaceLimit is the size of the code space Replace renders: it accepts
	// only seq < ReplaceLimit. A replacement reservation that would reach
	// past it is ECapacity (nothing written) instead of a bad Replace call.
	// Zero means no limit.
	ReplaceLimit uint64
}

// Validate checks that the chunk is well formed before any database work.
func (c Chunk) Validate() error {
	switch {
	case c.Count <= 0:
		return Errorf(EInvalid, "chunk of %d codes", c.Count)
	case c.From < 0:
		return Errorf(EInvalid, "chunk starts at %d", c.From)
	case c.CodeLen <= 0:
		return Errorf(EInvalid, "chunk code length %d", c.CodeLen)
	case len(c.Codes) < c.Count*c.CodeLen:
		return Errorf(EInvalid, "chunk holds %d bytes, %d codes of %d need %d",
			len(c.Codes), c.Count, c.CodeLen, c.Count*c.CodeLen)
	}
	return nil
}

// Code returns the i-th code of the chunk (no allocation: a sub-slice).
func (c *Chunk) Code(i int) []byte { return c.Codes[i*c.CodeLen : (i+1)*c.CodeLen] }

// Progress is a promotion's generation progress.
type Progress struct {
	GeneratedCount int64       `json:"generatedCount"`
	Batches        BatchCounts `json:"batches"`
}

// BatchCounts counts a promotion's batches by state.
type BatchCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Retrying  int `json:"retrying"`
	Parked    int `json:"parked"`
	Cancelled int `json:"cancelled,omitempty"`
}

// PromotionStatus is a promotion with its progress, its deletion (if one
// was requested) and its redemption totals as of the last rollup.
type PromotionStatus struct {
	Promotion
	Progress
	Deletion Deletion
	Totals   Totals
}

// Status is the promotion's lifecycle status: its deletion's, once one was
// requested, else the generation status derived from progress. Every store's
// list filter mirrors this function in SQL.
func (s PromotionStatus) Status() Status { return s.Deletion.Status(s.GenerationStatus()) }

// GenerationStatus derives the generation status from progress alone.
func (s PromotionStatus) GenerationStatus() Status {
	switch {
	case s.GeneratedCount >= s.CodeCount:
		return StatusCompleted
	case s.Batches.Cancelled > 0:
		return StatusCancelled
	case s.Batches.Parked > 0:
		return StatusFailed
	case s.GeneratedCount > 0:
		return StatusGenerating
	default:
		return StatusPending
	}
}

// CodeInfo is one code's state, for validation and redemption.
type CodeInfo struct {
	Code        string
	PromotionID int64
	Used        int
	MaxUsage    int
}
