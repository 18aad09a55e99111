package postgres

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/promocodes/promocodes/pkg/promo"
)

// The COPY source must not allocate per row, and pgx must encode the code
// as its bytes into the text column.
func TestChunkRowsEncodeWithoutAllocatingPerRow(t *testing.T) {
	m := pgtype.NewMap()
	buf := make([]byte, 0, 64)
	copyAll := func(c *promo.Chunk, got *[]string) {
		src := chunkRows(c)
		for src.Next() {
			row, _ := src.Values()
			out, err := m.Encode(pgtype.TextOID, pgtype.BinaryFormatCode, row[0], buf[:0])
			if err != nil {
				t.Fatal(err)
			}
			if got != nil {
				*got = append(*got, string(out))
			}
			if _, err := m.Encode(pgtype.Int8OID, pgtype.BinaryFormatCode, row[1], buf[:0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := promo.Chunk{Batch: promo.BatchRef{PromotionID: 42}, Count: 3, CodeLen: 4, Codes: []byte("AAAABBBBCCCC")}
	var got []string
	if copyAll(&c, &got); len(got) != 3 || got[0] != "AAAA" || got[2] != "CCCC" {
		t.Fatalf("encoded %q", got)
	}
	big := promo.Chunk{Batch: c.Batch, Count: 300, CodeLen: 4, Codes: []byte(strings.Repeat("ABCD", 300))}
	small := testing.AllocsPerRun(100, func() { copyAll(&c, nil) })
	large := testing.AllocsPerRun(100, func() { copyAll(&big, nil) })
	if large > small {
		t.Errorf("%v allocations for a chunk of 300 rows, %v for 3: want none per row", large, small)
	}
}
