package redemption

import (
	"bufio"
	"crypto/rand"
	"io"
	"sync"

	"github.com/google/uuid"
)

// idSource makes the service's ids, UUIDv7s whose random bits come from
// crypto/rand read 4 KiB at a time. Reading crypto/rand for each id (two per
// redemption) cost a tenth of the API's CPU in a burst of 10,000 requests:
// the read itself, and mostly the handler's goroutine stack growing for it
// at the bottom of the request's deepest call chain (docs/performance.md,
// "Bursts"). The bytes are the same crypto/rand bytes, read ahead.
//
// Concurrency: safe for concurrent use.
type idSource struct {
	mu  sync.Mutex
	buf *bufio.Reader
}

func newIDSource() *idSource { return &idSource{buf: bufio.NewReaderSize(rand.Reader, 4096)} }

// Read fills p from the read-ahead buffer (uuid.NewV7FromReader reads 16
// bytes an id).
func (s *idSource) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return io.ReadFull(s.buf, p)
}

// newID returns a UUIDv7: unique, and time-ordered so that the audit trail
// pages newest first by id.
func (s *idSource) newID() string {
	id, err := uuid.NewV7FromReader(s)
	if err != nil {
		return uuid.NewString() // crypto/rand failed: still unique
	}
	return id.String()
}
