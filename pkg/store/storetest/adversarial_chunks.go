package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// AdversarialChunksRaceCancel: one worker per batch commits its chunks
// (some colliding with vanity codes, so on the skipping path) while an
// admin cancels the promotion, then the same while an admin requests its
// deletion. Every chunk is committed or refused with EMoved; none that
// began after the cancel (deletion) returned commits; after the cancel every
// batch is complete or marked cancelled (a refused chunk marks its own
// batch, on the pool, after its rollback), and the codes exported are the
// batches' progress, which is the promotion's count.
func AdversarialChunksRaceCancel(t *testing.T, db string, s Store) {
	for _, kind := range []string{"cancel", "delete"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, s)
			const (
				batches = 8
				size    = 200 // 400 commits: the admin's call lands among them on a fast store too
				chunk   = 4
			)
			p := h.create(h.generated("race"+kind, batches*size, size))
			bs := h.batches(p.ID)
			if len(bs) != batches {
				t.Fatalf("%d batches, want %d", len(bs), batches)
			}
			for i, b := range bs { // a collision in every other batch's chunks
				if i%2 == 0 {
					for k := int64(1); k < size; k += 7 {
						h.create(h.vanity(h.code(b.SeqStart+uint64(k)), 1))
					}
				}
			}
			var (
				wg        sync.WaitGroup
				mu        sync.Mutex
				adminDone time.Time // zero until the admin's call returned
				late      []string
				started   = make(chan struct{}) // closed at the first chunk committed
				once      sync.Once
			)
			for _, b := range bs {
				wg.Go(func() {
					for from := int64(0); from < size; from += chunk {
						mu.Lock()
						after := !adminDone.IsZero()
						mu.Unlock()
						_, err := s.CommitChunk(h.ctx, h.chunk(b, from, chunk))
						switch {
						case promo.Is(err, promo.EMoved):
							return
						case err != nil:
							t.Errorf("adversarial: chunks race %s [%s]: batch %d from %d: %v", kind, db, b.BatchNo, from, err)
							return
						case after:
							mu.Lock()
							late = append(late, fmt.Sprintf("batch %d from %d", b.BatchNo, from))
							mu.Unlock()
						default:
							once.Do(func() { close(started) })
						}
					}
				})
			}
			<-started
			time.Sleep(5 * time.Millisecond)
			var err error
			if kind == "cancel" {
				_, err = s.CancelPromotion(h.ctx, cancelReq(p.ID))
			} else {
				_, err = s.RequestDeletion(h.ctx, deletionReq(p.ID))
			}
			mu.Lock()
			adminDone = time.Now()
			mu.Unlock()
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			wg.Wait()
			if len(late) > 0 {
				t.Errorf("adversarial: chunks race %s [%s]: committed after the %s returned: %v", kind, db, kind, late)
			}
			var done int64
			for _, b := range bs {
				got := h.batch(b.Ref())
				done += got.Done
				if kind == "cancel" && got.Done != got.CodeCount && got.State != promo.BatchCancelled {
					t.Errorf("adversarial: chunks race cancel [%s]: batch %d at %d/%d is %s, want cancelled",
						db, got.BatchNo, got.Done, got.CodeCount, got.State)
				}
			}
			codes := len(h.export(p.ID))
			if kind == "cancel" {
				if st := h.status(p.ID); st.GeneratedCount != done || int64(codes) != done {
					t.Errorf("adversarial: chunks race cancel [%s]: %d generated, %d exported, batches' progress %d",
						db, st.GeneratedCount, codes, done)
				}
			}
			if inc, err := s.IncompleteBatches(h.ctx, p.ID); err != nil || len(inc) != 0 {
				t.Errorf("adversarial: chunks race %s [%s]: incomplete batches left %+v, %v", kind, db, inc, err)
			}
			t.Logf("adversarial: chunks race %s [%s]: %d of %d codes committed before the %s, none after, every batch settled",
				kind, db, done, batches*size, kind)
		})
	}
}
