package redemption

import (
	"sync"
	"testing"

	"github.com/google/uuid"
)

// The ids read ahead from crypto/rand stay what the audit trail needs:
// version 7 UUIDs, unique under concurrent use, in time order.
func TestIDSourceUniqueVersion7(t *testing.T) {
	s := newIDSource()
	const goroutines, each = 8, 2000 // past the 4 KiB read-ahead many times
	ids := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				ids[g] = append(ids[g], s.newID())
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, list := range ids {
		for i, id := range list {
			u, err := uuid.Parse(id)
			if err != nil || u.Version() != 7 {
				t.Fatalf("id %q: version %d, %v; want a UUIDv7", id, u.Version(), err)
			}
			if seen[id] {
				t.Fatalf("id %q made twice", id)
			}
			seen[id] = true
			if i > 0 && id <= list[i-1] {
				t.Fatalf("ids out of time order in one goroutine: %q after %q", id, list[i-1])
			}
		}
	}
}
