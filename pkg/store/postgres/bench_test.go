package postgres_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math"
	"sync"
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

const benchChunk = 10_000

// takenCode is a vanity code of the benchmark codes' length.
const takenCode = "XTAKENXXXXXXXXXXX"

// benchCode renders a 17-byte code for seq: "B" and 16 hex digits of seq
// times an odd constant, a bijection on uint64 that scatters consecutive
// sequence numbers over the key space as the real keyed permutation does
// (sequential keys would flatter the unique index).
func benchCode(dst []byte, seq uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq*0x9E3779B97F4A7C15)
	dst = append(dst, 'B')
	return hex.AppendEncode(dst, b[:])
}

// BenchmarkCommitChunk measures CommitChunk with chunks of 10,000 codes: the
// store's ceiling for the generator. Sub-benchmarks: one or two committing
// goroutines (each on its own batch), and the fallback path (every chunk has
// one colliding code).
func BenchmarkCommitChunk(b *testing.B) {
	for _, bc := range []struct {
		name      string
		workers   int
		collision bool
	}{
		{"workers=1", 1, false},
		{"workers=2", 2, false},
		{"workers=1/collision", 1, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := open(b)
			ctx := context.Background()
			if bc.collision {
				// A vanity code that every chunk's first code replaces below.
				if _, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{
					Name: "taken", Kind: promo.KindVanity, CodeCount: 1, VanityCode: takenCode, MaxUsagePerCode: 1}}); err != nil {
					b.Fatal(err)
				}
			}
			perWorker := int64(b.N) * benchChunk
			p, _, err := s.CreatePromotion(ctx, promo.NewPromotion{
				Promotion: promo.Promotion{Name: "bench", Kind: promo.KindGenerated,
					CodeCount: perWorker * int64(bc.workers), MaxUsagePerCode: 1, CounterName: "bench"},
				BatchSize: perWorker, SeqLimit: math.MaxInt64})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range bc.workers {
				wg.Go(func() {
					c := promo.Chunk{Batch: promo.BatchRef{PromotionID: p.ID, BatchNo: w}, Count: benchChunk, CodeLen: 17,
						Codes: make([]byte, 0, benchChunk*17), CounterName: "bench", Replace: benchCode}
					seq := p.SeqStart + uint64(w)*uint64(perWorker)
					for i := range b.N {
						c.From = int64(i) * benchChunk
						c.Codes = c.Codes[:0]
						for j := range benchChunk {
							c.Codes = benchCode(c.Codes, seq+uint64(c.From)+uint64(j))
						}
						if bc.collision {
							copy(c.Code(0), takenCode)
						}
						if _, err := s.CommitChunk(ctx, c); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*benchChunk*bc.workers)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
