package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/promocodes/promocodes/pkg/promo"
)

// The COPY source must not allocate per row, and pgx must encode the code
// as its bytes into the text column.
func TestChunkSourceEncodesWithoutAllocating(t *testing.T) {
	c := promo.Chunk{Batch: promo.BatchRef{PromotionID: 42}, Count: 3, CodeLen: 4, Codes: []byte("AAAABBBBCCCC")}
	m := pgtype.NewMap()
	buf := make([]byte, 0, 64)
	src := newChunkSource(&c)
	var got []string
	for src.Next() {
		row, _ := src.Values()
		out, err := m.Encode(pgtype.TextOID, pgtype.BinaryFormatCode, row[0], buf[:0])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(out))
		if _, err := m.Encode(pgtype.Int8OID, pgtype.BinaryFormatCode, row[1], buf[:0]); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 3 || got[0] != "AAAA" || got[2] != "CCCC" {
		t.Fatalf("encoded %q", got)
	}
	src = newChunkSource(&c)
	allocs := testing.AllocsPerRun(100, func() {
		src.i = -1
		for src.Next() {
			row, _ := src.Values()
			if _, err := m.Encode(pgtype.TextOID, pgtype.BinaryFormatCode, row[0], buf[:0]); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Encode(pgtype.Int8OID, pgtype.BinaryFormatCode, row[1], buf[:0]); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations per chunk of 3 rows, want 0", allocs)
	}
}
